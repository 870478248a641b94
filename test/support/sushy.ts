/**
 * Real Redfish BMCs for tests: OpenStack's sushy-emulator (sushy-tools 2.2.0 in `.venv`,
 * fake systems driver) on 127.0.0.1, one process per call, in a fresh work directory
 * (its sqlite state survives restarts and the default state dir is shared: never reuse
 * one). The recipe is `../shared/lab/redfish/` (README: quirks, timings, TLS 1.2 only).
 *
 * `wrapper: true` runs `redfish/sushy-lab.py` (copied from the lab) around the same app:
 * a SessionService (X-Auth-Token, idle timeout), power applied at once or after a fixed
 * delay instead of upstream's random 1-11 s, BootSourceOverrideEnabled kept (Once
 * consumed by the next power on), Nmi accepted, unknown ResetTypes refused with 400.
 *
 * Stopped by `stop()`: only the process started here, then its directory is removed.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../local/moto.ts';
import { spawnOwned, stopOwned } from '../../local/processes.ts';
import { selfSignedCert } from './tls.ts';

const projectRoot = join(import.meta.dirname, '..', '..');
const venvBin = join(projectRoot, '.venv', 'bin');
export const sushyWrapper = join(import.meta.dirname, 'redfish', 'sushy-lab.py');

export interface SushySystem {
  readonly uuid: string;
  readonly name: string;
  readonly mac: string;
  /** Initial power state (sushy's 'On' | 'Off'). */
  readonly power: 'On' | 'Off';
}

export interface SushyOptions {
  /** How many systems, or each one's fields (default: one system, Off). */
  readonly systems?: number | readonly Partial<SushySystem>[];
  /** Serve HTTPS with a fresh self-signed certificate (`caPath`). */
  readonly tls?: boolean;
  /** The certificate's subjectAltName (default `IP:127.0.0.1`). */
  readonly certNames?: string;
  /** Run through `sushy-lab.py` (sessions, deterministic power...). */
  readonly wrapper?: boolean;
  /** Wrapper: seconds before a power change shows (default 0; null: upstream's random 1-11 s). */
  readonly powerDelay?: number | null;
  /** Wrapper: a session's idle timeout in seconds (default 1800). */
  readonly sessionTimeout?: number;
  /**
   * Wrapper: logins succeed, but every request carrying a session token is answered 401
   * (a BMC stuck in a 401 loop; default false).
   */
  readonly refuseSessionTokens?: boolean;
  /**
   * Wrapper: the node program (the lab's `fakenode.sh` contract) and its root: each system
   * gets `<nodeRoot>/<name>/`, where a `vm.sh` is started on power on and killed on power
   * off (a real VM behind the fake BMC).
   */
  readonly nodeProgram?: string;
  readonly nodeRoot?: string;
  /** Basic/session credentials (default admin / password); `auth: false` turns auth off. */
  readonly username?: string;
  readonly password?: string;
  readonly auth?: boolean;
  /** Prefix of the systems' names (default `lab`). */
  readonly name?: string;
  /** How long to wait for the service root (default 30 s). */
  readonly readyTimeoutMs?: number;
}

export interface SushyEmulator {
  /** `http(s)://127.0.0.1:<port>`: a node's `redfish_address`. */
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** The self-signed certificate (its own CA) when `tls`. */
  readonly caPath: string | undefined;
  readonly systems: readonly (SushySystem & { readonly path: string })[];
  readonly username: string;
  readonly password: string;
  /** The emulator's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

const py = (value: string) => JSON.stringify(value); // a JSON string is a Python literal too

function systemsOf(options: SushyOptions): SushySystem[] {
  const given: readonly Partial<SushySystem>[] =
    typeof options.systems === 'number'
      ? Array.from({ length: options.systems }, () => ({}))
      : (options.systems ?? [{}]);
  return given.map((system, i) => ({
    uuid: system.uuid ?? randomUUID(),
    name: system.name ?? `${options.name ?? 'lab'}-${i}`,
    mac:
      system.mac ??
      `52:54:00:${[(i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`,
    power: system.power ?? 'Off',
  }));
}

function renderConfig(dir: string, port: number, systems: SushySystem[], options: SushyOptions): string {
  const fake = systems.map((s) => ({
    uuid: s.uuid,
    name: s.name,
    power_state: s.power,
    nics: [{ mac: s.mac, ip: '127.0.0.1' }],
  }));
  const lines = [
    '# rendered by test/support/sushy.ts (Python syntax, read by sushy-emulator --config)',
    "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
    `SUSHY_EMULATOR_LISTEN_PORT = ${port}`,
    "SUSHY_EMULATOR_FEATURE_SET = 'full'",
    `SUSHY_EMULATOR_STATE_DIR = ${py(join(dir, 'state'))}`,
    'SUSHY_EMULATOR_FAKE_DRIVER = True',
    `SUSHY_EMULATOR_FAKE_SYSTEMS = ${JSON.stringify(fake)}`,
    'SUSHY_EMULATOR_VMEDIA_VERIFY_SSL = False',
  ];
  if (options.auth !== false) lines.push(`SUSHY_EMULATOR_AUTH_FILE = ${py(join(dir, 'htpasswd'))}`);
  if (options.wrapper) {
    const delay = options.powerDelay === null ? 'None' : String(options.powerDelay ?? 0);
    lines.push(`SUSHY_LAB_POWER_DELAY = ${delay}`);
    lines.push(`SUSHY_LAB_SESSION_TIMEOUT = ${options.sessionTimeout ?? 1800}`);
    if (options.refuseSessionTokens) lines.push('SUSHY_LAB_REFUSE_SESSION_TOKENS = True');
    if (options.nodeProgram) lines.push(`SUSHY_LAB_NODE_PROGRAM = ${py(options.nodeProgram)}`);
    if (options.nodeRoot) lines.push(`SUSHY_LAB_NODE_ROOT = ${py(options.nodeRoot)}`);
  }
  if (options.tls) {
    lines.push(`SUSHY_EMULATOR_SSL_CERT = ${py(join(dir, 'tls.crt'))}`);
    lines.push(`SUSHY_EMULATOR_SSL_KEY = ${py(join(dir, 'tls.key'))}`);
  }
  return `${lines.join('\n')}\n`;
}

/** An htpasswd line with a bcrypt hash of cost 4 (the emulator re-checks it on every request). */
function htpasswd(user: string, password: string): string {
  const script =
    'import sys, bcrypt; user, pw = sys.stdin.read().split("\\n", 1); ' +
    'print(user + ":" + bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode())';
  return execFileSync(join(venvBin, 'python'), ['-c', script], {
    input: `${user}\n${password}`,
    timeout: 20_000,
  }).toString();
}

/** One GET of the service root (certificate not checked): whether it answers 200. */
function rootAnswers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = (url.startsWith('https:') ? https : http).get(
      `${url}/redfish/v1/`,
      { rejectUnauthorized: false, timeout: 2000 },
      (response) => {
        response.resume();
        resolve(response.statusCode === 200);
      },
    );
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Starts an emulator; resolves once its service root answers. */
export async function startSushy(options: SushyOptions = {}): Promise<SushyEmulator> {
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-sushy-'));
  mkdirSync(join(dir, 'state'));
  mkdirSync(join(dir, 'tmp'));
  const username = options.username ?? 'admin';
  const password = options.password ?? 'password';
  const systems = systemsOf(options);
  try {
    if (options.auth !== false) writeFileSync(join(dir, 'htpasswd'), htpasswd(username, password));
    if (options.tls) selfSignedCert(dir, options.certNames ?? 'IP:127.0.0.1', 'sushy-test-bmc');
    // Another process may take the free port before the emulator binds it: a few tries.
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch(dir, systems, username, password, options);
      } catch (error) {
        if (attempt >= 3 || !/Address already in use/i.test(String(error))) throw error;
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

async function launch(
  dir: string,
  systems: SushySystem[],
  username: string,
  password: string,
  options: SushyOptions,
): Promise<SushyEmulator> {
  const port = await freePort();
  const config = join(dir, 'sushy.conf');
  writeFileSync(config, renderConfig(dir, port, systems, options));
  const logPath = join(dir, 'emulator.log');
  const logFd = openSync(logPath, 'w');
  const [command, args] = options.wrapper
    ? [join(venvBin, 'python'), [sushyWrapper, '--config', config]]
    : [join(venvBin, 'sushy-emulator'), ['--config', config]];
  const child = spawnOwned('sushy-emulator', command, args, {
    stdio: ['ignore', logFd, logFd],
    // Virtual media downloads go to TMPDIR: keep them in the work dir.
    env: { ...process.env, TMPDIR: join(dir, 'tmp') },
  });
  closeSync(logFd);
  const log = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  // Poll the service root until it answers, the process dies, or the deadline passes.
  for (let round = 0; ; round++) {
    if (exited(child) || child.pid === undefined) {
      throw new Error(`sushy-emulator exited before answering:\n${log().slice(-2000)}`);
    }
    if (await rootAnswers(url)) break;
    if (Date.now() > deadline || round > 2000) {
      await stopOwned(child);
      throw new Error(`sushy-emulator did not answer ${url}/redfish/v1/ in time:\n${log().slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    port,
    pid: child.pid,
    dir,
    caPath: options.tls ? join(dir, 'tls.crt') : undefined,
    systems: systems.map((s) => ({ ...s, path: `/redfish/v1/Systems/${s.uuid}` })),
    username,
    password,
    log,
    stop: async () => {
      await stopOwned(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
