/**
 * The agent's durable local state, all in its state directory:
 *
 * - `credential`: the long-lived agent credential (mode 0600, written atomically);
 * - `enrollment.json`: what enrollment answered besides the credential (non-secret);
 * - `journal.jsonl`: every command this agent has started or finished, append-only JSON
 *   lines, fsync'd before the agent acts on them, compacted at start;
 * - `outbox.jsonl`: reports (command results, power reports) not yet handed to the
 *   control plane, replayed in order when the channel is up;
 * - `agent.lock`: the pid of the agent using the directory (one agent per directory).
 *
 * The journal is what makes "executed at most once" hold across crashes: a `started`
 * line is on disk before an action runs, a `finished` line (with the result) before the
 * result is reported. A command found started but not finished at start-up was cut
 * short by a crash; it is never run again but reported failed with INTERRUPTED.
 */
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AgentMessage, Command, CommandStatus } from '../protocol/messages.ts';
import { errorMessage, type Logger, silentLogger } from './log.ts';

export const INTERRUPTED = 'interrupted: the agent stopped while it ran';

export const STATE_FILES = {
  credential: 'credential',
  enrollment: 'enrollment.json',
  journal: 'journal.jsonl',
  outbox: 'outbox.jsonl',
  lock: 'agent.lock',
} as const;

// ---------------------------------------------------------------------------------------
// Files

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  }
}

/** Writes `path` atomically: a temporary file with `mode`, fsync'd, renamed over it, directory fsync'd. */
export async function writeFileAtomic(path: string, data: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.chmod(mode); // the umask may have narrowed or the file pre-existed
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  fsyncDir(dirname(path));
}

/** Creates the state directory (0700) if needed. */
export async function ensureStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function writeCredential(dir: string, credential: string): Promise<string> {
  await ensureStateDir(dir);
  const path = join(dir, STATE_FILES.credential);
  await writeFileAtomic(path, `${credential}\n`, 0o600);
  return path;
}

export class CredentialError extends Error {
  override readonly name = 'CredentialError';
}

/** Reads the credential; refuses a file that others can read, as ssh does with keys. */
export async function readCredential(dir: string): Promise<string> {
  const path = join(dir, STATE_FILES.credential);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CredentialError(
        `${path}: not enrolled yet: run "metalplane-agent enroll --url URL --token TOKEN"`,
      );
    }
    throw new CredentialError(`${path}: ${errorMessage(error)}`);
  }
  if ((info.mode & 0o077) !== 0) {
    throw new CredentialError(
      `${path}: mode ${(info.mode & 0o777).toString(8).padStart(4, '0')} lets others read it; run "chmod 600 ${path}"`,
    );
  }
  const text = (await readFile(path, 'utf8')).trim();
  if (!text) throw new CredentialError(`${path}: empty`);
  return text;
}

export async function credentialExists(dir: string): Promise<boolean> {
  try {
    await stat(join(dir, STATE_FILES.credential));
    return true;
  } catch {
    return false;
  }
}

export async function writeEnrollment(dir: string, info: Record<string, unknown>): Promise<void> {
  await writeFileAtomic(join(dir, STATE_FILES.enrollment), `${JSON.stringify(info, null, 2)}\n`, 0o600);
}

export async function readEnrollment(dir: string): Promise<Record<string, unknown>> {
  try {
    const value = JSON.parse(await readFile(join(dir, STATE_FILES.enrollment), 'utf8')) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the state directory for this process; throws if another live agent holds it. */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, STATE_FILES.lock);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return async () => {
        try {
          if ((await readFile(path, 'utf8')).trim() === String(process.pid)) await unlink(path);
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
        throw new Error(`${dir} is in use by another agent (pid ${pid}); stop it first`);
      }
      await unlink(path).catch(() => {}); // stale: its agent is gone
    }
  }
  throw new Error(`${path}: cannot take the lock`);
}

// ---------------------------------------------------------------------------------------
// Append-only JSON lines with group commit

/**
 * An append-only file of JSON lines. Appends made while a write is in progress are
 * coalesced into the next write (one write + one fdatasync for all of them), so many
 * commands finishing together cost one sync. `append` resolves once the lines are on
 * disk (fdatasync'd when `durable`).
 */
export class AppendLog {
  readonly path: string;
  #fh: FileHandle;
  #pending: Array<{ text: string; durable: boolean; done: (error?: unknown) => void }> = [];
  #writing = false;
  #rewriting = false;
  #closed = false;
  linesWritten = 0;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  static async open(path: string): Promise<AppendLog> {
    return new AppendLog(path, await open(path, 'a', 0o600));
  }

  append(records: readonly unknown[], durable = true): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.path}: closed`));
    const text = records.map((r) => `${JSON.stringify(r)}\n`).join('');
    return new Promise((resolve, reject) => {
      this.#pending.push({ text, durable, done: (error) => (error ? reject(error) : resolve()) });
      this.linesWritten += records.length;
      if (!this.#writing && !this.#rewriting) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0);
      try {
        await this.#fh.write(batch.map((b) => b.text).join(''));
        if (batch.some((b) => b.durable)) await this.#fh.datasync();
        for (const b of batch) b.done();
      } catch (error) {
        for (const b of batch) b.done(error);
      }
    }
    this.#writing = false;
  }

  /** Replaces the whole file (atomically) with `records`; waits for pending appends first. */
  async rewrite(records: readonly unknown[]): Promise<void> {
    this.#rewriting = true;
    try {
      while (this.#writing) await new Promise((r) => setImmediate(r));
      await this.#fh.close();
      await writeFileAtomic(this.path, records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      this.#fh = await open(this.path, 'a', 0o600);
      this.linesWritten = records.length;
    } finally {
      this.#rewriting = false;
    }
    if (this.#pending.length > 0 && !this.#writing) void this.#flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#writing) await new Promise((r) => setImmediate(r));
    await this.#fh.close();
  }
}

/**
 * Reads JSON lines, tolerating damage: a torn last line (a crash mid-write) is dropped
 * silently; an unreadable line elsewhere is skipped and counted.
 */
export async function readJsonLines(
  path: string,
): Promise<{ records: unknown[]; torn: boolean; skipped: number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], torn: false, skipped: 0 };
    throw error;
  }
  const lines = text.split('\n');
  const last = lines.pop(); // '' when the file ends with a newline
  const records: unknown[] = [];
  let skipped = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line));
    } catch {
      skipped++;
    }
  }
  let torn = false;
  if (last?.trim()) {
    // A last line without its newline was being written when the process died.
    try {
      records.push(JSON.parse(last));
    } catch {
      torn = true;
    }
  }
  return { records, torn, skipped };
}

// ---------------------------------------------------------------------------------------
// Journal

export interface JournalEntry {
  readonly id: string;
  readonly node: string;
  readonly action: string;
  /** The receipt of the delivery that started it (results of redeliveries carry the new one). */
  readonly receipt: string;
  readonly startedAt?: string;
  readonly status?: CommandStatus;
  readonly result?: Record<string, unknown>;
  readonly error?: string;
  readonly finishedAt?: string;
}

export interface FinishedEntry extends JournalEntry {
  readonly status: CommandStatus;
  readonly finishedAt: string;
}

type StartedLine = { r: 's'; id: string; node: string; action: string; receipt: string; at: string };
type FinishedLine = {
  r: 'f';
  id: string;
  node: string;
  action: string;
  receipt: string;
  status: CommandStatus;
  result?: Record<string, unknown>;
  error?: string;
  at: string;
  started_at?: string;
};

export const isFinished = (e: JournalEntry | undefined): e is FinishedEntry => e?.status !== undefined;

export interface JournalOpenResult {
  journal: Journal;
  /** Started before the last stop and never finished: to be reported failed, never re-run. */
  interrupted: JournalEntry[];
  /** Lines dropped while reading (torn last line, unreadable lines). */
  damaged: number;
  /** Finished entries dropped for being older than the retention. */
  expired: number;
}

export class Journal {
  readonly #log: AppendLog;
  readonly #entries: Map<string, JournalEntry>;

  private constructor(log: AppendLog, entries: Map<string, JournalEntry>) {
    this.#log = log;
    this.#entries = entries;
  }

  /**
   * Reads `journal.jsonl`, drops finished entries older than `retentionMs`, rewrites the
   * file compacted (one line per command), and opens it for appending.
   */
  static async open(
    dir: string,
    options: { retentionMs: number; now?: () => number; log?: Logger },
  ): Promise<JournalOpenResult> {
    const log = options.log ?? silentLogger;
    const now = options.now ?? Date.now;
    const path = join(dir, STATE_FILES.journal);
    const { records, torn, skipped } = await readJsonLines(path);
    if (torn) log.warn('journal: dropped a torn last line (the agent died while writing it)', { path });
    if (skipped) log.warn('journal: skipped unreadable lines', { path, skipped });
    const entries = new Map<string, JournalEntry>();
    for (const rec of records) {
      const line = rec as {
        r?: unknown;
        id?: unknown;
        node?: unknown;
        action?: unknown;
        receipt?: unknown;
        at?: unknown;
        started_at?: string;
        status?: unknown;
        result?: Record<string, unknown>;
        error?: string;
      } | null;
      if (typeof line?.id !== 'string' || (line.r !== 's' && line.r !== 'f')) continue;
      const prior = entries.get(line.id);
      if (line.r === 's') {
        if (isFinished(prior)) continue;
        entries.set(line.id, {
          id: line.id,
          node: String(line.node),
          action: String(line.action),
          receipt: String(line.receipt),
          startedAt: String(line.at),
        });
      } else {
        entries.set(line.id, {
          id: line.id,
          node: String(line.node),
          action: String(line.action),
          receipt: String(line.receipt),
          startedAt: line.started_at ?? prior?.startedAt,
          status: line.status === 'succeeded' ? 'succeeded' : 'failed',
          result: line.result,
          error: line.error,
          finishedAt: String(line.at),
        });
      }
    }
    const cutoff = now() - options.retentionMs;
    let expired = 0;
    for (const [id, e] of entries) {
      if (isFinished(e) && Date.parse(e.finishedAt) < cutoff) {
        entries.delete(id);
        expired++;
      }
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, [...entries.values()].map((e) => `${JSON.stringify(toLine(e))}\n`).join(''));
    const journal = new Journal(await AppendLog.open(path), entries);
    const interrupted = [...entries.values()].filter((e) => !isFinished(e));
    return { journal, interrupted, damaged: skipped + (torn ? 1 : 0), expired };
  }

  get(id: string): JournalEntry | undefined {
    return this.#entries.get(id);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Records (durably) that `command` is about to run. Resolves once it is on disk. */
  async start(command: Pick<Command, 'id' | 'node' | 'action' | 'receipt'>, at = new Date()): Promise<void> {
    const entry: JournalEntry = {
      id: command.id,
      node: command.node,
      action: command.action,
      receipt: command.receipt,
      startedAt: at.toISOString(),
    };
    this.#entries.set(command.id, entry);
    await this.#log.append([toLine(entry)]);
  }

  /** Records (durably) how `command` ended. Resolves once it is on disk. */
  async finish(
    command: Pick<Command, 'id' | 'node' | 'action' | 'receipt'>,
    outcome: { status: CommandStatus; result?: Record<string, unknown>; error?: string; finishedAt?: string },
  ): Promise<FinishedEntry> {
    const entry: FinishedEntry = {
      id: command.id,
      node: command.node,
      action: command.action,
      receipt: command.receipt,
      startedAt: this.#entries.get(command.id)?.startedAt,
      status: outcome.status,
      result: outcome.result,
      error: outcome.error,
      finishedAt: outcome.finishedAt ?? new Date().toISOString(),
    };
    this.#entries.set(command.id, entry);
    await this.#log.append([toLine(entry)]);
    return entry;
  }

  close(): Promise<void> {
    return this.#log.close();
  }
}

function toLine(e: JournalEntry): StartedLine | FinishedLine {
  if (!isFinished(e)) {
    return { r: 's', id: e.id, node: e.node, action: e.action, receipt: e.receipt, at: e.startedAt ?? '' };
  }
  const line: FinishedLine = {
    r: 'f',
    id: e.id,
    node: e.node,
    action: e.action,
    receipt: e.receipt,
    status: e.status,
    at: e.finishedAt,
  };
  if (e.startedAt) line.started_at = e.startedAt;
  if (e.result !== undefined) line.result = e.result;
  if (e.error !== undefined) line.error = e.error;
  return line;
}

/** The `command_result` message reporting a journal entry, with the receipt of the delivery at hand. */
export function resultMessage(entry: FinishedEntry, receipt: string): Report {
  const msg: Extract<AgentMessage, { type: 'command_result' }> = {
    v: 1,
    type: 'command_result',
    command_id: entry.id,
    receipt,
    status: entry.status,
    finished_at: entry.finishedAt,
  };
  if (entry.result !== undefined) msg.result = entry.result;
  if (entry.error !== undefined) msg.error = entry.error;
  return msg;
}

// ---------------------------------------------------------------------------------------
// Outbox

export type Report = Extract<AgentMessage, { type: 'command_result' | 'power_report' }>;
export interface OutboxEntry {
  readonly seq: number;
  readonly msg: Report;
}

/**
 * Reports waiting to be handed to the control plane, in the order they were made.
 * `add` is durable before it resolves; `done` (once the channel took the report) is
 * written lazily: after a crash a report may be sent twice, never lost.
 */
export class Outbox {
  readonly #log: AppendLog;
  readonly #pending: OutboxEntry[];
  #seq: number;
  readonly maxEntries: number;
  readonly #log_: Logger;

  private constructor(
    log: AppendLog,
    pending: OutboxEntry[],
    seq: number,
    maxEntries: number,
    logger: Logger,
  ) {
    this.#log = log;
    this.#pending = pending;
    this.#seq = seq;
    this.maxEntries = maxEntries;
    this.#log_ = logger;
  }

  static async open(dir: string, options: { maxEntries?: number; log?: Logger } = {}): Promise<Outbox> {
    const path = join(dir, STATE_FILES.outbox);
    const { records } = await readJsonLines(path);
    const byseq = new Map<number, Report>();
    let seq = 0;
    for (const rec of records) {
      const line = rec as { q?: unknown; m?: unknown; d?: unknown };
      if (typeof line.q === 'number' && typeof line.m === 'object' && line.m !== null) {
        byseq.set(line.q, line.m as Report);
        seq = Math.max(seq, line.q);
      } else if (typeof line.d === 'number') {
        byseq.delete(line.d);
        seq = Math.max(seq, line.d);
      }
    }
    const pending = [...byseq.entries()].sort((a, b) => a[0] - b[0]).map(([s, msg]) => ({ seq: s, msg }));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, pending.map((e) => `${JSON.stringify({ q: e.seq, m: e.msg })}\n`).join(''));
    return new Outbox(
      await AppendLog.open(path),
      pending,
      seq,
      options.maxEntries ?? 100_000,
      options.log ?? silentLogger,
    );
  }

  get length(): number {
    return this.#pending.length;
  }

  /** The oldest report not yet handed over. */
  peek(): OutboxEntry | undefined {
    return this.#pending[0];
  }

  entries(): readonly OutboxEntry[] {
    return this.#pending;
  }

  /** Adds a report at the end; resolves once it is on disk. */
  async add(msg: Report): Promise<OutboxEntry> {
    const entry = { seq: ++this.#seq, msg };
    this.#pending.push(entry);
    const lines: unknown[] = [{ q: entry.seq, m: msg }];
    while (this.#pending.length > this.maxEntries) {
      const dropped = this.#pending.shift()!;
      lines.push({ d: dropped.seq });
      this.#log_.warn('outbox full: dropped its oldest report', {
        type: dropped.msg.type,
        max: this.maxEntries,
      });
    }
    await this.#log.append(lines);
    return entry;
  }

  /** The report `seq` was handed over. */
  async done(seq: number): Promise<void> {
    const i = this.#pending.findIndex((e) => e.seq === seq);
    if (i < 0) return;
    this.#pending.splice(i, 1);
    if (this.#pending.length === 0 && this.#log.linesWritten > 10_000) {
      await this.#log.rewrite([]);
      return;
    }
    await this.#log.append([{ d: seq }], false);
  }

  close(): Promise<void> {
    return this.#log.close();
  }
}

/**
 * Reports every command cut short by the previous stop as failed (INTERRUPTED) and
 * journals it finished, so that it is never run again: outbox first, then journal, so
 * that a crash between the two reports it twice rather than not at all.
 */
export async function recoverInterrupted(
  interrupted: readonly JournalEntry[],
  journal: Journal,
  outbox: Outbox,
  log: Logger = silentLogger,
): Promise<void> {
  for (const e of interrupted) {
    const finishedAt = new Date().toISOString();
    await outbox.add({
      v: 1,
      type: 'command_result',
      command_id: e.id,
      receipt: e.receipt,
      status: 'failed',
      error: INTERRUPTED,
      finished_at: finishedAt,
    });
    await journal.finish(e, { status: 'failed', error: INTERRUPTED, finishedAt });
    log.warn('command interrupted by the previous stop: reported failed, not run again', {
      command_id: e.id,
      node: e.node,
      action: e.action,
      started_at: e.startedAt,
    });
  }
}
