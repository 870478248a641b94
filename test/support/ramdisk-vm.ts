/**
 * The deploy ramdisk in a qemu VM against a fake site agent, for its end-to-end test
 * (test/e2e/ramdisk-boot.test.ts) and its bench (bench/ramdisk.ts): qemu boots the built
 * kernel + initramfs directly (-kernel/-initrd, TCG, e1000 on slirp, where 10.0.2.2 is the
 * host's 127.0.0.1); the fake agent answers hello with a session and heartbeats with no
 * steps, and records every request with the time it came (validated against
 * protocol/ramdisk.ts). Recipe and timings: ../shared/lab/disk/README.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type RamdiskAnswer, type RamdiskRequest, validateRamdiskRequest } from '../../protocol/ramdisk.ts';

export interface RecordedRequest {
  readonly at: number;
  readonly body: unknown;
  readonly valid: boolean;
}

export interface FakeSiteAgent {
  readonly port: number;
  readonly requests: RecordedRequest[];
  /** The valid requests of one type, in order. */
  ofType(type: RamdiskRequest['type']): RecordedRequest[];
  /** Resolves when `done()` holds (checked on every request); rejects when `vm` ends first or on timeout. */
  until(done: () => boolean, vm: ChildProcess, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A fake site agent on 127.0.0.1: hello with `token` → `session`, heartbeat → no steps. */
export async function startFakeSiteAgent(token: string, session: string): Promise<FakeSiteAgent> {
  const requests: RecordedRequest[] = [];
  const waiters: Array<() => void> = [];
  const server: Server = createServer(async (req, res) => {
    const send = (status: number, answer: RamdiskAnswer) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    };
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const valid = req.method === 'POST' && req.url === '/ramdisk/v1' && validateRamdiskRequest(body);
    requests.push({ at: performance.now(), body, valid });
    for (const wake of waiters.splice(0)) wake();
    if (!valid) return send(400, { v: 1, type: 'error', error: 'bad message' });
    const request = body as RamdiskRequest;
    if (request.type === 'hello') {
      if (request.token !== token) return send(401, { v: 1, type: 'error', error: 'unknown token' });
      return send(200, { v: 1, type: 'hello', session, heartbeat_interval_s: 5 });
    }
    if (request.type === 'heartbeat') {
      if (request.session !== session) return send(401, { v: 1, type: 'error', error: 'unknown session' });
      return send(200, { v: 1, type: 'heartbeat', steps: [] });
    }
    return send(200, { v: 1, type: 'ok' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    ofType: (type) => requests.filter((r) => (r.body as { type?: string } | null)?.type === type && r.valid),
    until: (done, vm, timeoutMs) =>
      new Promise((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          vm.off('exit', onExit);
        };
        const check = () => {
          if (done()) {
            cleanup();
            resolve();
          } else waiters.push(check);
        };
        const onExit = (code: number | null, signal: string | null) => {
          cleanup();
          reject(new Error(`qemu ended (code ${code}, signal ${signal}) first`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`not done within ${timeoutMs} ms`));
        }, timeoutMs);
        vm.on('exit', onExit);
        check();
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface RamdiskVm {
  readonly child: ChildProcess;
  /** performance.now() when qemu was started. */
  readonly startedAt: number;
  /** The serial console so far (its tail, for failure messages). */
  console(tail?: number): string;
  /** Kills qemu by its PID and waits for it. */
  stop(): Promise<void>;
}

/**
 * Boots `kernel` + `initramfs` with the ramdisk's kernel parameters pointing at the agent
 * on `agentPort`. `timeout` is the safety net should this process die; `stop()` kills by PID.
 */
export function bootRamdiskVm(options: {
  readonly kernel: string;
  readonly initramfs: string;
  readonly agentPort: number;
  readonly token: string;
  readonly serial: string;
  readonly timeoutSeconds: number;
  readonly mac?: string;
}): RamdiskVm {
  const startedAt = performance.now();
  const child = spawn(
    'timeout',
    [
      ...['-k', '5', String(options.timeoutSeconds), 'qemu-system-x86_64', '-accel', 'tcg'],
      ...['-machine', 'pc', '-m', '512', '-no-reboot', '-display', 'none', '-monitor', 'none'],
      ...['-nodefaults', '-serial', `file:${options.serial}`],
      ...['-kernel', options.kernel, '-initrd', options.initramfs],
      '-append',
      `console=ttyS0 panic=-1 mp.url=http://10.0.2.2:${options.agentPort}/ramdisk/v1 mp.token=${options.token}`,
      ...['-netdev', 'user,id=n0', '-device', `e1000,netdev=n0,mac=${options.mac ?? '52:54:00:12:34:77'}`],
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  return {
    child,
    startedAt,
    console: (tail = 6000) =>
      existsSync(options.serial) ? readFileSync(options.serial, 'utf8').slice(-tail) : '(no serial log)',
    stop: async () => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGTERM');
      await exited;
    },
  };
}
