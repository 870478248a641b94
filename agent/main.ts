/**
 * The agent daemon: state, executor, channel, reporter and status endpoint wired
 * together, and its orderly stop.
 *
 * Start-up: take the state directory's lock, read the credential, open the journal
 * (compacting it) and the outbox; every command the journal shows started but not
 * finished was cut short by a crash: it is queued as a failed report (INTERRUPTED) and
 * journaled finished, never run again. Only then does the channel connect.
 *
 * Stop (SIGTERM/SIGINT): stop taking commands; give running ones `shutdown_grace`, then
 * abort and journal them as interrupted; try to hand the outbox over for a moment;
 * close the channel. What was queued but not started is simply redelivered later.
 */
import { join } from 'node:path';
import type { Command } from '../protocol/messages.ts';
import { DeferredAcks } from './acks.ts';
import { bootActions } from './boot/actions.ts';
import { CallbackTokens, callbackRoute, withCallbackUrls } from './boot/callback.ts';
import { BootTree } from './boot/files.ts';
import { withImagePins } from './boot/pins.ts';
import { type BootServers, startBootServers } from './boot/serve.ts';
import { virtualMediaSource } from './boot/virtual-media.ts';
import { Channel } from './channel.ts';
import { ControlPlaneClock } from './clock.ts';
import { type AgentConfig, deriveWebSocketUrl } from './config.ts';
import { type ActionRegistry, createRegistry, hardwareModules } from './drivers/registry.ts';
import type { DriverContext, HardwareModule } from './drivers/types.ts';
import { Executor } from './executor.ts';
import { httpClient, parseJsonBody } from './http-client.ts';
import { ImageManager } from './images/manager.ts';
import { createLogger, errorMessage, type Logger } from './log.ts';
import { listSiteNodes } from './power/nodes.ts';
import { PowerSync } from './power/sync.ts';
import { RAMDISK_PATH, ramdiskActions, withRamdiskBoot } from './ramdisk/actions.ts';
import { Discovery } from './ramdisk/discovery.ts';
import { ramdiskRoute } from './ramdisk/endpoint.ts';
import { FileGrants } from './ramdisk/file-grants.ts';
import { RamdiskSessions } from './ramdisk/sessions.ts';
import { Reporter } from './reporter.ts';
import {
  acquireLock,
  ensureStateDir,
  Journal,
  Outbox,
  readCredential,
  readEnrollment,
  recoverInterrupted,
  writeCredential,
} from './state.ts';
import { type AgentSnapshot, type StatusServer, startStatusServer } from './status.ts';
import { AGENT_VERSION } from './version.ts';

/** The URL nodes reach this agent's HTTP root at (for boot scripts and the callback). */
function nodesHttpUrl(config: AgentConfig): string {
  if (config.boot.httpUrl) return config.boot.httpUrl.replace(/\/+$/, '');
  const host =
    config.http.address === '0.0.0.0' || config.http.address === '::' ? '127.0.0.1' : config.http.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
}

/** How long a stop waits for the outbox to drain. */
const STOP_FLUSH_MS = 2000;
/** One more pull this long after the last result (catches a pull that overtook a result). */
const DRAIN_FOLLOWUP_MS = 1000;

export interface RunningAgent {
  readonly log: Logger;
  /** Asks the control plane for a new credential, stores it, and switches to it. */
  rotateCredential(): Promise<void>;
  readonly status: StatusServer | undefined;
  /** Image sync (undefined when `images.enabled` is false): `pin`/`unpin`, `path`. */
  readonly images: ImageManager | undefined;
  snapshot(): AgentSnapshot;
  /** The power-state sync (undefined when `power_sync.enabled` is false). */
  readonly powerSync: PowerSync | undefined;
  /** Stops in order; resolves when everything is closed. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the agent has stopped. */
  readonly stopped: Promise<void>;
}

export interface StartOptions {
  readonly log?: Logger;
  /**
   * Hardware types in addition to the built-in ones (`agent/drivers/registry.ts`), which
   * `config.drivers` may then name: for tests running an agent with a hardware type of
   * their own. A name already taken is refused.
   */
  readonly hardware?: readonly HardwareModule[];
}

export async function startAgent(config: AgentConfig, options: StartOptions = {}): Promise<RunningAgent> {
  const log =
    options.log ?? createLogger({ level: config.logLevel, fields: { component: 'metalplane-agent' } });
  if (!config.url) throw new Error(`${config.file ?? 'config'}:url: required to run`);
  const url = config.url;
  // Every enabled name must be a known hardware type before anything is opened.
  const hardware = hardwareModules(options.hardware);
  const unknownDrivers = config.drivers.filter((name) => !hardware.has(name));
  if (unknownDrivers.length > 0) {
    throw new Error(
      `${config.file ?? 'config'}:drivers: unknown driver ${unknownDrivers.map((n) => JSON.stringify(n)).join(', ')} (known: ${[...hardware.keys()].join(', ')})`,
    );
  }
  await ensureStateDir(config.stateDir);
  const credential = await readCredential(config.stateDir);
  log.addSecret(credential);
  const releaseLock = await acquireLock(config.stateDir);
  const startedAt = Date.now();
  const enrollment = await readEnrollment(config.stateDir);

  const opened = await Journal.open(config.stateDir, { retentionMs: config.journalRetentionMs, log });
  const { journal } = opened;
  const outbox = await Outbox.open(config.stateDir, { log });
  await recoverInterrupted(opened.interrupted, journal, outbox, log);
  log.info('state loaded', {
    state_dir: config.stateDir,
    journal_entries: journal.size,
    journal_expired: opened.expired,
    journal_damaged_lines: opened.damaged,
    interrupted: opened.interrupted.length,
    outbox: outbox.length,
  });

  const callbackTokens = new CallbackTokens(join(config.stateDir, 'callback-tokens.json'));
  // The Metalplane ramdisk's tokens and sessions (in memory): minted by boot.prepare
  // {metalplane_ramdisk}, used by the /ramdisk/v1 endpoint and the ramdisk.* actions.
  const ramdiskSessions = new RamdiskSessions({
    heartbeatIntervalMs: config.ramdisk.heartbeatIntervalMs,
    maxSessions: config.ramdisk.maxSessions,
    log: log.child({ component: 'ramdisk' }),
  });
  // Files granted to a node's ramdisk for one step (the deploy's image and config drive),
  // served by the HTTP boot server; none without it.
  const fileGrants = config.http.enabled
    ? new FileGrants({ httpBaseUrl: nodesHttpUrl(config), log, sessions: ramdiskSessions })
    : undefined;
  // Discovery (ramdisk/discovery.ts): the site's setting, the fallback of boot.ipxe, the
  // discovery token's sessions. `channel` and `images` are assigned below, before it starts.
  const discoveryTree = new BootTree({
    tftpRoot: config.tftp.root,
    httpRoot: config.http.root,
    manifestDir: join(config.stateDir, 'boot-manifests'),
  });
  const discovery = new Discovery({
    sessions: ramdiskSessions,
    log,
    httpBaseUrl: nodesHttpUrl(config),
    served: config.http.enabled,
    writeHttp: (path, content) => discoveryTree.writeFile('http', path, content),
    removeHttp: async (path) => (await discoveryTree.removeFile('http', path, null)) === 'removed',
    hasImage: (uuid, role) => images?.path(uuid, role) !== undefined,
    pin: (uuid, holder) => images?.pin(uuid, holder),
    unpin: (uuid, holder) => images?.unpin(uuid, holder),
    getJson: (path) => (channel ? channel.getJson(path) : Promise.reject(new Error('channel not started'))),
    postJson: (path, body) =>
      channel ? channel.postJson(path, body) : Promise.reject(new Error('channel not started')),
    refreshIntervalMs: config.images.refreshIntervalMs,
  });
  const driverContext: DriverContext = {
    log,
    ipmi: {
      commandTimeoutMs: config.ipmi.commandTimeoutMs,
      minCommandIntervalMs: config.ipmi.minCommandIntervalMs,
      retries: config.ipmi.retries,
    },
    redfish: config.redfish,
    powerSync: { native: config.powerSync.native, probeTimeoutMs: config.powerSync.probeTimeoutMs },
    ...(config.http.enabled
      ? {
          virtualMedia: virtualMediaSource({
            imagesDir: config.images.dir,
            baseUrl: config.boot.virtualMediaUrl ?? nodesHttpUrl(config),
            pins: () => images,
            httpRoot: config.http.root,
            // A built ISO carries what boot.prepare would put on the kernel command line.
            ramdisk: {
              url: `${nodesHttpUrl(config).replace(/\/+$/, '')}${RAMDISK_PATH}`,
              mint: (node) => ramdiskSessions.mint(node, config.ramdisk.tokenTtlMs),
              revoke: (node, token) => ramdiskSessions.revoke(node, token),
              forget: (node) => ramdiskSessions.forgetToken(node),
            },
            callbacks: {
              httpBaseUrl: nodesHttpUrl(config),
              set: (node, token) => callbackTokens.set(node, token),
              forget: (node) => callbackTokens.forget(node),
            },
          }),
        }
      : {}),
    bootActions: withImagePins(
      withCallbackUrls(
        withRamdiskBoot(
          bootActions({
            tftpRoot: config.tftp.root,
            httpRoot: config.http.root,
            httpBaseUrl: nodesHttpUrl(config),
            ...(config.boot.tftpUrl ? { tftpBaseUrl: config.boot.tftpUrl } : {}),
            ...(config.boot.dhcpHostsDir ? { dhcpHostsDir: config.boot.dhcpHostsDir } : {}),
            imagesDir: config.images.dir,
            manifestDir: join(config.stateDir, 'boot-manifests'),
            entryFallbackUrl: () => discovery.fallbackUrl(),
          }),
          ramdiskSessions,
          {
            httpBaseUrl: nodesHttpUrl(config),
            tokenTtlMs: config.ramdisk.tokenTtlMs,
            served: config.http.enabled,
          },
        ),
        nodesHttpUrl(config),
        callbackTokens,
      ),
      () => images,
    ),
  };
  let registry: ActionRegistry;
  try {
    registry = createRegistry(config.drivers, driverContext, options.hardware);
    // Common actions (whatever the node's hardware type): the ramdisk talks to this agent.
    // `images` is assigned below, before any command runs.
    const writes = { grants: fileGrants, images: () => images };
    for (const action of ramdiskActions(ramdiskSessions, writes)) registry.registerAction(action);
  } catch (error) {
    ramdiskSessions.close();
    await journal.close();
    await outbox.close();
    await releaseLock();
    throw error;
  }
  let channel: Channel | undefined;
  let followup: NodeJS.Timeout | undefined;
  /** Results sent to a control plane that acknowledges them, not acknowledged yet. */
  const awaitingAck = new Set<string>();
  const reporter = new Reporter({
    outbox,
    resendMs: config.resultResendIntervalMs,
    channel: () => channel,
    log,
    onSent: (report) => {
      if (report.type !== 'command_result') return;
      // A result frees its node's next command on the queue: ask for it. A control plane
      // that acknowledges results is asked on the `result_ack` (sent once the message is
      // gone: no pull can overtake it), and a little later only if an ack is missing (a
      // lost frame); another is asked now, and once more a little later, in case the pull
      // overtook the result on the control plane side.
      const acknowledged = channel?.acknowledgesResults === true;
      if (acknowledged) awaitingAck.add(report.command_id);
      else channel?.requestPull('result');
      clearTimeout(followup);
      followup = setTimeout(() => {
        if (!acknowledged || awaitingAck.size > 0) channel?.requestPull('drain');
        awaitingAck.clear();
      }, DRAIN_FOLLOWUP_MS);
      followup.unref();
    },
  });
  const acks = new DeferredAcks((command: Command) => {
    channel
      ?.send({ v: 1, type: 'command_ack', command_id: command.id, receipt: command.receipt })
      .catch((error) => log.debug('ack not sent', { command_id: command.id, error: errorMessage(error) }));
  });
  // Deadlines are the control plane's time; the channel measures it (agent/clock.ts).
  const clock = new ControlPlaneClock({ log });
  const executor: Executor = new Executor({
    now: () => clock.now(),
    limit: config.maxCommands,
    journal,
    registry,
    log,
    onStart: (command) => acks.started(command),
    onRedeliveredRunning: (command) => acks.now(command),
    onResult: (report) => {
      if (report.type === 'command_result') acks.finished(report.command_id);
      return reporter.add(report);
    },
    onCapacity: () => channel?.requestPull('capacity'),
  });

  const images = config.images.enabled
    ? new ImageManager({
        dir: config.images.dir,
        concurrency: config.images.concurrency,
        bandwidthLimit: config.images.bandwidthLimit,
        refreshIntervalMs: config.images.refreshIntervalMs,
        gcGraceMs: config.images.gcGraceMs,
        verifyIntervalMs: config.images.verifyIntervalMs,
        log,
        send: (msg) => (channel ? channel.send(msg) : Promise.reject(new Error('channel not started'))),
      })
    : undefined;

  const websocketUrl =
    config.websocketUrl ??
    (typeof enrollment.websocket_url === 'string' ? enrollment.websocket_url : undefined) ??
    deriveWebSocketUrl(url);
  channel = new Channel({
    url,
    websocketUrl,
    transport: config.transport,
    credential,
    hostname: config.hostname,
    drivers: registry.driverNames(),
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    pullIntervalMs: config.pullIntervalMs,
    idlePullIntervalMs: config.idlePullIntervalMs,
    clock,
    pollWaitSeconds: config.pollWaitSeconds,
    reconnect: config.reconnect,
    log,
    capacity: () => (executor.stopping ? 0 : config.maxCommands - executor.load),
    onCommands: (commands: Command[]) => {
      for (const command of commands) {
        const outcome = executor.submit(command);
        log.debug('command received', { command_id: command.id, node: command.node, outcome });
      }
    },
    onResultAck: (commandId) => {
      reporter
        .acknowledged(commandId)
        .catch((error) => log.warn('acknowledged result not recorded', { error: errorMessage(error) }));
      // The result is stored and its message deleted: the node's next command is free.
      awaitingAck.delete(commandId);
      channel?.requestPull('result');
    },
    onImages: (msg) => images?.onImages(msg),
    onImagesWake: () => {
      images?.onWake();
      void discovery.refresh('wake');
    },
    onUp: () => {
      void reporter.reconnected();
      images?.onConnected();
      void discovery.refresh('connect');
    },
  });

  let stopping = false;
  const site = typeof enrollment.site === 'string' ? enrollment.site : undefined;
  // Declared before `snapshot`, which the status endpoint may call before they start.
  let boot: BootServers | undefined;
  const snapshot = (): AgentSnapshot => ({
    version: AGENT_VERSION,
    hostname: config.hostname,
    site,
    connection: channel?.state ?? 'offline',
    transport: channel?.transport ?? 'websocket',
    connectedSince: channel?.connectedSince,
    reconnects: channel?.reconnects ?? 0,
    invalidMessages: channel?.invalidMessages ?? 0,
    outboxLength: reporter.length,
    reportsSent: reporter.sent,
    reportsResent: reporter.resent,
    clockOffsetMs: clock.offsetMs,
    running: executor.running,
    queued: executor.queued,
    limit: config.maxCommands,
    executed: executor.executed,
    deduplicated: executor.deduplicated,
    interruptedAtStart: opened.interrupted.length,
    journalEntries: journal.size,
    startedAt,
    stopping,
    ...(images ? { images: images.stats() } : {}),
    ...(boot ? { boot: boot.stats() } : {}),
  });

  let status: StatusServer | undefined;
  if (config.status) {
    try {
      status = await startStatusServer({ ...config.status, snapshot, log });
      log.info('status endpoint listening', {
        address: `${status.host}:${status.port}`,
        host: status.host,
        port: status.port,
      });
    } catch (error) {
      registry.close();
      ramdiskSessions.close();
      await journal.close();
      await outbox.close();
      await releaseLock();
      throw new Error(`status endpoint ${config.status.host}:${config.status.port}: ${errorMessage(error)}`);
    }
  }

  // TFTP and HTTP boot servers (each off when the site serves its trees itself). The HTTP
  // one also takes the deploy callback and the Metalplane ramdisk's /ramdisk/v1.
  const callback = callbackRoute((message) => (channel as Channel).send(message), log, callbackTokens);
  const ramdiskEndpoint = ramdiskRoute({ sessions: ramdiskSessions, log, discovery });
  // Before the endpoint, which answers 404 for every other path under /ramdisk/.
  const grantedFiles = fileGrants?.route() ?? (async () => false);
  try {
    boot = await startBootServers(config, {
      log,
      extraRoutes: async (req, res) =>
        (await grantedFiles(req, res)) || (await ramdiskEndpoint(req, res)) || callback(req, res),
    });
  } catch (error) {
    ramdiskSessions.close();
    registry.close();
    await status?.close();
    await journal.close();
    await outbox.close();
    await releaseLock();
    throw error;
  }

  log.info('agent starting', {
    version: AGENT_VERSION,
    hostname: config.hostname,
    url,
    websocket_url: websocketUrl,
    transport: config.transport,
    drivers: registry.driverNames(),
    max_commands: config.maxCommands,
    pid: process.pid,
  });
  images?.start();
  channel.start();
  discovery.start();
  const powerSync = config.powerSync.enabled
    ? new PowerSync({
        intervalMs: config.powerSync.intervalMs,
        concurrency: config.powerSync.concurrency,
        probeTimeoutMs: config.powerSync.probeTimeoutMs,
        listNodes: () => listSiteNodes(channel as Channel),
        probeFor: (driver) => registry.powerProbe(driver),
        send: (message) => (channel as Channel).send(message),
        log,
      })
    : undefined;
  powerSync?.start();

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  let stopPromise: Promise<void> | undefined;
  const stop = (reason = 'stop requested'): Promise<void> => {
    stopPromise ??= (async () => {
      stopping = true;
      clearTimeout(followup);
      log.info('agent stopping', { reason, running: executor.running, queued: executor.queued });
      await powerSync?.stop();
      await executor.stop(config.shutdownGraceMs);
      acks.clear();
      // After the sync and the commands: nothing uses a driver any more.
      registry.close();
      ramdiskSessions.close();
      await discovery.stop();
      await images?.stop();
      const flushed = await reporter.flush(STOP_FLUSH_MS);
      if (!flushed) log.info('reports kept in the outbox for the next start', { outbox: reporter.length });
      reporter.close();
      await channel?.stop();
      await boot?.close();
      await status?.close();
      await journal.close();
      await outbox.close();
      await releaseLock();
      log.info('agent stopped');
      resolveStopped();
    })();
    return stopPromise;
  };

  let current = credential;
  const rotateCredential = async (): Promise<void> => {
    const response = await httpClient.request(
      `${url}/v1/agents/${encodeURIComponent(config.hostname)}/credentials`,
      {
        method: 'POST',
        headers: { Authorization: `Bearer ${current}`, Accept: 'application/json' },
        timeoutMs: 15_000,
      },
    );
    if (!response.ok) throw new Error(`credential rotation refused: HTTP ${response.status}`);
    const body = (parseJsonBody(response) ?? {}) as { credential?: unknown };
    if (typeof body.credential !== 'string')
      throw new Error('credential rotation: no credential in the answer');
    log.addSecret(body.credential);
    // On disk first: a crash after this point restarts with the new credential.
    await writeCredential(config.stateDir, body.credential);
    current = body.credential;
    channel?.useCredential(body.credential);
    log.info('credential rotated');
  };

  return { log, status, images, powerSync, snapshot, stop, stopped, rotateCredential };
}
