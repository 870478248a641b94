/**
 * Runs commands: strictly in arrival order per node, in parallel across nodes up to a
 * limit, each at most once (the journal), each bounded by its deadline.
 *
 * A command's life: `submit` → queued behind its node's earlier commands → (slot free)
 * checks (known action, valid args, deadline not passed) → `started` written to the
 * journal and fsync'd → `onStart` (the ack) → the action runs with an AbortSignal that
 * fires at the deadline → `finished` written with the result → `onResult` (the report).
 *
 * Redelivery of an id: while it is queued or running, the new receipt replaces the old
 * one (the result will carry it; a running one is acknowledged again with it); once
 * finished, the stored result is reported again with the new receipt, and nothing runs.
 */
import type { Command, CommandStatus } from '../protocol/messages.ts';
import type { ActionRegistry } from './drivers/registry.ts';
import type { Action } from './drivers/types.ts';
import { errorMessage, type Logger } from './log.ts';
import { INTERRUPTED, isFinished, type Journal, type Report, resultMessage } from './state.ts';

/** Results larger than this fail instead (a message must fit API Gateway's 128 KiB). */
export const MAX_RESULT_BYTES = 96 * 1024;
const MAX_ERROR_CHARS = 4000;

export interface ExecutorOptions {
  readonly limit: number;
  readonly journal: Journal;
  readonly registry: ActionRegistry;
  readonly log: Logger;
  /** The command is journaled as started and about to run: acknowledge it. */
  readonly onStart?: (command: Command) => void;
  /** A running command was delivered again: acknowledge it again, with the new receipt. */
  readonly onRedeliveredRunning?: (command: Command) => void;
  /** A result to report (of a run, or from the journal for a redelivery). */
  readonly onResult: (report: Report) => Promise<void> | void;
  /** The load went down: the caller may fetch more work. */
  readonly onCapacity?: () => void;
  /** How long an aborted action may take to settle before its node takes its next command. */
  readonly abortGraceMs?: number;
  readonly now?: () => number;
}

interface Tracked {
  readonly command: Command;
  /** The receipt of the latest delivery. */
  receipt: string;
  state: 'queued' | 'running';
  abort?: AbortController;
}

class Aborted extends Error {
  readonly why: 'deadline' | 'shutdown';
  constructor(why: 'deadline' | 'shutdown') {
    super(why);
    this.why = why;
  }
}

export type SubmitOutcome = 'queued' | 'duplicate' | 'replayed' | 'refused';

export class Executor {
  readonly #o: ExecutorOptions;
  readonly #now: () => number;
  readonly #nodes = new Map<string, { queue: Tracked[]; busy: boolean }>();
  readonly #ready: string[] = [];
  readonly #tracked = new Map<string, Tracked>();
  #running = 0;
  #stopping = false;
  #settled: Array<() => void> = [];
  readonly #knownActions: Set<string>;
  /** `${action} ${status}` → count, for metrics. */
  readonly executed = new Map<string, number>();
  deduplicated = 0;

  constructor(options: ExecutorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#knownActions = options.registry.actionNames();
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#tracked.size - this.#running;
  }

  /** Commands held (queued or running). */
  get load(): number {
    return this.#tracked.size;
  }

  get limit(): number {
    return this.#o.limit;
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  submit(command: Command): SubmitOutcome {
    if (this.#stopping) return 'refused';
    const held = this.#tracked.get(command.id);
    if (held) {
      held.receipt = command.receipt;
      this.deduplicated++;
      this.#o.log.info('redelivered while held: keeping the newest receipt', {
        command_id: command.id,
        state: held.state,
      });
      // Running already: acknowledge again with the new receipt (the first ack may have
      // been lost, and with it the control plane's hold on the message while it runs).
      if (held.state === 'running')
        this.#o.onRedeliveredRunning?.({ ...held.command, receipt: command.receipt });
      return 'duplicate';
    }
    const entry = this.#o.journal.get(command.id);
    if (isFinished(entry)) {
      this.deduplicated++;
      this.#o.log.info('redelivered after it ran: answering from the journal', {
        command_id: command.id,
        status: entry.status,
      });
      void this.#report(resultMessage(entry, command.receipt));
      return 'replayed';
    }
    // (A started-but-unfinished entry can only come from a previous process, and those
    // are finished as interrupted at start-up, before any command is accepted.)
    const tracked: Tracked = { command, receipt: command.receipt, state: 'queued' };
    this.#tracked.set(command.id, tracked);
    let node = this.#nodes.get(command.node);
    if (!node) {
      node = { queue: [], busy: false };
      this.#nodes.set(command.node, node);
    }
    node.queue.push(tracked);
    if (!node.busy && node.queue.length === 1) this.#ready.push(command.node);
    this.#schedule();
    return 'queued';
  }

  #schedule(): void {
    while (this.#running < this.#o.limit && this.#ready.length > 0 && !this.#stopping) {
      const name = this.#ready.shift()!;
      const node = this.#nodes.get(name);
      const tracked = node?.queue.shift();
      if (!node || !tracked) continue;
      node.busy = true;
      tracked.state = 'running';
      this.#running++;
      void this.#run(tracked)
        .catch((error) => this.#o.log.error('executor failure', { command_id: tracked.command.id, error }))
        .finally(() => {
          this.#running--;
          node.busy = false;
          this.#tracked.delete(tracked.command.id);
          if (node.queue.length > 0) this.#ready.push(name);
          else this.#nodes.delete(name);
          if (this.#running === 0) for (const f of this.#settled.splice(0)) f();
          this.#schedule();
          this.#o.onCapacity?.();
        });
    }
  }

  async #run(t: Tracked): Promise<void> {
    const command = t.command;
    const log = this.#o.log.child({ command_id: command.id, node: command.node, action: command.action });
    const resolved = this.#o.registry.resolve(command);
    let action: Action | undefined;
    let refusal: string | undefined;
    if ('error' in resolved) refusal = resolved.error;
    else {
      action = resolved.action;
      refusal = action.validate?.(command.args);
    }
    const deadline = Date.parse(command.deadline);
    if (!refusal && !(deadline > this.#now()))
      refusal = `deadline ${command.deadline} passed before the command started`;
    if (refusal || !action) {
      log.warn('command refused without running', { error: refusal });
      await this.#finish(t, { status: 'failed', error: refusal ?? 'refused' });
      return;
    }

    try {
      await this.#o.journal.start({ ...command, receipt: t.receipt });
    } catch (error) {
      // Without a journal line, running could break "at most once": do not run.
      log.error('cannot journal the start: not running it', { error });
      void this.#report({
        v: 1,
        type: 'command_result',
        command_id: command.id,
        receipt: t.receipt,
        status: 'failed',
        error: truncate(`agent journal unavailable: ${errorMessage(error)}`),
        finished_at: new Date(this.#now()).toISOString(),
      });
      return;
    }
    this.#o.onStart?.({ ...command, receipt: t.receipt });
    log.info('command started', { deadline: command.deadline, attempt: command.attempt });

    const started = performance.now();
    const abort = new AbortController();
    t.abort = abort;
    const timer = setTimeout(() => abort.abort(new Aborted('deadline')), Math.max(0, deadline - this.#now()));
    const aborted = new Promise<never>((_, reject) => {
      abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
    });
    aborted.catch(() => {});
    const work = Promise.resolve().then(() =>
      action.run({ command, args: command.args, signal: abort.signal, log }),
    );
    let outcome: { status: CommandStatus; result?: Record<string, unknown>; error?: string };
    try {
      outcome = { status: 'succeeded', result: normalizeResult(await Promise.race([work, aborted])) };
    } catch (error) {
      const reason = abort.signal.aborted ? abort.signal.reason : undefined;
      if (reason instanceof Aborted && reason.why === 'shutdown')
        outcome = { status: 'failed', error: INTERRUPTED };
      else if (reason instanceof Aborted) {
        outcome = {
          status: 'failed',
          error: `timed out: the deadline ${command.deadline} passed after ${Math.round(performance.now() - started)} ms`,
        };
      } else outcome = { status: 'failed', error: truncate(errorMessage(error) || 'failed') };
    } finally {
      clearTimeout(timer);
    }
    const ms = Math.round(performance.now() - started);
    log.info('command finished', { status: outcome.status, error: outcome.error, duration_ms: ms });
    await this.#finish(t, outcome);

    if (abort.signal.aborted) {
      // Reported already; keep the node busy until the action lets go (bounded).
      const grace = this.#o.abortGraceMs ?? 5000;
      let graceTimer: NodeJS.Timeout | undefined;
      const settled = await Promise.race([
        work.then(
          () => true,
          () => true,
        ),
        new Promise<false>((r) => {
          graceTimer = setTimeout(() => r(false), grace);
        }),
      ]);
      clearTimeout(graceTimer);
      if (!settled)
        log.warn('aborted action still running after the grace period; releasing its node', {
          grace_ms: grace,
        });
    }
  }

  async #finish(
    t: Tracked,
    outcome: { status: CommandStatus; result?: Record<string, unknown>; error?: string },
  ): Promise<void> {
    const command = t.command;
    const label = this.#knownActions.has(command.action) ? command.action : 'unknown';
    const key = `${label} ${outcome.status}`;
    this.executed.set(key, (this.executed.get(key) ?? 0) + 1);
    let entry: Awaited<ReturnType<Journal['finish']>>;
    try {
      entry = await this.#o.journal.finish(
        { ...command, receipt: t.receipt },
        { ...outcome, finishedAt: new Date(this.#now()).toISOString() },
      );
    } catch (error) {
      this.#o.log.error('cannot journal the result', { command_id: command.id, error });
      entry = {
        id: command.id,
        node: command.node,
        action: command.action,
        receipt: t.receipt,
        ...outcome,
        finishedAt: new Date(this.#now()).toISOString(),
      };
    }
    await this.#report(resultMessage(entry, t.receipt));
  }

  async #report(report: Report): Promise<void> {
    try {
      await this.#o.onResult(report);
    } catch (error) {
      this.#o.log.error('cannot queue a report', {
        command_id: (report as { command_id?: string }).command_id,
        error,
      });
    }
  }

  /**
   * Stops taking commands. Queued ones are dropped (never started, so the queue
   * redelivers them); running ones get `graceMs` to finish, then are aborted and
   * journaled as interrupted. Resolves when nothing runs any more.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    let dropped = 0;
    for (const [name, node] of this.#nodes) {
      for (const t of node.queue.splice(0)) {
        this.#tracked.delete(t.command.id);
        dropped++;
      }
      if (!node.busy) this.#nodes.delete(name);
    }
    this.#ready.length = 0;
    if (dropped)
      this.#o.log.info('dropped queued commands that had not started (they will be redelivered)', {
        dropped,
      });
    if (this.#running === 0) return;
    const idle = new Promise<void>((r) => this.#settled.push(r));
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      idle.then(() => true),
      new Promise<false>((r) => {
        timer = setTimeout(() => r(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (inTime) return;
    this.#o.log.warn('aborting commands still running at shutdown', { running: this.#running });
    for (const t of this.#tracked.values()) t.abort?.abort(new Aborted('shutdown'));
    await idle;
  }
}

function truncate(text: string): string {
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
}

class ResultError extends Error {}

function normalizeResult(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ResultError('the action returned a non-object result');
  const text = JSON.stringify(value);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_RESULT_BYTES)
    throw new ResultError(`result too large (${bytes} bytes, at most ${MAX_RESULT_BYTES})`);
  return JSON.parse(text) as Record<string, unknown>;
}
