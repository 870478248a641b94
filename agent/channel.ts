/**
 * The agent's link to the control plane.
 *
 * - WebSocket (`ws`) to the control plane's WebSocket URL with `Authorization: Bearer
 *   <credential>`. On open: `hello`, then the outbox is replayed and a `pull` drains the
 *   backlog. `wake` → `pull {max}`; `commands` → the executor; `images` and `wake {topic:
 *   'images'}` → the image manager (`onImages`, `onImagesWake`). Messages bigger than API
 *   Gateway's 32 KiB frame limit are sent fragmented.
 * - HTTPS long polling, the fallback where WebSockets are blocked: `GET
 *   {url}/v1/agent/commands?wait=S&max=N` answers a `commands` message (or 204), `POST
 *   {url}/v1/agent/messages` carries every agent message; same bearer credential.
 *   `transport: auto` falls back to it after N failed WebSocket attempts and probes the
 *   WebSocket again every `websocket_retry_interval`.
 * - Every reconnection waits per exponential backoff with full jitter (AWS Architecture
 *   Blog, "Exponential Backoff And Jitter"): uniform in [0, min(cap, base·2^attempt)).
 * - Every incoming message is validated by `parseServerMessage`; an invalid one is
 *   logged and ignored.
 * - `hello` says the agent's protocol and features (`protocol/versions.ts`); the control
 *   plane answers `welcome` (what this agent lacks: logged, to upgrade), or refuses a
 *   protocol it does not serve with an `error` (logged) and closes the socket.
 */
import WebSocket from 'ws';
import {
  type AgentMessage,
  type Command,
  MAX_MESSAGE_BYTES,
  parseServerMessage,
  type ServerMessage,
} from '../protocol/messages.ts';
import { CURRENT_FEATURES, PROTOCOL_VERSION } from '../protocol/versions.ts';
import type { ControlPlaneClock } from './clock.ts';
import type { Transport } from './config.ts';
import { HttpClient, type HttpRequestOptions, type HttpResponse } from './http-client.ts';
import { errorMessage, type Logger } from './log.ts';
import { AGENT_VERSION } from './version.ts';

/** API Gateway's WebSocket frame quota: larger messages go out as continuation frames. */
export const MAX_FRAME_BYTES = 32 * 1024;
/** The protocol's `pull.max` ceiling. */
export const MAX_PULL = 10;
/** A pull with no answer after this long no longer holds back the next one. */
const PULL_ANSWER_TIMEOUT_MS = 5000;
/**
 * After a pull for a reason (a wake, a connection, a result, more), the periodic pull keeps
 * its short interval this long: what a lost answer left in flight comes back after the
 * queue's visibility timeout (60 s) and is taken then. Later, the site idle, it slows to
 * `idlePullIntervalMs`.
 */
export const ACTIVE_PULL_WINDOW_MS = 180_000;
/** A connection that stayed up this long resets the backoff when it drops. */
const STABLE_CONNECTION_MS = 10_000;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const HTTP_TIMEOUT_MS = 15_000;

/**
 * Whether the timer's periodic pull (every `intervalMs`) goes out at `now`: always while
 * the channel is active (a pull for a reason within `ACTIVE_PULL_WINDOW_MS`); once idle,
 * only when the last pull is about `idleIntervalMs` old (within half a timer period).
 */
export function periodicPullDue(o: {
  readonly now: number;
  /** When a pull was last asked for a reason (a wake, a connection, a result, more). */
  readonly activeAt: number;
  /** When a pull last went out. */
  readonly lastPullAt: number;
  readonly intervalMs: number;
  readonly idleIntervalMs?: number | undefined;
}): boolean {
  if (o.idleIntervalMs === undefined || o.idleIntervalMs <= o.intervalMs) return true;
  if (o.now - o.activeAt <= ACTIVE_PULL_WINDOW_MS) return true;
  return o.now - o.lastPullAt + o.intervalMs / 2 >= o.idleIntervalMs;
}

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly random?: () => number;
}

/** Exponential backoff with full jitter: the n-th delay is uniform in [0, min(max, initial·2^n)). */
export class Backoff {
  readonly #o: BackoffOptions;
  attempt = 0;
  constructor(options: BackoffOptions) {
    this.#o = options;
  }
  /** The ceiling of the next delay. */
  ceiling(): number {
    return Math.min(this.#o.maxMs, this.#o.initialMs * 2 ** Math.min(this.attempt, 40));
  }
  next(): number {
    const delay = Math.floor((this.#o.random ?? Math.random)() * this.ceiling());
    this.attempt++;
    return delay;
  }
  reset(): void {
    this.attempt = 0;
  }
}

export type ChannelState = 'connecting' | 'websocket' | 'polling' | 'offline' | 'stopped';

export interface ChannelOptions {
  /** Control plane base URL (no trailing slash). */
  readonly url: string;
  readonly websocketUrl: string;
  readonly transport: Transport;
  readonly credential: string;
  readonly hostname: string;
  readonly drivers: readonly string[];
  /** The features `hello` announces (default: this build's, `CURRENT_FEATURES`). */
  readonly features?: readonly string[];
  readonly heartbeatIntervalMs: number;
  /**
   * A pull this often even without a `wake` (WebSocket only; long polling asks all the
   * time): what a lost frame left in the queue — a `commands` answer, a result whose
   * message SQS hands out again — is picked up within it. Undefined: never. It keeps this
   * interval for `ACTIVE_PULL_WINDOW_MS` after any other pull, then slows to
   * `idlePullIntervalMs`.
   */
  readonly pullIntervalMs?: number;
  /**
   * The periodic pull's interval once the channel has been idle (no other pull) for
   * `ACTIVE_PULL_WINDOW_MS`: the bound on a lost `wake` of an idle site. Undefined (or
   * shorter than `pullIntervalMs`): `pullIntervalMs` always.
   */
  readonly idlePullIntervalMs?: number;
  /** Measures the control plane's clock from the `Date` of its HTTPS answers. */
  readonly clock?: ControlPlaneClock;
  readonly pollWaitSeconds: number;
  readonly reconnect: {
    readonly initialDelayMs: number;
    readonly maxDelayMs: number;
    readonly websocketFailuresBeforePolling: number;
    readonly websocketRetryIntervalMs: number;
  };
  readonly log: Logger;
  /** How many commands the agent can take now (0: none). */
  readonly capacity: () => number;
  readonly onCommands: (commands: Command[]) => void;
  /** A page of the site's image list (the answer to `images_pull`). */
  readonly onImages?: (msg: Extract<ServerMessage, { type: 'images' }>) => void;
  /** `result_ack`: the control plane holds that command's result (the outbox may forget it). */
  readonly onResultAck?: (commandId: string) => void;
  /** `wake {topic: 'images'}`: the site's image list changed. */
  readonly onImagesWake?: () => void;
  /** The channel is up (after `hello`): replay what waits. */
  readonly onUp?: () => void;
  readonly onStateChange?: (state: ChannelState) => void;
  readonly random?: () => number;
}

/** A message that no retry will get through (too large): the caller drops it. */
export class UnsendableError extends Error {
  override readonly name = 'UnsendableError';
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class Channel {
  readonly #o: ChannelOptions;
  readonly #backoff: Backoff;
  readonly #stop = new AbortController();
  /** The HTTPS exchanges (long polling, the agent routes, the clock's sample): kept-alive connections. */
  readonly #http = new HttpClient();
  #state: ChannelState = 'offline';
  #transport: 'websocket' | 'polling';
  #ws: WebSocket | undefined;
  #wsOpenedAt = 0;
  #wsFailures = 0;
  #lastSeen = 0;
  #pongSeen = false;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #pullTimer: NodeJS.Timeout | undefined;
  #pullInFlight = false;
  #pullSentAt = 0;
  #pullWanted = false;
  /** When a pull was last asked for a reason (not by the timer); -Infinity: never. */
  #activeAt = Number.NEGATIVE_INFINITY;
  /** Whether this connection's control plane answered `hello` with `welcome`. */
  #welcomed = false;
  #pollAbort: AbortController | undefined;
  #pollKick: (() => void) | undefined;
  #pollUp = false;
  #polling = false;
  reconnects = 0;
  invalidMessages = 0;
  connectedSince: number | undefined;

  /** The bearer credential; replaced by `useCredential` when it is rotated. */
  #credential: string;

  constructor(options: ChannelOptions) {
    this.#o = options;
    this.#credential = options.credential;
    this.#backoff = new Backoff({
      initialMs: options.reconnect.initialDelayMs,
      maxMs: options.reconnect.maxDelayMs,
      random: options.random,
    });
    this.#transport = options.transport === 'polling' ? 'polling' : 'websocket';
  }

  #stopped(): boolean {
    return this.#state === 'stopped';
  }

  get state(): ChannelState {
    return this.#state;
  }

  get transport(): 'websocket' | 'polling' {
    return this.#transport;
  }

  /**
   * Whether the control plane answers every `command_result` with `result_ack` after it
   * stored the result and deleted its message (every control plane that sends `welcome`
   * does, on this connection): a pull made on that `result_ack` cannot overtake the
   * result, so none needs to follow it.
   */
  get acknowledgesResults(): boolean {
    return this.up && this.#welcomed;
  }

  /** Can messages be sent now? */
  get up(): boolean {
    return this.#state === 'websocket' || this.#state === 'polling';
  }

  /**
   * Switches to a new credential: later requests carry it, and an open socket is closed
   * so that it reconnects with it (the control plane retires the old one on first use).
   */
  useCredential(credential: string): void {
    this.#credential = credential;
    const ws = this.#ws;
    if (ws) ws.close(1000, 'credential rotated');
  }

  start(): void {
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), this.#o.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
    if (this.#o.pullIntervalMs !== undefined) {
      this.#pullTimer = setInterval(() => this.requestPull('periodic'), this.#o.pullIntervalMs);
      this.#pullTimer.unref();
    }
    if (this.#transport === 'polling') void this.#pollLoop();
    else this.#connectWebSocket(false);
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#setState('stopped');
    this.#stop.abort();
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#probeTimer);
    clearInterval(this.#heartbeatTimer);
    clearInterval(this.#pullTimer);
    this.#pollAbort?.abort();
    this.#pollKick?.();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws && ws.readyState === WebSocket.OPEN) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000);
        ws.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        ws.close(1000, 'agent stopping');
      });
    } else ws?.terminate();
    this.#http.close();
  }

  /** Sends one message; rejects when the channel is down or the send fails. */
  async send(msg: AgentMessage): Promise<void> {
    const text = JSON.stringify(msg);
    if (Buffer.byteLength(text) > MAX_MESSAGE_BYTES) {
      throw new UnsendableError(`message larger than ${MAX_MESSAGE_BYTES} bytes`);
    }
    if (this.#state === 'websocket' && this.#ws) return sendText(this.#ws, text);
    if (this.#state === 'polling') return this.#post(text);
    throw new Error(`channel is ${this.#state}`);
  }

  /**
   * Asks for work: on `wake`, on connect, after each result, and once more after a burst
   * of results. `wake` always sends a pull; other reasons are coalesced with a pull still
   * waiting for its answer (sent again when it comes). `capacity` only releases a pull
   * held back because the agent was full. `periodic` (the timer) is skipped while the
   * channel is idle and the last pull is younger than `idlePullIntervalMs`.
   */
  requestPull(reason: 'wake' | 'connect' | 'capacity' | 'result' | 'more' | 'drain' | 'periodic'): void {
    if (!this.up) return;
    if (this.#transport === 'polling') {
      // A long poll is always waiting: nothing to add on a timer.
      if (reason === 'periodic') return;
      this.#pollKick?.(); // wakes a poll loop that waits for free capacity
      return;
    }
    const now = performance.now();
    if (reason === 'periodic') {
      const due = periodicPullDue({
        now,
        activeAt: this.#activeAt,
        lastPullAt: this.#pullSentAt,
        intervalMs: this.#o.pullIntervalMs ?? 0,
        idleIntervalMs: this.#o.idlePullIntervalMs,
      });
      if (!due) return;
    } else if (reason !== 'capacity') this.#activeAt = now;
    // Freed capacity matters only to a pull held back for the lack of it.
    if (reason === 'capacity' && !this.#pullWanted) return;
    const waiting = this.#pullInFlight && performance.now() - this.#pullSentAt < PULL_ANSWER_TIMEOUT_MS;
    if (reason !== 'wake' && waiting) {
      this.#pullWanted = true;
      return;
    }
    const max = Math.min(MAX_PULL, this.#o.capacity());
    if (max <= 0) {
      this.#pullWanted = true;
      return;
    }
    this.#pullWanted = false;
    this.#pullInFlight = true;
    this.#pullSentAt = performance.now();
    this.#o.log.debug('pull', { reason, max });
    this.send({ v: 1, type: 'pull', max }).catch((error) =>
      this.#o.log.warn('pull not sent', { error: errorMessage(error) }),
    );
  }

  #setState(state: ChannelState): void {
    if (this.#state === state) return;
    if (this.#state === 'stopped') return;
    const up = state === 'websocket' || state === 'polling';
    this.connectedSince = up ? Date.now() : undefined;
    this.#state = state;
    this.#o.log.info('channel state', { state, transport: this.#transport });
    this.#o.onStateChange?.(state);
  }

  #hello(): AgentMessage {
    return {
      v: 1,
      type: 'hello',
      hostname: this.#o.hostname,
      agent_version: AGENT_VERSION,
      drivers: [...this.#o.drivers],
      protocol_version: PROTOCOL_VERSION,
      features: [...(this.#o.features ?? CURRENT_FEATURES)],
    };
  }

  #heartbeat(): void {
    if (!this.up) return;
    this.send({ v: 1, type: 'heartbeat', sent_at: new Date().toISOString() }).catch((error) =>
      this.#o.log.warn('heartbeat not sent', { error: errorMessage(error) }),
    );
    const ws = this.#ws;
    if (this.#state === 'websocket' && ws) {
      // Only a peer that has answered a ping once is declared dead for not answering.
      const silentFor = performance.now() - this.#lastSeen;
      if (this.#pongSeen && silentFor > 3 * this.#o.heartbeatIntervalMs) {
        this.#o.log.warn('no answer from the control plane: reconnecting', {
          silent_ms: Math.round(silentFor),
        });
        ws.terminate();
        return;
      }
      ws.ping();
    }
  }

  #handle(msg: ServerMessage): void {
    switch (msg.type) {
      case 'wake':
        if (msg.topic === 'images') this.#o.onImagesWake?.();
        else this.requestPull('wake');
        break;
      case 'images':
        this.#o.onImages?.(msg);
        break;
      case 'commands':
        this.#pullInFlight = false;
        if (msg.commands.length > 0) this.#o.onCommands(msg.commands);
        if (msg.commands.length > 0 || this.#pullWanted) this.requestPull('more');
        break;
      case 'result_ack':
        this.#o.onResultAck?.(msg.command_id);
        break;
      case 'welcome':
        this.#welcomed = true;
        this.#welcome(msg);
        break;
      case 'error':
        this.#o.log.warn('control plane error', { message: msg.message });
        break;
    }
  }

  /** The control plane's answer to `hello`: what it speaks, and what this agent lacks. */
  #welcome(msg: Extract<ServerMessage, { type: 'welcome' }>): void {
    const fields = {
      protocol_version: PROTOCOL_VERSION,
      control_plane_protocol: msg.protocol_version,
      missing_features: msg.missing_features,
    };
    if (msg.protocol_version > PROTOCOL_VERSION || msg.missing_features.length > 0) {
      this.#o.log.warn('the control plane is newer than this agent: upgrade the agent', fields);
    } else this.#o.log.info('welcomed by the control plane', fields);
  }

  #receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.#lastSeen = performance.now();
    const text = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    let msg: ServerMessage;
    try {
      if (isBinary) throw new Error('binary frame');
      msg = parseServerMessage(text);
    } catch (error) {
      this.invalidMessages++;
      this.#o.log.warn('invalid message from the control plane ignored', {
        error: errorMessage(error),
        bytes: text.length,
      });
      return;
    }
    this.#handle(msg);
  }

  // --- WebSocket -------------------------------------------------------------------------

  #connectWebSocket(probe: boolean): void {
    if (this.#state === 'stopped') return;
    if (!probe) this.#setState('connecting');
    const ws = new WebSocket(this.#o.websocketUrl, {
      headers: {
        Authorization: `Bearer ${this.#credential}`,
        'User-Agent': `metalplane-agent/${AGENT_VERSION}`,
      },
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      maxPayload: MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
    });
    let opened = false;
    ws.on('open', () => {
      if (this.#state === 'stopped') {
        ws.terminate();
        return;
      }
      opened = true;
      if (probe) {
        this.#o.log.info('WebSocket reachable again: leaving long polling');
        this.#stopPolling();
      }
      this.#ws = ws;
      this.#transport = 'websocket';
      this.#wsOpenedAt = performance.now();
      this.#lastSeen = this.#wsOpenedAt;
      this.#pongSeen = false;
      this.#wsFailures = 0;
      this.#pullInFlight = false;
      this.#welcomed = false;
      this.#setState('websocket');
      this.send(this.#hello()).catch(() => {});
      this.#o.onUp?.();
      // Commands' deadlines are the control plane's time: measure it before the first
      // pull (once; later answers keep it fresh), so a skewed clock never judges them.
      if (this.#o.clock && !this.#o.clock.sampled) {
        void this.#sampleClock().finally(() => this.requestPull('connect'));
      } else this.requestPull('connect');
    });
    ws.on('message', (data, isBinary) => this.#receive(data, isBinary));
    ws.on('pong', () => {
      this.#lastSeen = performance.now();
      this.#pongSeen = true;
    });
    ws.on('error', (error) => {
      const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
      const fields = {
        url: this.#o.websocketUrl,
        error: error.message,
        status: status ? Number(status) : undefined,
      };
      if (status === '401' || status === '403') {
        this.#o.log.error(
          'the control plane refused the agent credential (re-enroll if it was revoked)',
          fields,
        );
      } else this.#o.log.warn('WebSocket error', fields);
    });
    ws.on('close', (code, reason) => {
      if (this.#ws === ws) this.#ws = undefined;
      if (this.#state === 'stopped') return;
      if (probe && !opened) {
        this.#scheduleProbe();
        return;
      }
      const lasted = opened ? performance.now() - this.#wsOpenedAt : 0;
      if (opened) {
        this.#o.log.warn('WebSocket closed', {
          code,
          reason: reason.toString('utf8'),
          lasted_ms: Math.round(lasted),
        });
        if (lasted >= STABLE_CONNECTION_MS) this.#backoff.reset();
      } else this.#wsFailures++;
      this.#setState('offline');
      if (
        this.#o.transport === 'auto' &&
        !opened &&
        this.#wsFailures >= this.#o.reconnect.websocketFailuresBeforePolling
      ) {
        this.#o.log.warn('WebSocket unreachable: falling back to HTTPS long polling', {
          failures: this.#wsFailures,
        });
        this.#wsFailures = 0;
        this.#transport = 'polling';
        this.#backoff.reset();
        void this.#pollLoop();
        this.#scheduleProbe();
        return;
      }
      const delay = this.#backoff.next();
      this.reconnects++;
      this.#o.log.info('reconnecting', { delay_ms: delay, attempt: this.#backoff.attempt });
      this.#reconnectTimer = setTimeout(() => this.#connectWebSocket(false), delay);
    });
  }

  #scheduleProbe(): void {
    if (this.#state === 'stopped' || this.#o.transport !== 'auto') return;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = setTimeout(() => {
      if (this.#transport === 'polling') this.#connectWebSocket(true);
    }, this.#o.reconnect.websocketRetryIntervalMs);
    this.#probeTimer.unref();
  }

  /**
   * GETs one of the control plane's agent routes (`/v1/agent/...`) over HTTPS with the
   * credential, whatever the transport: the parsed JSON body; throws on any non-2xx.
   */
  async getJson(path: string, timeoutMs = HTTP_TIMEOUT_MS): Promise<unknown> {
    if (!path.startsWith('/v1/agent/')) throw new Error(`not an agent route: ${path}`);
    const res = await this.#request(`${this.#o.url}${path}`, {
      headers: this.#headers(),
      signal: this.#stop.signal,
      timeoutMs,
    });
    const body = res.text;
    if (!res.ok)
      throw new HttpError(res.status, `GET ${path.split('?')[0]}: HTTP ${res.status} ${body.slice(0, 200)}`);
    return JSON.parse(body) as unknown;
  }

  /**
   * POSTs a JSON body to one of the control plane's agent routes over HTTPS with the
   * credential: the status and parsed JSON body (null when empty); throws on any non-2xx.
   */
  async postJson(
    path: string,
    body: unknown,
    timeoutMs = HTTP_TIMEOUT_MS,
  ): Promise<{ status: number; body: unknown }> {
    if (!path.startsWith('/v1/agent/')) throw new Error(`not an agent route: ${path}`);
    const res = await this.#request(`${this.#o.url}${path}`, {
      method: 'POST',
      headers: this.#headers({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body),
      signal: this.#stop.signal,
      timeoutMs,
    });
    const text = res.text;
    if (!res.ok)
      throw new HttpError(res.status, `POST ${path.split('?')[0]}: HTTP ${res.status} ${text.slice(0, 300)}`);
    return { status: res.status, body: text.trim() ? (JSON.parse(text) as unknown) : null };
  }

  /** One HTTP exchange (agent/http-client.ts), with the answer's `Date` header fed to the clock. */
  async #request(url: string, options: HttpRequestOptions): Promise<HttpResponse> {
    const sentAt = Date.now();
    const res = await this.#http.request(url, options);
    this.#o.clock?.sample(res.headers.date, sentAt, Date.now());
    return res;
  }

  /** One unauthenticated GET of the version document, for its `Date` (never throws). */
  async #sampleClock(): Promise<void> {
    try {
      await this.#request(`${this.#o.url}/v1`, {
        headers: { 'User-Agent': `metalplane-agent/${AGENT_VERSION}` },
        signal: this.#stop.signal,
        timeoutMs: 5000,
      });
    } catch (error) {
      this.#o.log.debug('clock not measured', { error: errorMessage(error) });
    }
  }

  // --- HTTPS long polling --------------------------------------------------------------------

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      Authorization: `Bearer ${this.#credential}`,
      'User-Agent': `metalplane-agent/${AGENT_VERSION}`,
      Accept: 'application/json',
      ...extra,
    };
  }

  async #post(text: string): Promise<void> {
    const res = await this.#request(`${this.#o.url}/v1/agent/messages`, {
      method: 'POST',
      headers: this.#headers({ 'Content-Type': 'application/json' }),
      body: text,
      signal: this.#stop.signal,
      timeoutMs: HTTP_TIMEOUT_MS,
    });
    const body = res.text;
    if (!res.ok) {
      if (res.status === 401 || res.status === 403) this.#markPollDown();
      throw new HttpError(res.status, `POST /v1/agent/messages: HTTP ${res.status} ${body.slice(0, 200)}`);
    }
    if (body.trim()) this.#receiveHttp(body);
  }

  #receiveHttp(body: string): void {
    let msg: ServerMessage;
    try {
      msg = parseServerMessage(body);
    } catch (error) {
      this.invalidMessages++;
      this.#o.log.warn('invalid message from the control plane ignored', { error: errorMessage(error) });
      return;
    }
    if (msg.type === 'commands') {
      if (msg.commands.length > 0) this.#o.onCommands(msg.commands);
    } else if (msg.type === 'images') this.#o.onImages?.(msg);
    else if (msg.type === 'result_ack') this.#o.onResultAck?.(msg.command_id);
    else if (msg.type === 'welcome') {
      this.#welcomed = true;
      this.#welcome(msg);
    } else if (msg.type === 'wake') {
      if (msg.topic === 'images') this.#o.onImagesWake?.();
      else this.#pollKick?.();
    } else if (msg.type === 'error') this.#o.log.warn('control plane error', { message: msg.message });
  }

  #markPollDown(): void {
    if (this.#transport === 'polling' && this.#pollUp) {
      this.#pollUp = false;
      this.#setState('offline');
    }
  }

  #stopPolling(): void {
    this.#pollUp = false;
    this.#polling = false;
    this.#pollAbort?.abort();
    this.#pollKick?.();
  }

  async #sleep(ms: number): Promise<void> {
    const stop = this.#stop.signal;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        // Else each sleep would leave a listener on the channel's lifelong signal.
        stop.removeEventListener('abort', done);
        resolve();
      }
      stop.addEventListener('abort', done, { once: true });
      this.#pollKick = done;
    });
    this.#pollKick = undefined;
  }

  async #pollLoop(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    this.#pollUp = false;
    this.#setState('connecting');
    while (this.#polling && this.#state !== 'stopped' && this.#transport === 'polling') {
      try {
        if (!this.#pollUp) {
          this.#welcomed = false;
          this.#setState('connecting');
          await this.#postDirect(JSON.stringify(this.#hello()));
          if (!this.#polling || this.#transport !== 'polling' || this.#stopped()) break;
          this.#pollUp = true;
          this.#backoff.reset();
          this.#setState('polling');
          this.#o.onUp?.();
        }
        const max = Math.min(MAX_PULL, this.#o.capacity());
        if (max <= 0) {
          await this.#sleep(this.#o.pollWaitSeconds * 1000);
          continue;
        }
        this.#pollAbort = new AbortController();
        const res = await this.#request(
          `${this.#o.url}/v1/agent/commands?wait=${this.#o.pollWaitSeconds}&max=${max}`,
          {
            headers: this.#headers(),
            signal: this.#pollAbort.signal,
            timeoutMs: this.#o.pollWaitSeconds * 1000 + HTTP_TIMEOUT_MS,
          },
        );
        const body = res.text;
        if (res.status === 204) continue;
        if (!res.ok)
          throw new HttpError(res.status, `GET /v1/agent/commands: HTTP ${res.status} ${body.slice(0, 200)}`);
        if (body.trim()) this.#receiveHttp(body);
      } catch (error) {
        if (!this.#polling || this.#stopped()) break;
        const status = error instanceof HttpError ? error.status : undefined;
        if (status === 401 || status === 403) {
          this.#o.log.error('the control plane refused the agent credential (re-enroll if it was revoked)', {
            status,
          });
        } else this.#o.log.warn('long poll failed', { error: errorMessage(error), status });
        if (this.#pollUp) this.reconnects++;
        this.#pollUp = false;
        this.#setState('offline');
        const delay = this.#backoff.next();
        await this.#sleep(delay);
      }
    }
    this.#polling = false;
  }

  /** A POST that does not depend on the channel state (the `hello` that brings polling up). */
  async #postDirect(text: string): Promise<void> {
    const res = await this.#request(`${this.#o.url}/v1/agent/messages`, {
      method: 'POST',
      headers: this.#headers({ 'Content-Type': 'application/json' }),
      body: text,
      signal: this.#stop.signal,
      timeoutMs: HTTP_TIMEOUT_MS,
    });
    const body = res.text;
    if (!res.ok)
      throw new HttpError(res.status, `POST /v1/agent/messages: HTTP ${res.status} ${body.slice(0, 200)}`);
    if (body.trim()) this.#receiveHttp(body); // the hello's `welcome`
  }
}

/** Sends a text message, split into frames of at most MAX_FRAME_BYTES. */
export function sendText(ws: WebSocket, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null) => (error ? reject(error) : resolve());
    const buf = Buffer.from(text, 'utf8');
    if (buf.length <= MAX_FRAME_BYTES) {
      ws.send(text, done);
      return;
    }
    for (let off = 0; off < buf.length; off += MAX_FRAME_BYTES) {
      const last = off + MAX_FRAME_BYTES >= buf.length;
      ws.send(
        buf.subarray(off, off + MAX_FRAME_BYTES),
        { binary: false, fin: last },
        last ? done : undefined,
      );
    }
  });
}
