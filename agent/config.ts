/**
 * The agent's one configuration file (YAML). Every field but `url` has a default; every
 * error names the file and the field (`/etc/metalplane-agent/config.yaml:status.address:
 * must be a loopback address`), and all errors are reported at once. Unknown fields are
 * errors too, so a typo never silently falls back to a default.
 *
 * Durations are a number of seconds or a string with a unit: `500ms`, `30s`, `5m`, `2h`,
 * `14d`. Relative paths are relative to the directory of the config file.
 * `agent/metalplane-agent.example.yaml` shows every field with its default.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { DRIVER_NAMES } from './drivers/registry.ts';
import { LOG_LEVELS, type LogLevel } from './log.ts';

export const DEFAULT_CONFIG_FILE = '/etc/metalplane-agent/config.yaml';
/**
 * The hardware types `drivers` may list: the built-in ones (`agent/drivers/registry.ts`).
 * A test adding its own types passes them to `startAgent`, which checks the names again.
 */
export const KNOWN_DRIVERS: readonly string[] = DRIVER_NAMES;
export type Transport = 'websocket' | 'polling' | 'auto';

export interface AgentConfig {
  /** The file it was read from (undefined: defaults only). */
  readonly file: string | undefined;
  /** Control plane base URL, no trailing slash (the Ironic API root, e.g. `https://metal.example.com`). */
  readonly url: string | undefined;
  /** Explicit WebSocket URL; when undefined the one from enrollment, else derived from `url`. */
  readonly websocketUrl: string | undefined;
  readonly transport: Transport;
  readonly stateDir: string;
  readonly hostname: string;
  /** Hardware types enabled on this agent (Ironic's `enabled_hardware_types`). */
  readonly drivers: readonly string[];
  readonly logLevel: LogLevel;
  readonly heartbeatIntervalMs: number;
  /**
   * How often the agent pulls even without a `wake` while it has work about (for 3
   * minutes after any other pull): a lost `commands` answer or a lost result (its message
   * comes back after the queue's visibility timeout) is recovered within this.
   */
  readonly pullIntervalMs: number;
  /**
   * The same once idle (no other pull for 3 minutes): the bound on a lost `wake` to an
   * idle site. Never shorter than `pullIntervalMs`.
   */
  readonly idlePullIntervalMs: number;
  /** How long a sent result waits for its `result_ack` before it is sent again. */
  readonly resultResendIntervalMs: number;
  readonly shutdownGraceMs: number;
  readonly journalRetentionMs: number;
  readonly maxCommands: number;
  readonly reconnect: {
    readonly initialDelayMs: number;
    readonly maxDelayMs: number;
    readonly websocketFailuresBeforePolling: number;
    readonly websocketRetryIntervalMs: number;
  };
  readonly pollWaitSeconds: number;
  /**
   * Boot files (`agent/boot/`): the URL nodes reach the HTTP root at (default: from
   * `http.address`/`http.port`), the TFTP URL (reported only), dnsmasq's dhcp-hostsdir.
   */
  readonly boot: {
    readonly httpUrl: string | undefined;
    readonly tftpUrl: string | undefined;
    readonly dhcpHostsDir: string | undefined;
    /**
     * The base URL BMCs fetch virtual media from (the agent's HTTP server as the
     * management network reaches it); default: `http_url`, as the nodes reach it.
     */
    readonly virtualMediaUrl: string | undefined;
  };
  /** The periodic power-state sync (`agent/power/sync.ts`). */
  readonly powerSync: {
    readonly enabled: boolean;
    readonly intervalMs: number;
    readonly concurrency: number;
    readonly probeTimeoutMs: number;
    /** Read IPMI power states with the built-in RMCP+ client instead of spawning ipmitool. */
    readonly native: boolean;
  };
  /** ipmitool: per-call timeout, quiet time between calls to one BMC, retries of transient errors. */
  readonly ipmi: {
    readonly commandTimeoutMs: number;
    readonly minCommandIntervalMs: number;
    readonly retries: number;
  };
  /** The Redfish client (`agent/drivers/redfish/`). */
  readonly redfish: {
    readonly requestTimeoutMs: number;
    readonly minRequestIntervalMs: number;
    readonly circuitCooldownMs: number;
    readonly pollIntervalMs: number;
  };
  /** undefined: the status endpoint is off. */
  readonly status: { readonly host: string; readonly port: number } | undefined;
  /** The agent's own TFTP server (agent/boot/tftp-server.ts); `enabled: false` when the site runs tftpd. */
  readonly tftp: {
    readonly enabled: boolean;
    readonly address: string;
    readonly root: string;
    readonly port: number;
    readonly maxBlksize: number;
    readonly maxTransfers: number;
    readonly maxTransfersPerClient: number;
  };
  /** The agent's own HTTP boot server (agent/boot/http-server.ts); `enabled: false` when the site runs nginx. */
  readonly http: {
    readonly enabled: boolean;
    readonly address: string;
    readonly root: string;
    readonly port: number;
    readonly maxConnections: number;
  };
  /** Image sync (agent/images/): where, how many at once, how fast, how often, how long kept. */
  readonly images: {
    readonly enabled: boolean;
    readonly dir: string;
    readonly concurrency: number;
    /** Bytes per second for all downloads together; 0: unlimited. */
    readonly bandwidthLimit: number;
    readonly refreshIntervalMs: number;
    readonly gcGraceMs: number;
    /** 0: never re-hash ready files (they are still checked at start-up). */
    readonly verifyIntervalMs: number;
  };
  /**
   * The Metalplane ramdisk's sessions (agent/ramdisk/): the heartbeat interval it is told
   * (lost after 3 missed), how many boots and sessions at once, how long a boot's token waits.
   */
  readonly ramdisk: {
    readonly heartbeatIntervalMs: number;
    readonly maxSessions: number;
    readonly tokenTtlMs: number;
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

export const DEFAULTS = {
  transport: 'auto' as Transport,
  stateDir: '/var/lib/metalplane-agent',
  drivers: ['fake-hardware'],
  logLevel: 'info' as LogLevel,
  heartbeatInterval: '30s',
  pullInterval: '30s',
  idlePullInterval: '5m',
  resultResendInterval: '10s',
  shutdownGrace: '20s',
  journalRetention: '14d',
  maxCommands: 8,
  initialDelay: '500ms',
  maxDelay: '30s',
  websocketFailuresBeforePolling: 3,
  websocketRetryInterval: '5m',
  pollWait: '20s',
  powerSyncInterval: '60s',
  powerSyncConcurrency: 16,
  powerSyncTimeout: '5s',
  ipmiCommandTimeout: '30s',
  redfishRequestTimeout: '10s',
  redfishMinRequestInterval: '20ms',
  redfishCircuitCooldown: '30s',
  redfishPollInterval: '1s',
  ipmiMinCommandInterval: '100ms',
  ipmiRetries: 2,
  statusAddress: '127.0.0.1:9469',
  tftpRoot: '/var/lib/tftpboot',
  tftpPort: 69,
  tftpAddress: '0.0.0.0',
  tftpMaxBlksize: 65464,
  tftpMaxTransfers: 128,
  tftpMaxTransfersPerClient: 8,
  httpRoot: '/var/www/html/pxe',
  httpPort: 8080,
  httpAddress: '0.0.0.0',
  httpMaxConnections: 256,
  /** Images default to `<http.root>/images`, i.e. /var/www/html/pxe/images. */
  imagesConcurrency: 2,
  imagesBandwidthLimit: '0',
  imagesRefreshInterval: '5m',
  imagesGcGrace: '1h',
  imagesVerifyInterval: '7d',
  ramdiskHeartbeatInterval: '10s',
  ramdiskMaxSessions: 256,
  ramdiskTokenTtl: '1h',
};

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Is this host a loopback address (127.0.0.0/8, ::1, localhost)? */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** `ws(s)://host/base/v1/agent/ws` from `http(s)://host/base`: a guess; enrollment or the config can say better. */
export function deriveWebSocketUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/agent/ws`;
  return u.toString();
}

class Reader {
  readonly problems: string[] = [];
  readonly where: string;
  constructor(where: string) {
    this.where = where;
  }
  fail(field: string, message: string): undefined {
    this.problems.push(`${this.where}:${field}: ${message}`);
    return undefined;
  }
  section(root: Obj, key: string, known: string[]): Obj {
    const v = root[key];
    if (v === undefined || v === null) return {};
    if (!isObj(v)) {
      this.fail(key, 'must be a mapping');
      return {};
    }
    this.unknown(v, known, `${key}.`);
    return v;
  }
  unknown(obj: Obj, known: string[], prefix = ''): void {
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) this.fail(`${prefix}${k}`, `unknown field (known: ${known.join(', ')})`);
    }
  }
  string(obj: Obj, key: string, field: string, def: string): string;
  string(obj: Obj, key: string, field: string, def: undefined): string | undefined;
  string(obj: Obj, key: string, field: string, def: string | undefined): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' || v.length === 0) return this.fail(field, 'must be a non-empty string') ?? def;
    return v;
  }
  bool(obj: Obj, key: string, field: string, def: boolean): boolean {
    const v = obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'boolean') return this.fail(field, 'must be true or false') ?? def;
    return v;
  }
  int(obj: Obj, key: string, field: string, def: number, min: number, max: number): number {
    const v = obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      return this.fail(field, `must be an integer from ${min} to ${max}`) ?? def;
    }
    return v;
  }
  duration(obj: Obj, key: string, field: string, def: string, minMs: number, maxMs: number): number {
    const v = obj[key] ?? def;
    const ms = parseDuration(v);
    if (ms === undefined) {
      return (
        this.fail(
          field,
          'must be a duration: seconds as a number, or e.g. "500ms", "30s", "5m", "2h", "14d"',
        ) ?? 0
      );
    }
    if (ms < minMs || ms > maxMs) {
      return this.fail(field, `must be from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`) ?? 0;
    }
    return ms;
  }
  /** An IP address literal (the boot servers bind one; `0.0.0.0` or `::` for all). */
  ipAddress(obj: Obj, key: string, field: string, def: string): string {
    const v = this.string(obj, key, field, def);
    if (isIP(v) === 0)
      return (
        this.fail(field, `must be an IP address such as 0.0.0.0 or 10.0.0.1, got ${JSON.stringify(v)}`) ?? def
      );
    return v;
  }
  oneOf<T extends string>(obj: Obj, key: string, field: string, def: T, allowed: readonly T[]): T {
    const v = obj[key];
    if (v === undefined || v === null) return def;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      return this.fail(field, `must be one of ${allowed.join(', ')}`) ?? def;
    }
    return v as T;
  }
  httpUrl(obj: Obj, key: string, field: string, schemes: string[]): string | undefined {
    const v = this.string(obj, key, field, undefined);
    if (v === undefined) return undefined;
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      return this.fail(field, `not a URL: ${JSON.stringify(v)}`);
    }
    if (!schemes.includes(u.protocol)) return this.fail(field, `must be a ${schemes.join(' or ')} URL`);
    if (u.search || u.hash) return this.fail(field, 'must not have a query or fragment');
    return v.replace(/\/+$/, '');
  }
}

export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2]!]!);
}

const RATE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kbit: 1e3 / 8,
  mbit: 1e6 / 8,
  gbit: 1e9 / 8,
};

/**
 * A bandwidth in bytes per second: `0`/`off`/`unlimited` (→ 0), a number of bytes, or
 * e.g. `100MiB/s`, `50MB/s`, `1Gbit/s` (the `/s` is optional). undefined if unreadable.
 */
export function parseBandwidth(value: unknown): number | undefined {
  if (value === 0 || value === false || value === 'off' || value === 'unlimited') return 0;
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.floor(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b|[kmg]bit|b)?\s*(?:\/\s*s)?\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = RATE_UNITS[(m[2] ?? '').toLowerCase()];
  return unit === undefined ? undefined : Math.floor(Number(m[1]) * unit);
}

function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function parseStatusAddress(r: Reader, value: unknown): { host: string; port: number } | undefined {
  const field = 'status.address';
  if (value === false || value === 'off') return undefined;
  const text = value === undefined || value === null ? DEFAULTS.statusAddress : value;
  if (typeof text !== 'string') return r.fail(field, 'must be "host:port" or "off"');
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m)
    return r.fail(field, `must be "host:port" (IPv6 as "[::1]:port") or "off", got ${JSON.stringify(text)}`);
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (port > 65535) return r.fail(field, 'port must be from 0 to 65535');
  if (!isLoopbackHost(host)) {
    return r.fail(
      field,
      `must be a loopback address (127.0.0.1, ::1 or localhost): the status endpoint is unauthenticated, ${host} is refused`,
    );
  }
  return { host, port };
}

export interface ConfigOverrides {
  url?: string;
  stateDir?: string;
}

/** Validates a parsed YAML document. `where` names it in errors; `baseDir` resolves relative paths. */
export function validateConfig(
  raw: unknown,
  where: string,
  baseDir: string,
  overrides: ConfigOverrides = {},
): AgentConfig {
  const r = new Reader(where);
  const root: Obj = raw === undefined || raw === null ? {} : isObj(raw) ? { ...raw } : {};
  if (raw !== undefined && raw !== null && !isObj(raw))
    r.problems.push(`${where}: the file must hold a mapping`);
  if (overrides.url !== undefined) root.url = overrides.url;
  if (overrides.stateDir !== undefined) root.state_dir = overrides.stateDir;
  const top = [
    'url',
    'websocket_url',
    'transport',
    'state_dir',
    'hostname',
    'drivers',
    'log_level',
    'heartbeat_interval',
    'pull_interval',
    'idle_pull_interval',
    'result_resend_interval',
    'shutdown_grace',
    'journal_retention',
    'concurrency',
    'reconnect',
    'polling',
    'status',
    'tftp',
    'http',
    'images',
    'power_sync',
    'redfish',
    'ipmi',
    'boot',
    'ramdisk',
  ];
  r.unknown(root, top);
  const path = (p: string) => resolve(baseDir, p);

  const url = r.httpUrl(root, 'url', 'url', ['http:', 'https:']);
  const websocketUrl = r.httpUrl(root, 'websocket_url', 'websocket_url', ['ws:', 'wss:']);
  if (url?.startsWith('http:') && !/^http:\/\/(localhost|127\.|\[::1\])/.test(url)) {
    r.fail('url', 'plain http is only allowed to a loopback host; use https');
  }

  const hostname = r.string(root, 'hostname', 'hostname', osHostname());
  if (!/^[A-Za-z0-9.-]{1,253}$/.test(hostname))
    r.fail('hostname', 'must be letters, digits, dots and dashes');

  let drivers: string[] = DEFAULTS.drivers;
  if (root.drivers !== undefined && root.drivers !== null) {
    if (!Array.isArray(root.drivers) || root.drivers.length === 0) {
      r.fail('drivers', 'must be a non-empty list');
    } else {
      drivers = [];
      root.drivers.forEach((d, i) => {
        if (typeof d !== 'string' || !KNOWN_DRIVERS.includes(d)) {
          r.fail(`drivers[${i}]`, `unknown driver ${JSON.stringify(d)} (known: ${KNOWN_DRIVERS.join(', ')})`);
        } else if (!drivers.includes(d)) drivers.push(d);
      });
    }
  }

  const concurrency = r.section(root, 'concurrency', ['max_commands']);
  const reconnect = r.section(root, 'reconnect', [
    'initial_delay',
    'max_delay',
    'websocket_failures_before_polling',
    'websocket_retry_interval',
  ]);
  const polling = r.section(root, 'polling', ['wait']);
  const powerSync = r.section(root, 'power_sync', [
    'enabled',
    'interval',
    'concurrency',
    'timeout',
    'native',
  ]);
  const ipmi = r.section(root, 'ipmi', ['command_timeout', 'min_command_interval', 'retries']);
  const redfish = r.section(root, 'redfish', [
    'request_timeout',
    'min_request_interval',
    'circuit_cooldown',
    'poll_interval',
  ]);
  const bootSection = r.section(root, 'boot', [
    'http_url',
    'tftp_url',
    'dhcp_hosts_dir',
    'virtual_media_url',
  ]);
  const status = r.section(root, 'status', ['address']);
  const tftp = r.section(root, 'tftp', [
    'enabled',
    'address',
    'root',
    'port',
    'max_blksize',
    'max_transfers',
    'max_transfers_per_client',
  ]);
  const http = r.section(root, 'http', ['enabled', 'address', 'root', 'port', 'max_connections']);
  const images = r.section(root, 'images', [
    'enabled',
    'dir',
    'concurrency',
    'bandwidth_limit',
    'refresh_interval',
    'gc_grace',
    'verify_interval',
  ]);
  const ramdisk = r.section(root, 'ramdisk', ['heartbeat_interval', 'max_sessions', 'token_ttl']);
  const ramdiskHeartbeatMs = r.duration(
    ramdisk,
    'heartbeat_interval',
    'ramdisk.heartbeat_interval',
    DEFAULTS.ramdiskHeartbeatInterval,
    1000,
    300_000,
  );
  if (ramdiskHeartbeatMs % 1000 !== 0) {
    r.fail('ramdisk.heartbeat_interval', 'must be a whole number of seconds (the ramdisk is told seconds)');
  }
  const httpRoot = path(r.string(http, 'root', 'http.root', DEFAULTS.httpRoot));
  const bandwidthLimit = parseBandwidth(images.bandwidth_limit ?? DEFAULTS.imagesBandwidthLimit);
  if (bandwidthLimit === undefined) {
    r.fail(
      'images.bandwidth_limit',
      'must be 0 (unlimited) or a rate such as "100MiB/s", "50MB/s", "1Gbit/s" (bytes as a number)',
    );
  } else if (bandwidthLimit > 0 && bandwidthLimit < 64 * 1024) {
    r.fail('images.bandwidth_limit', 'must be 0 (unlimited) or at least 64KiB/s');
  }

  const initialDelayMs = r.duration(
    reconnect,
    'initial_delay',
    'reconnect.initial_delay',
    DEFAULTS.initialDelay,
    10,
    60_000,
  );
  const maxDelayMs = r.duration(
    reconnect,
    'max_delay',
    'reconnect.max_delay',
    DEFAULTS.maxDelay,
    100,
    3_600_000,
  );
  if (maxDelayMs < initialDelayMs)
    r.fail('reconnect.max_delay', 'must not be less than reconnect.initial_delay');

  const pullIntervalMs = r.duration(
    root,
    'pull_interval',
    'pull_interval',
    DEFAULTS.pullInterval,
    1000,
    600_000,
  );
  const config: AgentConfig = {
    file: undefined,
    url,
    websocketUrl,
    transport: r.oneOf(root, 'transport', 'transport', DEFAULTS.transport, ['websocket', 'polling', 'auto']),
    stateDir: path(r.string(root, 'state_dir', 'state_dir', DEFAULTS.stateDir)),
    hostname,
    drivers,
    logLevel: r.oneOf(root, 'log_level', 'log_level', DEFAULTS.logLevel, LOG_LEVELS),
    heartbeatIntervalMs: r.duration(
      root,
      'heartbeat_interval',
      'heartbeat_interval',
      DEFAULTS.heartbeatInterval,
      1000,
      540_000,
    ),
    pullIntervalMs,
    idlePullIntervalMs: Math.max(
      pullIntervalMs,
      r.duration(
        root,
        'idle_pull_interval',
        'idle_pull_interval',
        DEFAULTS.idlePullInterval,
        1000,
        3_600_000,
      ),
    ),
    resultResendIntervalMs: r.duration(
      root,
      'result_resend_interval',
      'result_resend_interval',
      DEFAULTS.resultResendInterval,
      100,
      600_000,
    ),
    shutdownGraceMs: r.duration(root, 'shutdown_grace', 'shutdown_grace', DEFAULTS.shutdownGrace, 0, 600_000),
    journalRetentionMs: r.duration(
      root,
      'journal_retention',
      'journal_retention',
      DEFAULTS.journalRetention,
      3_600_000,
      90 * 86_400_000,
    ),
    maxCommands: r.int(concurrency, 'max_commands', 'concurrency.max_commands', DEFAULTS.maxCommands, 1, 256),
    reconnect: {
      initialDelayMs,
      maxDelayMs,
      websocketFailuresBeforePolling: r.int(
        reconnect,
        'websocket_failures_before_polling',
        'reconnect.websocket_failures_before_polling',
        DEFAULTS.websocketFailuresBeforePolling,
        1,
        1000,
      ),
      websocketRetryIntervalMs: r.duration(
        reconnect,
        'websocket_retry_interval',
        'reconnect.websocket_retry_interval',
        DEFAULTS.websocketRetryInterval,
        1000,
        86_400_000,
      ),
    },
    pollWaitSeconds: Math.round(
      r.duration(polling, 'wait', 'polling.wait', DEFAULTS.pollWait, 1000, 20_000) / 1000,
    ),
    status: parseStatusAddress(r, status.address),
    boot: {
      httpUrl: r.httpUrl(bootSection, 'http_url', 'boot.http_url', ['http:', 'https:']),
      virtualMediaUrl: r.httpUrl(bootSection, 'virtual_media_url', 'boot.virtual_media_url', [
        'http:',
        'https:',
      ]),
      tftpUrl: r.string(bootSection, 'tftp_url', 'boot.tftp_url', undefined),
      dhcpHostsDir:
        bootSection.dhcp_hosts_dir === undefined
          ? undefined
          : path(r.string(bootSection, 'dhcp_hosts_dir', 'boot.dhcp_hosts_dir', '')),
    },
    powerSync: {
      enabled: r.bool(powerSync, 'enabled', 'power_sync.enabled', true),
      intervalMs: r.duration(
        powerSync,
        'interval',
        'power_sync.interval',
        DEFAULTS.powerSyncInterval,
        1000,
        86_400_000,
      ),
      concurrency: r.int(
        powerSync,
        'concurrency',
        'power_sync.concurrency',
        DEFAULTS.powerSyncConcurrency,
        1,
        256,
      ),
      probeTimeoutMs: r.duration(
        powerSync,
        'timeout',
        'power_sync.timeout',
        DEFAULTS.powerSyncTimeout,
        100,
        120_000,
      ),
      native: r.bool(powerSync, 'native', 'power_sync.native', true),
    },
    ipmi: {
      commandTimeoutMs: r.duration(
        ipmi,
        'command_timeout',
        'ipmi.command_timeout',
        DEFAULTS.ipmiCommandTimeout,
        1000,
        300_000,
      ),
      minCommandIntervalMs: r.duration(
        ipmi,
        'min_command_interval',
        'ipmi.min_command_interval',
        DEFAULTS.ipmiMinCommandInterval,
        0,
        60_000,
      ),
      retries: r.int(ipmi, 'retries', 'ipmi.retries', DEFAULTS.ipmiRetries, 0, 10),
    },
    redfish: {
      requestTimeoutMs: r.duration(
        redfish,
        'request_timeout',
        'redfish.request_timeout',
        DEFAULTS.redfishRequestTimeout,
        500,
        300_000,
      ),
      minRequestIntervalMs: r.duration(
        redfish,
        'min_request_interval',
        'redfish.min_request_interval',
        DEFAULTS.redfishMinRequestInterval,
        0,
        60_000,
      ),
      circuitCooldownMs: r.duration(
        redfish,
        'circuit_cooldown',
        'redfish.circuit_cooldown',
        DEFAULTS.redfishCircuitCooldown,
        0,
        3_600_000,
      ),
      pollIntervalMs: r.duration(
        redfish,
        'poll_interval',
        'redfish.poll_interval',
        DEFAULTS.redfishPollInterval,
        0,
        60_000,
      ),
    },
    tftp: {
      enabled: r.bool(tftp, 'enabled', 'tftp.enabled', true),
      address: r.ipAddress(tftp, 'address', 'tftp.address', DEFAULTS.tftpAddress),
      root: path(r.string(tftp, 'root', 'tftp.root', DEFAULTS.tftpRoot)),
      port: r.int(tftp, 'port', 'tftp.port', DEFAULTS.tftpPort, 0, 65535), // 0: any free port (tests)
      maxBlksize: r.int(tftp, 'max_blksize', 'tftp.max_blksize', DEFAULTS.tftpMaxBlksize, 512, 65464),
      maxTransfers: r.int(tftp, 'max_transfers', 'tftp.max_transfers', DEFAULTS.tftpMaxTransfers, 1, 10_000),
      maxTransfersPerClient: r.int(
        tftp,
        'max_transfers_per_client',
        'tftp.max_transfers_per_client',
        DEFAULTS.tftpMaxTransfersPerClient,
        1,
        1000,
      ),
    },
    http: {
      enabled: r.bool(http, 'enabled', 'http.enabled', true),
      address: r.ipAddress(http, 'address', 'http.address', DEFAULTS.httpAddress),
      root: httpRoot,
      port: r.int(http, 'port', 'http.port', DEFAULTS.httpPort, 0, 65535), // 0: any free port (tests)
      maxConnections: r.int(
        http,
        'max_connections',
        'http.max_connections',
        DEFAULTS.httpMaxConnections,
        1,
        100_000,
      ),
    },
    images: {
      enabled: r.bool(images, 'enabled', 'images.enabled', true),
      dir: path(r.string(images, 'dir', 'images.dir', resolve(httpRoot, 'images'))),
      concurrency: r.int(images, 'concurrency', 'images.concurrency', DEFAULTS.imagesConcurrency, 1, 16),
      bandwidthLimit: bandwidthLimit ?? 0,
      refreshIntervalMs: r.duration(
        images,
        'refresh_interval',
        'images.refresh_interval',
        DEFAULTS.imagesRefreshInterval,
        1000,
        86_400_000,
      ),
      gcGraceMs: r.duration(
        images,
        'gc_grace',
        'images.gc_grace',
        DEFAULTS.imagesGcGrace,
        0,
        30 * 86_400_000,
      ),
      verifyIntervalMs: r.duration(
        images,
        'verify_interval',
        'images.verify_interval',
        DEFAULTS.imagesVerifyInterval,
        0,
        365 * 86_400_000,
      ),
    },
    ramdisk: {
      heartbeatIntervalMs: ramdiskHeartbeatMs,
      maxSessions: r.int(
        ramdisk,
        'max_sessions',
        'ramdisk.max_sessions',
        DEFAULTS.ramdiskMaxSessions,
        1,
        100_000,
      ),
      tokenTtlMs: r.duration(
        ramdisk,
        'token_ttl',
        'ramdisk.token_ttl',
        DEFAULTS.ramdiskTokenTtl,
        60_000,
        7 * 86_400_000,
      ),
    },
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** Parses YAML text (errors as `file:line:col: message`) and validates it. */
export function parseConfig(text: string, file: string, overrides: ConfigOverrides = {}): AgentConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return `${file}:${pos ? `${pos.line}:${pos.col}:` : ''} ${e.message.split('\n')[0]}`;
      }),
    );
  }
  const config = validateConfig(doc.toJS(), file, dirname(resolve(file)), overrides);
  return { ...config, file: resolve(file) };
}

/**
 * Reads and validates the config file. A missing file is an error when `required`;
 * otherwise the defaults (plus overrides) are used, which is what `enroll --url` needs
 * on a fresh host.
 */
export function loadConfig(
  file: string,
  options: ConfigOverrides & { required?: boolean } = {},
): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !options.required) return validateConfig({}, file, process.cwd(), options);
    throw new ConfigError([`${file}: cannot read: ${code ?? String(error)}`]);
  }
  return parseConfig(text, file, options);
}
