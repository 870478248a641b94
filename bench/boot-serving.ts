/**
 * Boot serving throughput (printed, never asserted), each against its reference server in
 * the same run, rounds interleaved so that the machine's noise hits both alike:
 *
 *  - TFTP: a 50 MB file fetched by curl (`tftp://`), default 512-byte blocks and
 *    `--tftp-blksize 1468`, from the agent's server and from Debian's tftpd-hpa
 *    (`in.tftpd --foreground --listen --address 127.0.0.1:PORT --secure DIR`); and by
 *    atftp asking `blksize 1468` and `windowsize 8` (RFC 7440: curl cannot ask it), which
 *    the agent grants and tftpd-hpa 5.2 leaves out of its OACK (it has no windowsize: it
 *    answers the same request in lock-step). Goal ≥ 1.0× for each. The agent's server CPU
 *    per block (utime + stime of its process over its transfers) is printed beside.
 *  - HTTP: wrk (1 thread, 8 connections) on a 10 MiB "kernel" and on a 2 KiB iPXE script,
 *    against the agent's server and nginx (a private config: one worker, sendfile on,
 *    access log off, on a loopback port, started and stopped by PID). Goals ≥ 0.8× for
 *    the kernel, ≥ 0.5× for the script. Both files fit the agent's memory cache (16 MiB
 *    per file), as nginx's come from the page cache.
 *
 * Needs (bench only, not in scripts/debian-packages.txt):
 *   apt-get install -y wrk nginx-light tftpd-hpa curl atftp
 *
 * The machine is shared and noisy: compare the ratios of one run, not figures across runs.
 *
 * The agent's servers run in a child Node process (as in the agent), not in this one, with
 * the runtime settings of the package's launcher (packaging/metalplane-agent.sh: its Node
 * flags and MALLOC_ARENA_MAX), as shipped; the code is the sources (type stripping), the
 * same JavaScript as the bundle's. BENCH_BOOT=tftp or BENCH_BOOT=http runs one half.
 * A missing reference (tftpd-hpa, nginx, wrk) is reported and its rows skipped.
 *
 *   npm run bench -- boot-serving          # BENCH_ROUNDS=3, BENCH_WRK_SECONDS=5, BENCH_BOOT=tftp,http
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../local/moto.ts';
import { printTable, summarize } from './support.ts';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WRK_SECONDS = Number(process.env.BENCH_WRK_SECONDS ?? 5);
const PARTS = (process.env.BENCH_BOOT ?? 'tftp,http').split(',');

// Child mode: serve ROOT with the agent's servers, print the ports, wait for SIGTERM.
if (process.argv[2] === '--serve') {
  const root = process.argv[3]!;
  const { TftpServer } = await import('../agent/boot/tftp-server.ts');
  const { HttpBootServer } = await import('../agent/boot/http-server.ts');
  const tftp = await TftpServer.start({ root, address: '127.0.0.1', port: 0 });
  const http = await HttpBootServer.start({ root, address: '127.0.0.1', port: 0 });
  process.stdout.write(`${JSON.stringify({ tftp: tftp.port, http: http.port })}\n`);
  process.once('SIGTERM', () => {
    void Promise.all([tftp.close(), http.close()]).then(() => process.exit(0));
  });
} else {
  await main();
}

async function has(command: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(resolve));
  return port;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** The Node flags and environment the package's launcher runs the agent with. */
function launcherSettings(): { flags: string[]; env: Record<string, string> } {
  const script = readFileSync(join(import.meta.dirname, '..', 'packaging', 'metalplane-agent.sh'), 'utf8');
  const exec = /^exec "\$lib\/node" (.*)"\$lib\/agent\.mjs" "\$@"$/m.exec(script);
  const arena = /^MALLOC_ARENA_MAX="\$\{MALLOC_ARENA_MAX:-(\d+)\}"$/m.exec(script);
  if (!exec || !arena) throw new Error('packaging/metalplane-agent.sh: launcher line not understood');
  return { flags: exec[1]!.trim().split(/\s+/).filter(Boolean), env: { MALLOC_ARENA_MAX: arena[1]! } };
}

async function startOurs(root: string): Promise<{ child: ChildProcess; tftp: number; http: number }> {
  const { flags, env } = launcherSettings();
  const child = spawn(
    process.execPath,
    [...flags, join(import.meta.dirname, 'boot-serving.ts'), '--serve', root],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } },
  );
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`server child exited ${code}`)));
    setTimeout(() => reject(new Error('server child did not start in 10 s')), 10_000).unref();
  });
  const ports = JSON.parse(line) as { tftp: number; http: number };
  return { child, ...ports };
}

/** Waits until a UDP server answers a TFTP request for a missing file (it is up). */
async function waitTftp(port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      await run('curl', ['-sS', '--max-time', '1', '-o', '/dev/null', `tftp://127.0.0.1:${port}/small.ipxe`]);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`nothing answers TFTP on ${port}`);
}

async function waitHttp(port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/small.ipxe`, {
        signal: AbortSignal.timeout(1000),
      });
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`nothing answers HTTP on ${port}`);
}

/** CPU time (user + system) a process has used so far, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ)
}

interface Client {
  label: string;
  blksize: number;
  fetch: (port: number) => Promise<void>;
}

function curlClient(label: string, blksize: number): Client {
  return {
    label,
    blksize,
    fetch: async (port) => {
      const extra = blksize === 512 ? [] : ['--tftp-blksize', String(blksize)];
      const url = `tftp://127.0.0.1:${port}/big.img`;
      await run('curl', ['-sS', '--max-time', '300', ...extra, '-o', '/dev/null', url], { timeout: 310_000 });
    },
  };
}

function atftpClient(label: string, blksize: number, windowsize: number): Client {
  return {
    label,
    blksize,
    fetch: async (port) => {
      const options = ['--option', `blksize ${blksize}`, '--option', `windowsize ${windowsize}`];
      const args = ['--get', ...options, '-r', 'big.img', '-l', '/dev/null', '127.0.0.1', String(port)];
      await run('atftp', args, { timeout: 310_000 });
    },
  };
}

async function seconds(fetch: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fetch();
  return (performance.now() - started) / 1000;
}

async function wrk(port: number, path: string): Promise<{ rps: number; mbps: number }> {
  const { stdout } = await run(
    'wrk',
    ['-t1', '-c8', `-d${WRK_SECONDS}s`, `http://127.0.0.1:${port}${path}`],
    { timeout: (WRK_SECONDS + 30) * 1000 },
  );
  const rps = Number(/Requests\/sec:\s*([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN);
  const t = /Transfer\/sec:\s*([\d.]+)(\w+)/.exec(stdout);
  const unit = { B: 1 / 2 ** 20, KB: 1 / 1024, MB: 1, GB: 1024 }[t?.[2] ?? 'MB'] ?? 1;
  return { rps, mbps: Number(t?.[1] ?? Number.NaN) * unit };
}

async function tftpRounds(
  ours: { child: ChildProcess; tftp: number },
  root: string,
  children: ChildProcess[],
  missing: string[],
): Promise<void> {
  let hpaPort: number | undefined;
  if (await has('in.tftpd')) {
    hpaPort = await freeUdpPort();
    const hpa = spawn(
      'in.tftpd',
      ['--foreground', '--listen', '--address', `127.0.0.1:${hpaPort}`, '--secure', root],
      { stdio: 'ignore' },
    );
    children.push(hpa);
    await waitTftp(hpaPort);
  } else missing.push('tftpd-hpa (apt-get install tftpd-hpa): TFTP ratios skipped');
  const clients = [curlClient('curl, 512-byte blocks', 512), curlClient('curl, --tftp-blksize 1468', 1468)];
  if (await has('atftp')) clients.push(atftpClient('atftp, blksize 1468, windowsize 8', 1468, 8));
  else missing.push('atftp (apt-get install atftp): windowsize row skipped');
  const tftpRows: Array<Record<string, string | number>> = [];
  for (const client of clients) {
    const oursS: number[] = [];
    const hpaS: number[] = [];
    let cpu = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const before = cpuSeconds(ours.child.pid!);
      oursS.push(await seconds(() => client.fetch(ours.tftp)));
      cpu += cpuSeconds(ours.child.pid!) - before;
      if (hpaPort !== undefined) hpaS.push(await seconds(() => client.fetch(hpaPort)));
    }
    const o = summarize(oursS).p50;
    const h = hpaPort !== undefined ? summarize(hpaS).p50 : Number.NaN;
    const blocks = Math.floor(50_000_000 / client.blksize) + 1;
    tftpRows.push({
      '50 MB': client.label,
      'agent s (p50)': o,
      'tftpd-hpa s (p50)': h,
      'agent MB/s': 50 / o,
      'tftpd-hpa MB/s': Number.isNaN(h) ? 'n/a' : 50 / h,
      'ratio (agent / tftpd-hpa)': Number.isNaN(h) ? 'n/a' : (h / o).toFixed(2),
      'agent CPU µs/block': ((cpu / ROUNDS / blocks) * 1e6).toFixed(1),
      'agent s (all)': oursS.map((x) => x.toFixed(2)).join(' '),
      'tftpd-hpa s (all)': hpaS.map((x) => x.toFixed(2)).join(' '),
    });
  }
  printTable(`TFTP, ${ROUNDS} rounds each, interleaved`, tftpRows);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-bench-boot-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  // tftpd-hpa and nginx workers drop to an unprivileged user: the tree must be world-readable.
  chmodSync(dir, 0o755);
  writeFileSync(join(root, 'big.img'), randomBytes(50_000_000), { mode: 0o644 });
  writeFileSync(join(root, 'vmlinuz'), randomBytes(10 * 1024 * 1024), { mode: 0o644 });
  writeFileSync(
    join(root, 'small.ipxe'),
    `#!ipxe\n${'kernel http://10.0.2.2:8088/vmlinuz console=ttyS0 quiet\n'.repeat(36)}boot\n`,
    { mode: 0o644 },
  );
  const children: ChildProcess[] = [];
  const missing: string[] = [];
  try {
    const ours = await startOurs(root);
    children.push(ours.child);
    await waitTftp(ours.tftp);
    await waitHttp(ours.http);

    // ---- TFTP ----
    if (PARTS.includes('tftp')) await tftpRounds(ours, root, children, missing);

    // ---- HTTP ----
    let nginxPort: number | undefined;
    const haveWrk = PARTS.includes('http') && (await has('wrk'));
    if (!haveWrk && PARTS.includes('http')) missing.push('wrk (apt-get install wrk): HTTP rows skipped');
    if (haveWrk && (await has('nginx'))) {
      nginxPort = await freePort();
      const prefix = join(dir, 'nginx');
      mkdirSync(join(prefix, 'tmp'), { recursive: true });
      const conf = join(prefix, 'nginx.conf');
      writeFileSync(
        conf,
        [
          'daemon off;',
          'worker_processes 1;',
          `pid ${join(prefix, 'nginx.pid')};`,
          `error_log ${join(prefix, 'error.log')} warn;`,
          'events { worker_connections 1024; }',
          'http {',
          '  access_log off;',
          '  sendfile on;',
          '  tcp_nopush on;',
          '  keepalive_requests 1000;',
          `  client_body_temp_path ${join(prefix, 'tmp')};`,
          `  proxy_temp_path ${join(prefix, 'tmp')};`,
          `  fastcgi_temp_path ${join(prefix, 'tmp')};`,
          `  uwsgi_temp_path ${join(prefix, 'tmp')};`,
          `  scgi_temp_path ${join(prefix, 'tmp')};`,
          '  default_type application/octet-stream;',
          `  server { listen 127.0.0.1:${nginxPort}; root ${root}; autoindex off; }`,
          '}',
          '',
        ].join('\n'),
      );
      const nginx = spawn('nginx', ['-p', prefix, '-c', conf], { stdio: 'ignore' });
      children.push(nginx);
      await waitHttp(nginxPort);
    } else if (haveWrk) missing.push('nginx (apt-get install nginx): HTTP ratios skipped');
    if (haveWrk) {
      const httpRows: Array<Record<string, string | number>> = [];
      for (const [label, path] of [
        ['10 MiB kernel', '/vmlinuz'],
        ['2 KiB iPXE script', '/small.ipxe'],
      ] as const) {
        const oursR: number[] = [];
        const nginxR: number[] = [];
        let oursMb = 0;
        let nginxMb = 0;
        for (let round = 0; round < ROUNDS; round++) {
          const o = await wrk(ours.http, path);
          oursR.push(o.rps);
          oursMb = Math.max(oursMb, o.mbps);
          if (nginxPort !== undefined) {
            const n = await wrk(nginxPort, path);
            nginxR.push(n.rps);
            nginxMb = Math.max(nginxMb, n.mbps);
          }
        }
        const o = summarize(oursR).p50;
        const n = nginxPort !== undefined ? summarize(nginxR).p50 : Number.NaN;
        httpRows.push({
          'wrk -t1 -c8': label,
          'agent req/s (p50)': Math.round(o),
          'nginx req/s (p50)': Number.isNaN(n) ? 'n/a' : Math.round(n),
          'agent MiB/s (best)': Math.round(oursMb),
          'nginx MiB/s (best)': Math.round(nginxMb),
          'ratio (agent / nginx)': Number.isNaN(n) ? 'n/a' : (o / n).toFixed(2),
        });
      }
      printTable(`HTTP, ${ROUNDS} rounds of ${WRK_SECONDS} s each, interleaved`, httpRows);
    }
    for (const line of missing) process.stdout.write(`\nmissing: ${line}\n`);
    if (!existsSync(root)) throw new Error('the served tree vanished');
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  }
}
