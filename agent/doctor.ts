/**
 * `metalplane-agent doctor [--config FILE]`: checks what the agent needs from its host, one
 * line per check (`ok`, `warn` or `FAIL`, and what to fix); exit status 1 when any check
 * fails, 2 when the config cannot be read.
 *
 * Checks: the config; the control plane (GET of its root, the Ironic version document)
 * and the clock against its `Date` header (< 5 s apart); the WebSocket URL (opened with
 * the credential, then closed); the TFTP and HTTP ports (free, or held by the running
 * agent of this state directory); the state directory and the boot trees (exist, writable
 * by the service user); the credential (mode 0600); ipmitool and the virtual-media tools
 * (xorriso, mkfs.vfat, mcopy, isolinux.bin): FAIL when an enabled hardware type needs
 * them, warn otherwise.
 */
import { createSocket } from 'node:dgram';
import { constants, existsSync } from 'node:fs';
import { access, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import WebSocket from 'ws';
import { BOOT_ISO_DEFAULTS } from './boot/boot-iso.ts';
import { type AgentConfig, deriveWebSocketUrl, loadConfig } from './config.ts';
import { type HttpRequestOptions, type HttpResponse, httpClient } from './http-client.ts';
import { DEFAULT_SERVICE_USER, type PosixUser, realInstallDeps } from './install.ts';
import { errorMessage } from './log.ts';
import { readCredential, readEnrollment, STATE_FILES } from './state.ts';
import { AGENT_VERSION } from './version.ts';

export type CheckStatus = 'ok' | 'warn' | 'FAIL';
export interface CheckResult {
  readonly name: string;
  readonly status: CheckStatus;
  readonly detail: string;
}

export const MAX_CLOCK_SKEW_MS = 5000;

export interface DoctorDeps {
  /** One HTTP exchange (agent/http-client.ts). */
  request(url: string, options: HttpRequestOptions): Promise<HttpResponse>;
  now(): number;
  /** Opens and closes a WebSocket; resolves with undefined when it opened, else the reason. */
  openWebSocket(url: string, headers: Record<string, string>, timeoutMs: number): Promise<string | undefined>;
  /** A command on PATH, or a file (absolute path): present? */
  which(command: string): boolean;
  lookupUser(name: string): Promise<(PosixUser & { gids?: number[] }) | undefined>;
  /** Whether this process is the service user itself (then access() answers for it). */
  uid(): number;
  /** Binds the port and lets go: undefined when free, else the errno code. */
  tryBind(proto: 'udp' | 'tcp', address: string, port: number): Promise<string | undefined>;
  /** The pids holding a socket bound to the port (from /proc), undefined when unknowable. */
  portHolders(proto: 'udp' | 'tcp', port: number, pids: number[]): Promise<number[] | undefined>;
  processAlive(pid: number): boolean;
}

function onPath(command: string): boolean {
  if (command.startsWith('/')) return existsSync(command);
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(delimiter)
    .some((dir) => dir && existsSync(join(dir, command)));
}

/** Socket inodes bound to `port` (hex in /proc/net/{udp,tcp}{,6}; TCP: listening only). */
async function socketInodes(proto: 'udp' | 'tcp', port: number): Promise<Set<string>> {
  const inodes = new Set<string>();
  for (const table of [proto, `${proto}6`]) {
    let text = '';
    try {
      text = await readFile(`/proc/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const localPort = Number.parseInt(f[1]!.split(':')[1] ?? '', 16);
      if (localPort !== port) continue;
      if (proto === 'tcp' && f[3] !== '0A') continue;
      inodes.add(f[9]!);
    }
  }
  return inodes;
}

export const realDoctorDeps: DoctorDeps = {
  request: (url, options) => httpClient.request(url, options),
  now: () => Date.now(),
  openWebSocket: (url, headers, timeoutMs) =>
    new Promise((resolve) => {
      const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs });
      const done = (reason: string | undefined) => {
        resolve(reason);
        ws.terminate();
      };
      ws.once('open', () => {
        ws.close(1000, 'doctor');
        resolve(undefined);
      });
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        done(`HTTP ${res.statusCode}`);
      });
      ws.once('error', (error) => done(errorMessage(error)));
    }),
  which: onPath,
  async lookupUser(name) {
    const user = await realInstallDeps.lookupUser(name);
    if (!user) return undefined;
    const gids = [user.gid];
    try {
      for (const line of (await readFile('/etc/group', 'utf8')).split('\n')) {
        const f = line.split(':');
        if (f[3]?.split(',').includes(name)) gids.push(Number(f[2]));
      }
    } catch {
      // no /etc/group: the primary group only
    }
    return { ...user, gids };
  },
  uid: () => process.getuid?.() ?? -1,
  tryBind: (proto, address, port) =>
    new Promise((resolve) => {
      if (proto === 'udp') {
        const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
        socket.once('error', (error: NodeJS.ErrnoException) => {
          socket.close();
          resolve(error.code ?? String(error));
        });
        socket.bind(port, address, () => socket.close(() => resolve(undefined)));
      } else {
        const server = createServer();
        server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
        server.listen(port, address, () => server.close(() => resolve(undefined)));
      }
    }),
  async portHolders(proto, port, pids) {
    const inodes = await socketInodes(proto, port);
    if (inodes.size === 0) return undefined;
    const holders: number[] = [];
    for (const pid of pids) {
      let fds: string[];
      try {
        fds = await readdir(`/proc/${pid}/fd`);
      } catch {
        return undefined; // another user's process: cannot tell
      }
      for (const fd of fds) {
        const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
        const m = /^socket:\[(\d+)\]$/.exec(target);
        if (m && inodes.has(m[1]!)) {
          holders.push(pid);
          break;
        }
      }
    }
    return holders;
  },
  processAlive(pid) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  },
};

const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });
const warn = (name: string, detail: string): CheckResult => ({ name, status: 'warn', detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: 'FAIL', detail });

/** Could `user` create files in a directory with this owner and mode? */
export function writableBy(
  info: { uid: number; gid: number; mode: number },
  user: PosixUser & { gids?: number[] },
): boolean {
  if (user.uid === 0) return true;
  const wx = (bits: number) => (info.mode & bits) === bits;
  if (info.uid === user.uid) return wx(0o300);
  if ((user.gids ?? [user.gid]).includes(info.gid)) return wx(0o030);
  return wx(0o003);
}

async function runningAgentPid(config: AgentConfig, deps: DoctorDeps): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(join(config.stateDir, STATE_FILES.lock), 'utf8')).trim());
    return Number.isInteger(pid) && pid > 1 && deps.processAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function checkControlPlane(
  config: AgentConfig,
  deps: DoctorDeps,
  timeoutMs: number,
): Promise<CheckResult[]> {
  const url = config.url!;
  const sent = deps.now();
  let res: HttpResponse;
  try {
    res = await deps.request(`${url}/`, {
      headers: { Accept: 'application/json', 'User-Agent': `metalplane-agent/${AGENT_VERSION} doctor` },
      timeoutMs,
    });
  } catch (error) {
    const cause = (error as Error).cause ? String((error as Error).cause) : errorMessage(error);
    return [
      fail(
        'control plane',
        `GET ${url}/: ${cause}: check url in the config, DNS, the proxy and the firewall (outbound HTTPS)`,
      ),
      warn('clock', 'not checked: the control plane did not answer'),
    ];
  }
  const received = deps.now();
  const results: CheckResult[] = [];
  if (res.status >= 500) {
    results.push(
      fail(
        'control plane',
        `GET ${url}/: HTTP ${res.status}: the control plane is unwell (its logs say why)`,
      ),
    );
  } else {
    results.push(ok('control plane', `GET ${url}/: HTTP ${res.status} in ${received - sent} ms`));
  }
  const { date } = res.headers;
  const serverMs = date ? Date.parse(date) : Number.NaN;
  if (!Number.isFinite(serverMs)) {
    results.push(warn('clock', 'the control plane sent no Date header: skew not measured'));
  } else {
    // The header has whole seconds: its middle, against the middle of the request.
    const skew = Math.round(serverMs + 500 - (sent + received) / 2);
    const text = `${skew >= 0 ? 'behind' : 'ahead of'} the control plane by ${(Math.abs(skew) / 1000).toFixed(1)} s`;
    results.push(
      Math.abs(skew) < MAX_CLOCK_SKEW_MS
        ? ok('clock', text)
        : fail(
            'clock',
            `${text} (limit ${MAX_CLOCK_SKEW_MS / 1000} s): run NTP on this host (timedatectl set-ntp true, or chrony)`,
          ),
    );
  }
  return results;
}

async function checkWebSocket(
  config: AgentConfig,
  deps: DoctorDeps,
  timeoutMs: number,
): Promise<CheckResult> {
  const enrollment = await readEnrollment(config.stateDir);
  const url =
    config.websocketUrl ??
    (typeof enrollment.websocket_url === 'string' ? enrollment.websocket_url : undefined) ??
    deriveWebSocketUrl(config.url!);
  let credential: string | undefined;
  try {
    credential = await readCredential(config.stateDir);
  } catch {
    credential = undefined;
  }
  const reason = await deps.openWebSocket(
    url,
    credential ? { Authorization: `Bearer ${credential}` } : {},
    timeoutMs,
  );
  if (reason === undefined) return ok('websocket', `${url}: opened and closed`);
  if (/^HTTP (401|403)$/.test(reason)) {
    return credential
      ? fail(
          'websocket',
          `${url}: ${reason}: the credential was refused (revoked?): enroll again with metalplane-agent install --force`,
        )
      : ok('websocket', `${url}: reachable (${reason} without a credential: not enrolled yet)`);
  }
  return fail(
    'websocket',
    `${url}: ${reason}: check websocket_url, the proxy and the firewall (outbound HTTPS/WebSocket); transport: polling works without it`,
  );
}

async function checkPort(
  name: string,
  proto: 'udp' | 'tcp',
  server: { enabled: boolean; address: string; port: number },
  agentPid: number | undefined,
  deps: DoctorDeps,
): Promise<CheckResult> {
  if (!server.enabled) return ok(name, 'the agent does not serve it (enabled: false)');
  const where = `${server.address}:${server.port}/${proto}`;
  if (server.port === 0) return ok(name, `${where}: any free port`);
  const error = await deps.tryBind(proto, server.address, server.port);
  if (error === undefined) return ok(name, `${where}: free`);
  if (error === 'EACCES') {
    return deps.uid() === 0
      ? fail(name, `${where}: bind refused (EACCES): check the host's security policy`)
      : warn(
          name,
          `${where}: a port below 1024 needs CAP_NET_BIND_SERVICE (the systemd unit grants it; run doctor as root to check)`,
        );
  }
  if (error === 'EADDRINUSE') {
    if (agentPid !== undefined) {
      const holders = await deps.portHolders(proto, server.port, [agentPid]);
      if (holders?.includes(agentPid)) return ok(name, `${where}: served by this agent (pid ${agentPid})`);
      if (holders === undefined)
        return warn(
          name,
          `${where}: in use, the agent (pid ${agentPid}) is running: probably by it (run doctor as root to be sure)`,
        );
    }
    return fail(
      name,
      `${where}: in use by another program: stop it (ss -${proto === 'udp' ? 'u' : 't'}lpn 'sport = :${server.port}'), or set ${name.split(' ')[0]}.enabled: false if it serves the same tree`,
    );
  }
  if (error === 'EADDRNOTAVAIL')
    return fail(name, `${where}: no interface has this address: fix ${name.split(' ')[0]}.address`);
  return fail(name, `${where}: ${error}`);
}

async function checkDir(
  name: string,
  dir: string,
  user: string,
  account: (PosixUser & { gids?: number[] }) | undefined,
  deps: DoctorDeps,
  privateDir = false,
): Promise<CheckResult> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(dir);
  } catch {
    return fail(
      name,
      `${dir}: missing: install -d -o ${user} -g ${user} -m ${privateDir ? '0700' : '0755'} ${dir}`,
    );
  }
  if (!info.isDirectory()) return fail(name, `${dir}: not a directory`);
  const fix = `chown ${user}: ${dir}${privateDir ? ` && chmod 0700 ${dir}` : ''}`;
  if (account && deps.uid() !== account.uid) {
    if (!writableBy(info, account)) return fail(name, `${dir}: not writable by ${user}: ${fix}`);
  } else {
    try {
      await access(dir, constants.W_OK | constants.X_OK);
    } catch {
      return fail(name, `${dir}: not writable by ${account ? user : 'this user'}: ${fix}`);
    }
  }
  if (privateDir && (info.mode & 0o077) !== 0)
    return fail(
      name,
      `${dir}: mode ${(info.mode & 0o777).toString(8)}: others can read the credential: chmod 0700 ${dir}`,
    );
  return ok(name, `${dir}: writable by ${account || deps.uid() !== 0 ? user : 'root'}`);
}

async function checkCredential(
  config: AgentConfig,
  user: string,
  account: PosixUser | undefined,
): Promise<CheckResult> {
  const path = join(config.stateDir, STATE_FILES.credential);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT'
      ? fail('credential', `${path}: not enrolled: metalplane-agent install --url URL --token-file FILE`)
      : fail('credential', `${path}: ${errorMessage(error)}: run doctor as root or as ${user}`);
  }
  const mode = info.mode & 0o777;
  if (mode !== 0o600)
    return fail('credential', `${path}: mode ${mode.toString(8).padStart(4, '0')}: chmod 0600 ${path}`);
  if (account && info.uid !== account.uid)
    return fail('credential', `${path}: owned by uid ${info.uid}, not ${user}: chown ${user}: ${path}`);
  return ok('credential', `${path}: mode 0600${account ? `, owned by ${user}` : ''}`);
}

function checkTools(config: AgentConfig, deps: DoctorDeps): CheckResult[] {
  const ipmi = config.drivers.includes('ipmi');
  const vmedia = config.drivers.includes('redfish');
  const tool = (what: string, present: boolean, needed: boolean, neededBy: string, pkg: string) =>
    present ? ok(what, 'present') : (needed ? fail : warn)(what, `missing (${neededBy}): apt install ${pkg}`);
  return [
    tool('ipmitool', deps.which('ipmitool'), ipmi, 'the ipmi hardware type', 'ipmitool'),
    tool('xorriso', deps.which('xorriso'), vmedia, 'virtual media boot ISOs and config drives', 'xorriso'),
    tool('mkfs.vfat', deps.which('mkfs.vfat'), vmedia, "UEFI virtual media's boot partition", 'dosfstools'),
    tool('mcopy', deps.which('mcopy'), vmedia, "UEFI virtual media's boot partition", 'mtools'),
    tool(
      'isolinux.bin',
      deps.which(BOOT_ISO_DEFAULTS.isolinuxBin),
      vmedia,
      'BIOS virtual media boot ISOs',
      'isolinux syslinux-common',
    ),
  ];
}

export interface DoctorOptions {
  readonly configFile: string;
  readonly user?: string;
  readonly timeoutMs?: number;
}

/** Runs every check; a config that cannot be read is the one result then. */
export async function runDoctor(
  options: DoctorOptions,
  deps: DoctorDeps = realDoctorDeps,
): Promise<CheckResult[]> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let config: AgentConfig;
  try {
    config = loadConfig(options.configFile, { required: true });
  } catch (error) {
    return [
      fail(
        'config',
        `${errorMessage(error).replaceAll('\n', '; ')}: fix the file (metalplane-agent check-config)`,
      ),
    ];
  }
  const results: CheckResult[] = [ok('config', `${options.configFile}: valid`)];
  const user = options.user ?? DEFAULT_SERVICE_USER;
  let account = await deps.lookupUser(user);
  if (!account) {
    results.push(
      deps.uid() === 0
        ? fail('service user', `${user} does not exist: reinstall the package, or useradd --system ${user}`)
        : warn('service user', `${user} unknown: directories checked for this user instead`),
    );
    account = undefined;
  } else {
    results.push(ok('service user', `${user} (uid ${account.uid})`));
  }
  if (config.url) {
    results.push(...(await checkControlPlane(config, deps, timeoutMs)));
    results.push(await checkWebSocket(config, deps, timeoutMs));
  } else {
    results.push(
      fail(
        'control plane',
        `${options.configFile}:url: unset: set it, or metalplane-agent install --url URL`,
      ),
    );
  }
  const agentPid = await runningAgentPid(config, deps);
  results.push(await checkPort('tftp port', 'udp', config.tftp, agentPid, deps));
  results.push(await checkPort('http port', 'tcp', config.http, agentPid, deps));
  results.push(await checkDir('state dir', config.stateDir, user, account, deps, true));
  results.push(await checkCredential(config, user, account));
  results.push(await checkDir('tftp root', config.tftp.root, user, account, deps));
  results.push(await checkDir('http root', config.http.root, user, account, deps));
  if (config.images.enabled && !config.images.dir.startsWith(`${config.http.root}/`)) {
    results.push(await checkDir('images dir', config.images.dir, user, account, deps));
  }
  results.push(...checkTools(config, deps));
  return results;
}

export function formatResults(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  return results.map((r) => `${r.status.padEnd(4)} ${r.name.padEnd(width)}  ${r.detail}\n`).join('');
}
