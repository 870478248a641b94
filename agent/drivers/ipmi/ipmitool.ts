/**
 * IPMI over LAN through `ipmitool -I lanplus`, as Ironic's ipmitool driver does it:
 * Ironic's `driver_info` names, the password in a 0600 file passed with `-f` (never on
 * a command line another user can read with `ps`), a hard timeout after which the
 * process is killed, one call at a time per BMC with a minimum interval between calls,
 * and errors sorted into what an operator can act on (bad credentials, no answer).
 *
 * The power and management interfaces of the `ipmi` hardware type are built on this.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The `driver_info` fields this runner reads (Ironic's names). */
export interface IpmiTarget {
  readonly ipmi_address: string;
  readonly ipmi_port?: number | string;
  readonly ipmi_username?: string;
  readonly ipmi_password?: string;
  readonly ipmi_priv_level?: 'ADMINISTRATOR' | 'OPERATOR' | 'USER' | 'CALLBACK';
  readonly ipmi_cipher_suite?: number | string;
  readonly ipmi_protocol_version?: '1.5' | '2.0';
  /** Ironic's bridging: `no` (default), `single` (-m/-b/-t) or `dual` (also -B/-T). */
  readonly ipmi_bridging?: 'no' | 'single' | 'dual';
  readonly ipmi_local_address?: number | string;
  readonly ipmi_transit_channel?: number | string;
  readonly ipmi_transit_address?: number | string;
  readonly ipmi_target_channel?: number | string;
  readonly ipmi_target_address?: number | string;
}

const BRIDGE_VALUE = /^(0x[0-9a-fA-F]{1,2}|\d{1,3})$/;

/** ipmitool's bridging options (Ironic's BRIDGING_OPTIONS) for the target, if any. */
function bridgingArgs(target: IpmiTarget): string[] {
  const type = target.ipmi_bridging ?? 'no';
  if (type === 'no') return [];
  if (type !== 'single' && type !== 'dual') {
    throw new IpmiError('invalid', `ipmi_bridging must be no, single or dual: ${String(type)}`);
  }
  const options: Array<[keyof IpmiTarget, string, boolean]> = [
    ['ipmi_local_address', '-m', false],
    ...(type === 'dual'
      ? ([
          ['ipmi_transit_channel', '-B', true],
          ['ipmi_transit_address', '-T', true],
        ] as Array<[keyof IpmiTarget, string, boolean]>)
      : []),
    ['ipmi_target_channel', '-b', true],
    ['ipmi_target_address', '-t', true],
  ];
  const args: string[] = [];
  for (const [field, flag, required] of options) {
    const value = target[field];
    if (value === undefined || value === null) {
      if (required) throw new IpmiError('invalid', `${field} not provided (ipmi_bridging ${type})`);
      continue;
    }
    if (!BRIDGE_VALUE.test(String(value)))
      throw new IpmiError('invalid', `${field} is not a channel or address: ${String(value)}`);
    args.push(flag, String(value));
  }
  return args;
}

export type IpmiErrorKind = 'auth' | 'timeout' | 'unreachable' | 'failed' | 'invalid';

export class IpmiError extends Error {
  override readonly name = 'IpmiError';
  readonly kind: IpmiErrorKind;

  constructor(kind: IpmiErrorKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface IpmitoolOptions {
  /** Kill an ipmitool still running after this long (a hung BMC costs one timeout). */
  readonly timeoutMs?: number;
  /** ipmitool's own retries (-R) and per-try timeout in seconds (-N). */
  readonly retries?: number;
  readonly retryTimeoutSeconds?: number;
  /** Quiet time between two calls to one BMC (BMCs drop sessions opened too fast). */
  readonly minIntervalMs?: number;
  readonly binary?: string;
}

const HOST = /^[A-Za-z0-9.:_-]{1,253}$/;
const PRIV_LEVELS = new Set(['ADMINISTRATOR', 'OPERATOR', 'USER', 'CALLBACK']);

/** ipmitool arguments for the target, without the password (that goes in a file). */
export function connectionArgs(target: IpmiTarget, options: IpmitoolOptions = {}): string[] {
  if (typeof target.ipmi_address !== 'string' || !HOST.test(target.ipmi_address)) {
    throw new IpmiError(
      'invalid',
      `ipmi_address is not a host name or address: ${String(target.ipmi_address)}`,
    );
  }
  const args = ['-I', target.ipmi_protocol_version === '1.5' ? 'lan' : 'lanplus', '-H', target.ipmi_address];
  if (target.ipmi_port !== undefined) {
    const port = Number(target.ipmi_port);
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new IpmiError('invalid', `ipmi_port is not a port: ${target.ipmi_port}`);
    args.push('-p', String(port));
  }
  if (target.ipmi_username !== undefined) {
    if (
      typeof target.ipmi_username !== 'string' ||
      /[\0\n]/.test(target.ipmi_username) ||
      target.ipmi_username.length > 64
    ) {
      throw new IpmiError('invalid', 'ipmi_username must be a string of at most 64 characters');
    }
    args.push('-U', target.ipmi_username);
  }
  if (target.ipmi_priv_level !== undefined) {
    if (!PRIV_LEVELS.has(target.ipmi_priv_level))
      throw new IpmiError('invalid', `ipmi_priv_level must be one of ${[...PRIV_LEVELS].join(', ')}`);
    args.push('-L', target.ipmi_priv_level);
  }
  if (target.ipmi_cipher_suite !== undefined) {
    const suite = Number(target.ipmi_cipher_suite);
    if (!Number.isInteger(suite) || suite < 0 || suite > 17)
      throw new IpmiError('invalid', `ipmi_cipher_suite must be 0-17: ${target.ipmi_cipher_suite}`);
    args.push('-C', String(suite));
  }
  args.push(...bridgingArgs(target));
  args.push('-R', String(options.retries ?? 1), '-N', String(options.retryTimeoutSeconds ?? 1));
  return args;
}

/**
 * What went wrong, from ipmitool's words and how long it took. ipmitool says "Unable to
 * establish IPMI v2 / RMCP+ session" both when the BMC refuses the credentials and when
 * nobody answers; a refusal comes back at once, silence only after the retry timeout.
 */
function classify(stderr: string, elapsedMs: number, retryTimeoutMs: number): IpmiErrorKind {
  if (/RAKP|unauthorized name|HMAC is invalid|password|Authentication/i.test(stderr)) return 'auth';
  if (/Unable to establish|No response|timeout|Get Auth Capabilities error/i.test(stderr)) {
    return elapsedMs < retryTimeoutMs ? 'auth' : 'unreachable';
  }
  return 'failed';
}

const KIND_HINT: Partial<Record<IpmiErrorKind, string>> = {
  auth: ' (the BMC refused the session: check ipmi_username, ipmi_password, ipmi_priv_level and ipmi_cipher_suite)',
  unreachable: ' (no answer: check ipmi_address, ipmi_port and the management network)',
};

/** Runs ipmitool: serialized per BMC, spaced, killed when it hangs. */
export class Ipmitool {
  readonly #options: IpmitoolOptions;
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #lastCall = new Map<string, number>();

  constructor(options: IpmitoolOptions = {}) {
    this.#options = options;
  }

  /** One ipmitool command (e.g. ['power', 'status']); resolves to its stdout. */
  run(target: IpmiTarget, command: readonly string[]): Promise<string> {
    return this.exclusive(target, () => this.#exec(target, command));
  }

  /**
   * Runs `call` as this BMC's only conversation (queued behind the ones before it, after
   * the minimum interval): for other IPMI clients of the same agent (the native status
   * probe of the power sync), so one BMC never sees two sessions of ours at once.
   */
  exclusive<T>(target: Pick<IpmiTarget, 'ipmi_address' | 'ipmi_port'>, call: () => Promise<T>): Promise<T> {
    const key = `${target.ipmi_address}:${target.ipmi_port ?? 623}`;
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.#spaced(key, call));
    this.#queues.set(key, next);
    // Forget idle BMCs so the map does not grow with the fleet's history.
    void next
      .finally(() => {
        if (this.#queues.get(key) === next) this.#queues.delete(key);
      })
      .catch(() => undefined);
    return next;
  }

  async #spaced<T>(key: string, call: () => Promise<T>): Promise<T> {
    const wait = (this.#lastCall.get(key) ?? 0) + (this.#options.minIntervalMs ?? 0) - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    try {
      return await call();
    } finally {
      this.#lastCall.set(key, Date.now());
    }
  }

  #exec(target: IpmiTarget, command: readonly string[]): Promise<string> {
    const args = connectionArgs(target, this.#options);
    const dir = mkdtempSync(join(tmpdir(), 'metalplane-ipmi-'));
    const passwordFile = join(dir, 'password');
    writeFileSync(passwordFile, target.ipmi_password ?? '', { mode: 0o600 });
    args.push('-f', passwordFile, ...command);
    const timeoutMs = this.#options.timeoutMs ?? 15_000;
    const started = Date.now();
    const retryTimeoutMs = (this.#options.retryTimeoutSeconds ?? 1) * 1000;
    return new Promise<string>((resolve, reject) => {
      const child = spawn(this.#options.binary ?? 'ipmitool', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4096);
      });
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
      };
      child.once('error', (error) => {
        finish();
        reject(new IpmiError('failed', `ipmitool could not run: ${error.message}`));
      });
      child.once('close', (code) => {
        finish();
        if (timedOut)
          return reject(
            new IpmiError(
              'timeout',
              `no answer from the BMC at ${target.ipmi_address} within ${timeoutMs} ms`,
            ),
          );
        if (code === 0) return resolve(stdout);
        const detail = stderr.trim().split('\n').slice(-2).join(' ') || `exit code ${code}`;
        const kind = classify(stderr, Date.now() - started, retryTimeoutMs);
        reject(
          new IpmiError(
            kind,
            `ipmitool ${command.join(' ')} failed on ${target.ipmi_address}: ${detail}${KIND_HINT[kind] ?? ''}`,
          ),
        );
      });
    });
  }
}

export type PowerState = 'power on' | 'power off';

/** `power status` as Ironic's power state. */
export async function powerStatus(ipmitool: Ipmitool, target: IpmiTarget): Promise<PowerState> {
  const out = await ipmitool.run(target, ['power', 'status']);
  if (/Chassis Power is on/i.test(out)) return 'power on';
  if (/Chassis Power is off/i.test(out)) return 'power off';
  throw new IpmiError('failed', `unexpected power status answer: ${out.trim().slice(0, 200)}`);
}

export type BootDevice = 'pxe' | 'disk' | 'cdrom' | 'bios' | 'safe';

/** `chassis bootdev` (Ironic's device names; `persistent` keeps it across boots). */
export async function setBootDevice(
  ipmitool: Ipmitool,
  target: IpmiTarget,
  device: BootDevice,
  persistent: boolean,
): Promise<void> {
  const flags = persistent ? ['options=persistent'] : [];
  await ipmitool.run(target, ['chassis', 'bootdev', device, ...flags]);
}

/** `chassis bootparam get 5` parsed into the device and whether it persists. */
export async function getBootDevice(
  ipmitool: Ipmitool,
  target: IpmiTarget,
): Promise<{ device: BootDevice | null; persistent: boolean | null }> {
  const out = await ipmitool.run(target, ['chassis', 'bootparam', 'get', '5']);
  const persistent = /Options apply to all future boots/i.test(out)
    ? true
    : /Options apply to only next boot/i.test(out)
      ? false
      : null;
  const selector = /Boot Device Selector\s*:\s*(.+)/i.exec(out)?.[1] ?? '';
  const device: BootDevice | null = /PXE/i.test(selector)
    ? 'pxe'
    : /Hard-Drive|Hard Drive|disk/i.test(selector)
      ? 'disk'
      : /CD|DVD/i.test(selector)
        ? 'cdrom'
        : /BIOS/i.test(selector)
          ? 'bios'
          : /Safe/i.test(selector)
            ? 'safe'
            : null;
  return { device, persistent };
}
