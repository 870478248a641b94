/**
 * The Metalplane ramdisk's sessions on the site agent (protocol: `protocol/ramdisk.ts`).
 *
 * - `mint(node, ttlMs)`: a one-time token (256 random bits, base64url) for one boot of one
 *   node; `boot.prepare {metalplane_ramdisk: true}` puts it on the kernel command line
 *   (`mp.token=`). A new token for a node invalidates the node's older token and ends its
 *   session (the node is being booted again). Tokens expire after `ttlMs`; only their
 *   SHA-256 is kept.
 * - `hello(token, ...)`: consumes the token (once) and opens the node's session: a random
 *   session id that authenticates every later request.
 * - Per session: the node, the last heartbeat, a FIFO of pending steps, the step in
 *   flight (given to the ramdisk, one at a time, given once), and the results (the first
 *   result for a step wins).
 * - A session without a heartbeat for `missedHeartbeats` (3) intervals is lost: checked
 *   lazily on every access and by an unref'd timer; its waiting steps fail then.
 * - Bounded: at most `maxSessions` tokens and sessions together (lost and ended sessions
 *   are dropped first to make room); `mint` refuses beyond that.
 *
 * Everything is in memory: an agent restart forgets the sessions (the ramdisk's next
 * request is refused with 401) and the tokens (the node must be booted again).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { RamdiskStep, RamdiskStepName } from '../../protocol/ramdisk.ts';
import type { Logger } from '../log.ts';

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;
export const DEFAULT_MAX_SESSIONS = 256;
export const DEFAULT_TOKEN_TTL_MS = 3_600_000;
/** Heartbeat intervals without a heartbeat after which a session is lost (protocol/ramdisk.ts). */
export const MISSED_HEARTBEATS = 3;
/** Results kept per session (the first result of each step; older ones dropped beyond this). */
const MAX_RESULTS = 64;
/** Steps queued per session at most (the executor runs one command per node at a time). */
const MAX_PENDING = 16;
const STEP_ID = /^[A-Za-z0-9._:-]{1,100}$/;

export type StepOutcome =
  | { readonly status: 'succeeded'; readonly result: Record<string, unknown> }
  | { readonly status: 'failed'; readonly error: string };

export type SessionState = 'live' | 'lost' | 'ended';

export class RamdiskSessionError extends Error {
  override readonly name = 'RamdiskSessionError';
}

interface StepEntry {
  readonly step: RamdiskStep;
  /** Settles the `runStep` waiting for it (absent once that gave up). */
  waiter?: { resolve(outcome: StepOutcome): void; reject(error: Error): void };
}

interface Session {
  readonly id: string;
  readonly node: string;
  readonly version: string;
  readonly bootMac: string | null;
  readonly startedAt: number;
  lastHeartbeat: number;
  state: SessionState;
  /** Why it is no longer live. */
  reason?: string;
  readonly pending: StepEntry[];
  inFlight: StepEntry | undefined;
  /** step id → the first result received. */
  readonly results: Map<string, StepOutcome>;
  /** Step ids given to the ramdisk, with their names (results for others are refused). */
  readonly given: Map<string, RamdiskStepName>;
}

interface TokenEntry {
  readonly node: string;
  readonly expiresAt: number;
}

export interface RamdiskSessionsOptions {
  readonly heartbeatIntervalMs?: number;
  readonly maxSessions?: number;
  readonly missedHeartbeats?: number;
  /** Injected clock (tests). */
  readonly now?: () => number;
  readonly log?: Logger;
  /** How often the timer looks for lost sessions; default the heartbeat interval; 0: no timer. */
  readonly sweepIntervalMs?: number;
}

/** What `describe(node)` tells: for the actions' messages and tests. */
export interface SessionInfo {
  readonly node: string;
  readonly state: SessionState;
  readonly reason: string | undefined;
  readonly version: string;
  readonly bootMac: string | null;
  readonly lastHeartbeat: number;
  readonly pending: number;
  readonly inFlight: string | undefined;
}

export type ResultOutcome = 'stored' | 'duplicate' | 'unknown-session' | 'not-given';

const hash = (token: string) => createHash('sha256').update(token).digest('base64url');
const randomId = () => randomBytes(24).toString('base64url');

export class RamdiskSessions {
  readonly heartbeatIntervalMs: number;
  readonly maxSessions: number;
  readonly #missed: number;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  /** SHA-256 of a token → its node and expiry. */
  readonly #tokens = new Map<string, TokenEntry>();
  /** node → the hash of its current token. */
  readonly #tokenOf = new Map<string, string>();
  /** session id → session. */
  readonly #sessions = new Map<string, Session>();
  /** node → its current session id. */
  readonly #sessionOf = new Map<string, string>();
  /** SHA-256 of a used token → the session its hello opened, and when (repeated hellos). */
  readonly #answered = new Map<string, { readonly session: string; readonly at: number }>();
  /** node → callbacks waiting for its hello. */
  readonly #helloWaiters = new Map<string, Set<() => void>>();
  /** Called with the node whenever a session ends or is lost (`onSessionEnd`). */
  readonly #endListeners = new Set<(node: string) => void>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RamdiskSessionsOptions = {}) {
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.#missed = options.missedHeartbeats ?? MISSED_HEARTBEATS;
    this.#now = options.now ?? Date.now;
    this.#log = options.log;
    if (this.heartbeatIntervalMs < 1000 || this.heartbeatIntervalMs % 1000 !== 0) {
      throw new RangeError('heartbeatIntervalMs must be a whole number of seconds (at least 1)');
    }
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1) {
      throw new RangeError('maxSessions must be a positive integer');
    }
    const sweep = options.sweepIntervalMs ?? this.heartbeatIntervalMs;
    if (sweep > 0) {
      this.#timer = setInterval(() => this.sweep(), sweep);
      this.#timer.unref();
    }
  }

  /** Stops the timer and fails every waiting step (the agent is stopping). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const session of this.#sessions.values()) this.#end(session, 'ended', 'the agent stopped');
  }

  /**
   * Calls `listener(node)` whenever one of the node's sessions ends or is lost: what was
   * granted to that boot of the node (files it may download) ends with it. Returns the
   * function that removes the listener.
   */
  onSessionEnd(listener: (node: string) => void): () => void {
    this.#endListeners.add(listener);
    return () => this.#endListeners.delete(listener);
  }

  /** Tokens and sessions held (what `maxSessions` bounds). */
  get size(): number {
    return this.#tokens.size + this.#sessions.size;
  }

  /**
   * A one-time token for one boot of `node`: invalidates the node's older token and ends
   * its session. Throws RamdiskSessionError when `maxSessions` are held.
   */
  mint(node: string, ttlMs: number): string {
    this.sweep();
    this.#dropToken(node);
    const old = this.#current(node);
    if (old) this.#end(old, 'ended', 'the node is booted again (a new token)');
    this.#dropSession(node);
    // Room: sessions no longer live (kept to tell why) go first, the oldest first.
    if (this.size >= this.maxSessions) {
      for (const session of [...this.#sessions.values()]
        .filter((s) => s.state !== 'live')
        .sort((a, b) => a.lastHeartbeat - b.lastHeartbeat)) {
        if (this.size < this.maxSessions) break;
        this.#dropSession(session.node);
      }
    }
    if (this.size >= this.maxSessions) {
      throw new RamdiskSessionError(
        `too many ramdisk boots in progress on this agent (${this.maxSessions}, ramdisk.max_sessions)`,
      );
    }
    const token = randomBytes(32).toString('base64url');
    const key = hash(token);
    this.#tokens.set(key, { node, expiresAt: this.#now() + ttlMs });
    this.#tokenOf.set(node, key);
    return token;
  }

  /** Withdraws a token not used yet (its boot files were not written after all). */
  revoke(node: string, token: string): void {
    const key = hash(token);
    if (this.#tokenOf.get(node) === key) this.#dropToken(node);
  }

  /** Forgets the node's unused token (its boot files are gone); a session it has goes on. */
  forgetToken(node: string): void {
    this.#dropToken(node);
  }

  /** Whether a token for the node is waiting for its hello. */
  expecting(node: string): boolean {
    this.sweep();
    return this.#tokenOf.has(node);
  }

  /** Consumes the token: the new session's id and node, or undefined (unknown, used, expired). */
  hello(
    token: string,
    info: { readonly version: string; readonly bootMac: string | null },
  ): { session: string; node: string } | undefined {
    this.sweep();
    const key = hash(token);
    const now = this.#now();
    // A hello repeated soon after (its answer was lost on the way) gets the same session:
    // the token was used, but by this very ramdisk, which cannot be booted again to retry.
    const repeated = this.#answered.get(key);
    if (repeated && now - repeated.at <= this.heartbeatIntervalMs * this.#missed) {
      const session = this.#sessions.get(repeated.session);
      if (session?.state === 'live') return { session: session.id, node: session.node };
    }
    const entry = this.#tokens.get(key);
    if (!entry) return undefined;
    this.#dropToken(entry.node);
    const session: Session = {
      id: randomId(),
      node: entry.node,
      version: info.version,
      bootMac: info.bootMac,
      startedAt: now,
      lastHeartbeat: now,
      state: 'live',
      pending: [],
      inFlight: undefined,
      results: new Map(),
      given: new Map(),
    };
    this.#sessions.set(session.id, session);
    this.#sessionOf.set(session.node, session.id);
    this.#answered.set(key, { session: session.id, at: now });
    for (const [used, answer] of this.#answered) {
      if (now - answer.at > this.heartbeatIntervalMs * this.#missed) this.#answered.delete(used);
    }
    const waiters = this.#helloWaiters.get(session.node);
    this.#helloWaiters.delete(session.node);
    for (const wake of waiters ?? []) wake();
    return { session: session.id, node: session.node };
  }

  /** The node of a live session (and a heartbeat's effect not), or undefined. */
  nodeOf(sessionId: string): string | undefined {
    return this.#live(sessionId)?.node;
  }

  /**
   * A heartbeat: the steps the ramdisk runs next (the head of the FIFO when nothing is in
   * flight), or undefined for an unknown or no longer live session.
   */
  heartbeat(sessionId: string): RamdiskStep[] | undefined {
    const session = this.#live(sessionId);
    if (!session) return undefined;
    session.lastHeartbeat = this.#now();
    // The step in flight is given again until its result comes: the answer that carried it
    // may have been lost, and the ramdisk runs each step id once (a repeat is a no-op).
    if (session.inFlight) return [session.inFlight.step];
    if (session.pending.length === 0) return [];
    const entry = session.pending.shift() as StepEntry;
    session.inFlight = entry;
    session.given.set(entry.step.id, entry.step.name);
    return [entry.step];
  }

  /** A step's result from the ramdisk; the first one for a step is kept. */
  result(sessionId: string, stepId: string, outcome: StepOutcome): ResultOutcome {
    const session = this.#live(sessionId);
    if (!session) return 'unknown-session';
    if (!session.given.has(stepId)) return 'not-given';
    if (session.results.has(stepId)) return 'duplicate';
    session.results.set(stepId, outcome);
    if (session.results.size > MAX_RESULTS) {
      const oldest = session.results.keys().next().value as string;
      session.results.delete(oldest);
    }
    if (session.inFlight?.step.id === stepId) {
      const entry = session.inFlight;
      session.inFlight = undefined;
      entry.waiter?.resolve(outcome);
    }
    // After a successful reboot or power-off the ramdisk is gone: the session ends, not lost.
    const name = session.given.get(stepId);
    if (outcome.status === 'succeeded' && (name === 'reboot' || name === 'poweroff')) {
      this.#end(session, 'ended', `the ramdisk ran ${name}`);
    }
    return 'stored';
  }

  /** The node's session (whatever its state), for messages and tests. */
  describe(node: string): SessionInfo | undefined {
    this.sweep();
    const session = this.#current(node);
    if (!session) return undefined;
    return {
      node,
      state: session.state,
      reason: session.reason,
      version: session.version,
      bootMac: session.bootMac,
      lastHeartbeat: session.lastHeartbeat,
      pending: session.pending.length,
      inFlight: session.inFlight?.step.id,
    };
  }

  /**
   * Queues a step on the node's live session; resolves with the ramdisk's outcome. Rejects
   * with RamdiskSessionError when the node has no live session or it is lost meanwhile,
   * and with `signal`'s reason when aborted (a step not yet given is withdrawn; one given
   * runs on, its result is still taken).
   */
  runStep<N extends RamdiskStepName>(
    node: string,
    step: { readonly id: string; readonly name: N; readonly args: RamdiskStep<N>['args'] },
    signal?: AbortSignal,
  ): Promise<StepOutcome> {
    this.sweep();
    const session = this.#current(node);
    if (!session) {
      return Promise.reject(new RamdiskSessionError(`no ramdisk session for node ${node}: has it booted?`));
    }
    if (session.state !== 'live') {
      return Promise.reject(
        new RamdiskSessionError(
          `the ramdisk session for node ${node} is ${session.state}: ${session.reason}`,
        ),
      );
    }
    if (session.pending.length >= MAX_PENDING) {
      return Promise.reject(
        new RamdiskSessionError(`node ${node}: ${MAX_PENDING} ramdisk steps already queued`),
      );
    }
    let id = STEP_ID.test(step.id) ? step.id : randomId();
    if (
      session.given.has(id) ||
      session.pending.some((e) => e.step.id === id) ||
      session.inFlight?.step.id === id
    ) {
      id = `${id.slice(0, 60)}.${randomBytes(6).toString('base64url')}`;
    }
    const entry: StepEntry = { step: { id, name: step.name, args: step.args } as RamdiskStep };
    return new Promise<StepOutcome>((resolve, reject) => {
      const onAbort = () => {
        entry.waiter = undefined;
        const index = session.pending.indexOf(entry);
        if (index >= 0) session.pending.splice(index, 1);
        reject(signal?.reason ?? new Error('aborted'));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      entry.waiter = {
        resolve: (outcome) => {
          done();
          resolve(outcome);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      session.pending.push(entry);
    });
  }

  /**
   * Resolves when the node's ramdisk has said hello (at once when it has a live session).
   * Rejects with RamdiskSessionError when no token is waiting for it either, and with
   * `signal`'s reason when aborted.
   */
  waitForHello(node: string, signal?: AbortSignal): Promise<SessionInfo> {
    const now = this.describe(node);
    if (now?.state === 'live') return Promise.resolve(now);
    if (!this.expecting(node)) {
      return Promise.reject(
        new RamdiskSessionError(
          now
            ? `the ramdisk session for node ${node} is ${now.state} (${now.reason}) and no new boot is prepared`
            : `no ramdisk boot prepared for node ${node} (boot.prepare with metalplane_ramdisk: true)`,
        ),
      );
    }
    return new Promise<SessionInfo>((resolve, reject) => {
      const waiters = this.#helloWaiters.get(node) ?? new Set<() => void>();
      this.#helloWaiters.set(node, waiters);
      const onAbort = () => {
        waiters.delete(wake);
        if (waiters.size === 0 && this.#helloWaiters.get(node) === waiters) this.#helloWaiters.delete(node);
        reject(signal?.reason ?? new Error('aborted'));
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        const info = this.describe(node);
        if (info) resolve(info);
        else reject(new RamdiskSessionError(`no ramdisk session for node ${node}`));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      waiters.add(wake);
    });
  }

  /** Drops expired tokens and declares silent sessions lost. */
  sweep(): void {
    const now = this.#now();
    for (const [key, entry] of this.#tokens) {
      if (entry.expiresAt <= now) {
        this.#tokens.delete(key);
        if (this.#tokenOf.get(entry.node) === key) this.#tokenOf.delete(entry.node);
        this.#log?.info('ramdisk token expired unused', { node: entry.node });
      }
    }
    const limit = this.heartbeatIntervalMs * this.#missed;
    for (const session of this.#sessions.values()) {
      if (session.state === 'live' && now - session.lastHeartbeat >= limit) {
        this.#end(
          session,
          'lost',
          `no heartbeat for ${Math.round((now - session.lastHeartbeat) / 1000)} s (${this.#missed} intervals of ${this.heartbeatIntervalMs / 1000} s)`,
        );
      }
    }
  }

  #live(sessionId: string): Session | undefined {
    this.sweep();
    const session = this.#sessions.get(sessionId);
    return session?.state === 'live' ? session : undefined;
  }

  #current(node: string): Session | undefined {
    const id = this.#sessionOf.get(node);
    return id === undefined ? undefined : this.#sessions.get(id);
  }

  #end(session: Session, state: 'lost' | 'ended', reason: string): void {
    if (session.state !== 'live') return;
    session.state = state;
    session.reason = reason;
    if (state === 'lost') this.#log?.warn('ramdisk session lost', { node: session.node, reason });
    else this.#log?.info('ramdisk session ended', { node: session.node, reason });
    const error = new RamdiskSessionError(
      `the ramdisk session for node ${session.node} is ${state}: ${reason}`,
    );
    for (const entry of [...(session.inFlight ? [session.inFlight] : []), ...session.pending]) {
      entry.waiter?.reject(error);
    }
    session.inFlight = undefined;
    session.pending.length = 0;
    for (const listener of this.#endListeners) {
      try {
        listener(session.node);
      } catch (error) {
        // A listener's bug must not keep the other listeners (or the session's end) from running.
        this.#log?.error('ramdisk session end listener failed', { node: session.node, error: String(error) });
      }
    }
  }

  #dropToken(node: string): void {
    const key = this.#tokenOf.get(node);
    if (key === undefined) return;
    this.#tokens.delete(key);
    this.#tokenOf.delete(node);
  }

  #dropSession(node: string): void {
    const id = this.#sessionOf.get(node);
    if (id === undefined) return;
    const session = this.#sessions.get(id);
    if (session) this.#end(session, 'ended', 'replaced');
    this.#sessions.delete(id);
    this.#sessionOf.delete(node);
  }
}
