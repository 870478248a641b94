/**
 * Rollouts on disk, so an interrupted CLI can resume one: one JSON file per rollout in
 * `$METALPLANE_STATE_DIR`, else `$XDG_STATE_HOME/metalplane/rollouts`, else
 * `~/.local/state/metalplane/rollouts` (directory 0700, files 0600: node names are
 * inventory). Each save writes a temporary file and renames it over the old one, so a
 * crash mid-write leaves the previous state, never half a file. A lock file holding the
 * CLI's PID keeps two CLIs from driving the same rollout.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../os-config.ts';
import type { ActionSpec } from './actions.ts';

export type NodeStatus = 'pending' | 'sending' | 'running' | 'succeeded' | 'failed';

export interface NodeRecord {
  readonly uuid: string;
  readonly name: string | null;
  readonly site: string;
  status: NodeStatus;
  error?: string;
  /** Set when the node was already where the action takes it. */
  note?: string;
  /** The node's provision_updated_at before the request: a changed one proves it landed. */
  before?: string | null;
  sentAt?: string;
  finishedAt?: string;
  /** Requests refused for a passing reason (a locked node, an unreachable API). */
  attempts: number;
}

export type RolloutStatus = 'running' | 'completed' | 'stopped' | 'interrupted';

export interface RolloutLimits {
  maxParallel: number;
  /** A count, or a percentage of the rollout's nodes (`10%`). */
  maxFailures: string;
  perSite: number;
  /** Seconds one node may take once its request is accepted (0: no limit). */
  timeoutSeconds: number;
}

export interface RolloutRecord {
  readonly format: 1;
  readonly id: string;
  readonly action: ActionSpec;
  readonly selector: string;
  readonly endpoint: string;
  readonly createdAt: string;
  updatedAt: string;
  status: RolloutStatus;
  /** Why it stopped, when it did. */
  reason?: string;
  limits: RolloutLimits;
  nodes: NodeRecord[];
}

export function stateDirectory(env: NodeJS.ProcessEnv): string {
  if (env.METALPLANE_STATE_DIR) return env.METALPLANE_STATE_DIR;
  const base = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(base, 'metalplane', 'rollouts');
}

const ID = /^r-\d{8}-\d{6}-[0-9a-f]{6}$/;

export function newRolloutId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `r-${stamp}-${randomBytes(3).toString('hex')}`;
}

export class RolloutStore {
  readonly directory: string;
  private writing: Promise<void> = Promise.resolve();
  constructor(directory: string) {
    this.directory = directory;
  }

  private file(id: string): string {
    if (!ID.test(id)) throw new UsageError(`${id} is not a rollout ID (r-YYYYMMDD-HHMMSS-xxxxxx)`);
    return join(this.directory, `${id}.json`);
  }

  /** Saves one after another: concurrent launches each save, and the last state wins. */
  save(record: RolloutRecord): Promise<void> {
    const text = `${JSON.stringify(record)}\n`;
    const next = this.writing.then(() => this.write(record.id, text));
    this.writing = next.catch(() => undefined);
    return next;
  }

  private async write(id: string, text: string): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const path = this.file(id);
    const temporary = `${path}.${process.pid}.tmp`;
    await writeFile(temporary, text, { mode: 0o600 });
    await rename(temporary, path);
  }

  async load(id: string): Promise<RolloutRecord> {
    let text: string;
    try {
      text = await readFile(this.file(id), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UsageError(`no rollout ${id} in ${this.directory}`);
      }
      throw error;
    }
    const record = JSON.parse(text) as RolloutRecord;
    if (record.format !== 1 || record.id !== id || !Array.isArray(record.nodes)) {
      throw new UsageError(`${this.file(id)} is not a rollout this CLI can read`);
    }
    return record;
  }

  async list(): Promise<RolloutRecord[]> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const ids = names.filter((name) => name.endsWith('.json')).map((name) => name.slice(0, -5));
    const records = await Promise.all(ids.filter((id) => ID.test(id)).map((id) => this.load(id)));
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Takes the rollout's lock (a file with this PID); a lock whose process is gone is taken over. */
  async lock(id: string): Promise<() => Promise<void>> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const path = `${this.file(id)}.lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        return () => rm(path, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number((await readFile(path, 'utf8').catch(() => '')).trim());
        if (Number.isInteger(holder) && holder > 0 && isRunning(holder)) {
          throw new UsageError(`rollout ${id} is being driven by process ${holder}`);
        }
        await rm(path, { force: true });
      }
    }
    throw new UsageError(`could not lock rollout ${id}`);
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
