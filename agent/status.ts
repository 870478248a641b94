/**
 * The loopback-only status endpoint:
 *
 * - `GET /healthz`: 200 with a JSON summary while the agent runs (whether or not the
 *   control plane is reachable: the body says `connection`), 503 while it stops;
 * - `GET /metrics`: Prometheus text exposition format 0.0.4, written by hand (a dozen
 *   series do not need a client library).
 *
 * It binds only loopback addresses (the config refuses others, and so does `start`):
 * it has no authentication.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BootServerStats } from './boot/serve.ts';
import { isLoopbackHost } from './config.ts';
import type { Logger } from './log.ts';

export interface AgentSnapshot {
  readonly version: string;
  readonly hostname: string;
  readonly site: string | undefined;
  readonly connection: string;
  readonly transport: string;
  readonly connectedSince: number | undefined;
  readonly reconnects: number;
  readonly invalidMessages: number;
  readonly outboxLength: number;
  readonly reportsSent: number;
  /** Results sent again for want of a `result_ack`. */
  readonly reportsResent?: number;
  /** The control plane's clock minus the agent's, as measured (agent/clock.ts). */
  readonly clockOffsetMs?: number;
  readonly running: number;
  readonly queued: number;
  readonly limit: number;
  /** `${action} ${status}` → count. */
  readonly executed: ReadonlyMap<string, number>;
  readonly deduplicated: number;
  readonly interruptedAtStart: number;
  readonly journalEntries: number;
  readonly startedAt: number;
  readonly stopping: boolean;
  /** Image sync figures (absent when image sync is off). */
  readonly images?: {
    readonly bytesDownloaded: number;
    readonly downloadsRunning: number;
    readonly ready: number;
    readonly syncing: number;
    readonly pending: number;
    readonly error: number;
    readonly corruptDetected: number;
    readonly removed: number;
  };
  /** TFTP / HTTP boot server figures (absent when both are off). */
  readonly boot?: BootServerStats;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

export function renderMetrics(s: AgentSnapshot, now = Date.now()): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, samples: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${labels} ${Number.isFinite(value) ? value : 0}`);
  };
  metric('metalplane_agent_info', 'gauge', 'Agent build and identity.', [
    [`{version="${esc(s.version)}",hostname="${esc(s.hostname)}",site="${esc(s.site ?? '')}"}`, 1],
  ]);
  const executed = [...s.executed.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, n]): [string, number] => {
      const [action, status] = key.split(' ');
      return [`{action="${esc(action ?? '')}",status="${esc(status ?? '')}"}`, n];
    });
  metric(
    'metalplane_agent_commands_executed_total',
    'counter',
    'Commands finished, by action and status.',
    executed,
  );
  metric(
    'metalplane_agent_commands_deduplicated_total',
    'counter',
    'Redeliveries of a known command id answered without running it again.',
    [['', s.deduplicated]],
  );
  metric(
    'metalplane_agent_commands_interrupted_at_start_total',
    'counter',
    'Commands found started but not finished at start-up, reported failed.',
    [['', s.interruptedAtStart]],
  );
  metric('metalplane_agent_commands_running', 'gauge', 'Commands running now.', [['', s.running]]);
  metric(
    'metalplane_agent_commands_queued',
    'gauge',
    'Commands received and waiting for their node or a slot.',
    [['', s.queued]],
  );
  metric('metalplane_agent_commands_limit', 'gauge', 'Most commands run at once.', [['', s.limit]]);
  metric('metalplane_agent_journal_entries', 'gauge', 'Command ids remembered by the journal.', [
    ['', s.journalEntries],
  ]);
  const states = ['connecting', 'websocket', 'polling', 'offline', 'stopped'];
  metric(
    'metalplane_agent_connection_state',
    'gauge',
    'Channel state (1 for the current one).',
    states.map((st) => [`{state="${st}"}`, s.connection === st ? 1 : 0]),
  );
  metric('metalplane_agent_connected', 'gauge', 'Whether the control plane is reachable now.', [
    ['', s.connection === 'websocket' || s.connection === 'polling' ? 1 : 0],
  ]);
  metric(
    'metalplane_agent_reconnects_total',
    'counter',
    'Reconnection attempts after the channel went down.',
    [['', s.reconnects]],
  );
  metric(
    'metalplane_agent_invalid_messages_total',
    'counter',
    'Messages from the control plane refused by validation.',
    [['', s.invalidMessages]],
  );
  metric('metalplane_agent_outbox_length', 'gauge', 'Reports waiting to be sent.', [['', s.outboxLength]]);
  metric('metalplane_agent_reports_sent_total', 'counter', 'Reports handed to the control plane.', [
    ['', s.reportsSent],
  ]);
  metric(
    'metalplane_agent_results_resent_total',
    'counter',
    'Command results sent again because no result_ack came.',
    [['', s.reportsResent ?? 0]],
  );
  metric(
    'metalplane_agent_clock_offset_seconds',
    'gauge',
    "The control plane's clock minus the agent's, measured from its answers' Date headers.",
    [['', (s.clockOffsetMs ?? 0) / 1000]],
  );
  if (s.images) {
    const i = s.images;
    metric('metalplane_agent_image_bytes_downloaded_total', 'counter', 'Image bytes received from S3.', [
      ['', i.bytesDownloaded],
    ]);
    metric('metalplane_agent_image_downloads_running', 'gauge', 'Image file downloads running now.', [
      ['', i.downloadsRunning],
    ]);
    metric(
      'metalplane_agent_images',
      'gauge',
      "The site's images by sync state.",
      (['pending', 'syncing', 'ready', 'error'] as const).map((st) => [`{state="${st}"}`, i[st]]),
    );
    metric(
      'metalplane_agent_image_files_corrupt_total',
      'counter',
      'Local image files found corrupt (removed and downloaded again).',
      [['', i.corruptDetected]],
    );
    metric('metalplane_agent_images_removed_total', 'counter', 'Images removed after their grace period.', [
      ['', i.removed],
    ]);
  }
  const tftp = s.boot?.tftp;
  if (tftp) {
    metric('metalplane_agent_tftp_transfers_active', 'gauge', 'TFTP transfers running now.', [
      ['', tftp.active],
    ]);
    metric(
      'metalplane_agent_tftp_requests_total',
      'counter',
      'TFTP read requests by outcome (refused: never started, e.g. file not found or busy).',
      (['completed', 'failed', 'refused'] as const).map((r) => [`{result="${r}"}`, tftp[r]]),
    );
    metric('metalplane_agent_tftp_bytes_sent_total', 'counter', 'TFTP payload bytes sent.', [
      ['', tftp.bytesSent],
    ]);
    metric('metalplane_agent_tftp_retransmits_total', 'counter', 'TFTP retransmissions after a timeout.', [
      ['', tftp.retransmits],
    ]);
  }
  const httpBoot = s.boot?.http;
  if (httpBoot) {
    metric('metalplane_agent_http_boot_connections', 'gauge', 'Open connections to the HTTP boot server.', [
      ['', httpBoot.connections],
    ]);
    metric(
      'metalplane_agent_http_boot_responses_total',
      'counter',
      'HTTP boot server responses by status class.',
      (['2xx', '3xx', '4xx', '5xx'] as const).map((c) => [`{class="${c}"}`, httpBoot.responses[c]]),
    );
    metric(
      'metalplane_agent_http_boot_bytes_sent_total',
      'counter',
      'File bytes sent by the HTTP boot server.',
      [['', httpBoot.bytesSent]],
    );
  }
  metric('metalplane_agent_uptime_seconds', 'gauge', 'Seconds since the agent started.', [
    ['', Math.round((now - s.startedAt) / 1000)],
  ]);
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  metric('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', [['', mem.rss]]);
  metric('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', [
    ['', (cpu.user + cpu.system) / 1e6],
  ]);
  metric('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', [
    ['', Math.floor(s.startedAt / 1000)],
  ]);
  return `${out.join('\n')}\n`;
}

export function healthBody(s: AgentSnapshot, now = Date.now()): Record<string, unknown> {
  return {
    status: s.stopping ? 'stopping' : 'ok',
    version: s.version,
    hostname: s.hostname,
    site: s.site ?? null,
    connection: s.connection,
    connected: s.connection === 'websocket' || s.connection === 'polling',
    transport: s.transport,
    connected_since: s.connectedSince ? new Date(s.connectedSince).toISOString() : null,
    uptime_seconds: Math.round((now - s.startedAt) / 1000),
    commands: { running: s.running, queued: s.queued, limit: s.limit },
    outbox: s.outboxLength,
    ...(s.images
      ? {
          images: {
            ready: s.images.ready,
            syncing: s.images.syncing,
            pending: s.images.pending,
            error: s.images.error,
            bytes_downloaded: s.images.bytesDownloaded,
          },
        }
      : {}),
  };
}

export interface StatusServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startStatusServer(options: {
  host: string;
  port: number;
  snapshot: () => AgentSnapshot;
  log: Logger;
}): Promise<StatusServer> {
  if (!isLoopbackHost(options.host))
    throw new Error(`status endpoint: ${options.host} is not a loopback address`);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    try {
      const snap = options.snapshot();
      if (path === '/healthz') {
        res
          .writeHead(snap.stopping ? 503 : 200, {
            'Content-Type': 'application/json',
            'Cache-Control': 'no-store',
          })
          .end(`${JSON.stringify(healthBody(snap))}\n`);
      } else if (path === '/metrics') {
        res
          .writeHead(200, {
            'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
            'Cache-Control': 'no-store',
          })
          .end(renderMetrics(snap));
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: try /healthz or /metrics\n');
      }
    } catch (error) {
      options.log.error('status endpoint failure', { error });
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end('internal error\n');
    }
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    host: address.address,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
