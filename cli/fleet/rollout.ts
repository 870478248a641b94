/**
 * The rollout engine: sends one action to many nodes, at most `maxParallel` at once (and
 * `perSite` per site), taking sites in turn so every site moves; watches each node until
 * its states say it is done; stops launching once the failures of this run exceed
 * `maxFailures`, and lets the nodes in flight finish. Every change is saved, so a rollout
 * whose CLI was interrupted resumes where it was: a node whose request may or may not
 * have landed is looked at before anything is sent again.
 */
import { ApiError } from '../os-config.ts';
import type { FleetAction } from './actions.ts';
import { NODE_FIELDS, type NodeView } from './selector.ts';
import type { NodeRecord, RolloutRecord, RolloutStore } from './store.ts';

export interface RolloutClient {
  request(method: string, path: string, body?: unknown): Promise<{ body: unknown }>;
}

export interface Reporter {
  /** A node changed status. */
  node(record: RolloutRecord, node: NodeRecord): void;
  /** Once per poll: the whole picture. */
  tick(record: RolloutRecord, view: RolloutView): void;
}

export interface RolloutView {
  readonly failures: number;
  readonly failureLimit: number;
  readonly stopping: boolean;
}

export interface RunOptions {
  readonly client: RolloutClient;
  readonly store: RolloutStore;
  readonly reporter: Reporter;
  /** Aborted when the operator interrupts the CLI: the rollout is saved as interrupted. */
  readonly signal: AbortSignal;
  readonly pollMs?: number;
  readonly now?: () => Date;
}

/** Requests refused this many times for a passing reason fail the node. */
const MAX_ATTEMPTS = 5;
/** Nodes read at once while polling. */
const READ_CONCURRENCY = 8;

/** `N` → N; `P%` → P percent of the rollout's nodes, rounded down. */
export function failureLimit(maxFailures: string, total: number): number {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(maxFailures);
  if (percent) return Math.floor((Number(percent[1]) / 100) * total);
  return Number(maxFailures);
}

export function parseMaxFailures(text: string): string {
  if (/^\d+$/.test(text)) return String(Number(text));
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent && Number(percent[1]) <= 100) return text;
  throw new Error(`${text}: a count (3) or a percentage of the nodes (10%)`);
}

export function summaryBySite(record: RolloutRecord) {
  const sites = new Map<string, Record<NodeRecord['status'] | 'total', number>>();
  for (const node of record.nodes) {
    const row = sites.get(node.site) ?? {
      total: 0,
      pending: 0,
      sending: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
    };
    row.total++;
    row[node.status]++;
    sites.set(node.site, row);
  }
  return [...sites.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([site, row]) => ({
      site,
      nodes: row.total,
      pending: row.pending,
      running: row.running + row.sending,
      succeeded: row.succeeded,
      failed: row.failed,
    }));
}

/** A passing refusal: the API unreachable or failing, a node locked by another task. */
function isTransient(error: unknown): boolean {
  if (!(error instanceof ApiError)) return false;
  return (
    error.status === 0 ||
    error.status >= 500 ||
    error.status === 429 ||
    (error.status === 409 && /locked/i.test(error.message))
  );
}

const FIELDS = `fields=${NODE_FIELDS.join(',')}`;
const stamp = (node: NodeView) => `${node.provision_state}@${node.provision_updated_at ?? ''}`;

class Run {
  private readonly now: () => Date;
  private readonly limit: number;
  private failures = 0;
  private stopping = false;
  private nextSite = 0;
  private readonly sites: string[];
  private readonly record: RolloutRecord;
  private readonly action: FleetAction;
  private readonly options: RunOptions;

  constructor(record: RolloutRecord, action: FleetAction, options: RunOptions) {
    this.record = record;
    this.action = action;
    this.options = options;
    this.now = options.now ?? (() => new Date());
    this.limit = failureLimit(record.limits.maxFailures, record.nodes.length);
    this.sites = [...new Set(record.nodes.map((node) => node.site))].sort();
  }

  private async read(node: NodeRecord): Promise<NodeView> {
    const response = await this.options.client.request(
      'GET',
      `/v1/nodes/${encodeURIComponent(node.uuid)}?${FIELDS}`,
    );
    return response.body as NodeView;
  }

  private set(node: NodeRecord, status: NodeRecord['status'], details: Partial<NodeRecord> = {}): void {
    Object.assign(node, details, { status });
    if (status === 'succeeded' || status === 'failed') node.finishedAt = this.now().toISOString();
    if (status === 'failed') {
      this.failures++;
      if (this.failures > this.limit && !this.stopping) {
        this.stopping = true;
        this.record.reason = `${this.failures} failures exceed --max-failures ${this.record.limits.maxFailures} (${this.limit} of ${this.record.nodes.length} nodes)`;
      }
    }
    this.options.reporter.node(this.record, node);
  }

  private inFlight(site?: string): number {
    return this.record.nodes.filter(
      (node) =>
        (node.status === 'running' || node.status === 'sending') &&
        (site === undefined || node.site === site),
    ).length;
  }

  /** The next pending node, sites taken in turn, within the per-site limit. */
  private pick(): NodeRecord | undefined {
    const { perSite } = this.record.limits;
    for (let offset = 0; offset < this.sites.length; offset++) {
      const site = this.sites[(this.nextSite + offset) % this.sites.length] as string;
      if (perSite > 0 && this.inFlight(site) >= perSite) continue;
      const node = this.record.nodes.find(
        (candidate) => candidate.site === site && candidate.status === 'pending',
      );
      if (!node) continue;
      this.nextSite = (this.nextSite + offset + 1) % this.sites.length;
      return node;
    }
    return undefined;
  }

  /** Looks at the node, then sends the action unless it is already done or already landed. */
  private async launch(node: NodeRecord): Promise<void> {
    let view: NodeView;
    try {
      view = await this.read(node);
    } catch (error) {
      return this.refused(node, error);
    }
    if (node.before !== undefined && this.landed(view, node)) {
      this.set(node, 'running');
      return;
    }
    if (this.action.alreadyDone(view)) {
      this.set(node, 'succeeded', { note: 'already done' });
      return;
    }
    this.set(node, 'sending', { before: stamp(view), sentAt: this.now().toISOString() });
    await this.save();
    const { method, path, body } = this.action.request(view);
    try {
      await this.options.client.request(method, path, body);
      this.set(node, 'running');
    } catch (error) {
      this.refused(node, error);
    }
  }

  /** Whether a request sent before (this run or an interrupted one) reached the node. */
  private landed(view: NodeView, node: NodeRecord): boolean {
    if (this.action.spec.kind === 'power') return Boolean(view.target_power_state);
    return stamp(view) !== node.before;
  }

  private refused(node: NodeRecord, error: unknown): void {
    const message = (error as Error).message;
    if (isTransient(error) && node.attempts + 1 < MAX_ATTEMPTS) {
      // The request may have landed: `before` stays, and the next launch looks first.
      this.set(node, 'pending', { attempts: node.attempts + 1, error: message });
      return;
    }
    this.set(node, 'failed', { error: message, attempts: node.attempts + 1 });
  }

  private async poll(node: NodeRecord): Promise<void> {
    let view: NodeView;
    try {
      view = await this.read(node);
    } catch (error) {
      if (isTransient(error)) return;
      this.set(node, 'failed', { error: (error as Error).message });
      return;
    }
    const outcome = this.action.outcome(view);
    if (outcome.done) {
      if (outcome.error === undefined) this.set(node, 'succeeded', { error: undefined });
      else this.set(node, 'failed', { error: outcome.error });
      return;
    }
    const { timeoutSeconds } = this.record.limits;
    const sent = Date.parse(node.sentAt ?? '');
    if (timeoutSeconds > 0 && Number.isFinite(sent) && this.now().getTime() - sent > timeoutSeconds * 1000) {
      this.set(node, 'failed', {
        error: `did not finish within ${timeoutSeconds} s (it is ${view.provision_state}, power ${view.power_state})`,
      });
    }
  }

  private async save(): Promise<void> {
    this.record.updatedAt = this.now().toISOString();
    await this.options.store.save(this.record);
  }

  private async pollAll(): Promise<void> {
    const running = this.record.nodes.filter((node) => node.status === 'running');
    for (let start = 0; start < running.length; start += READ_CONCURRENCY) {
      await Promise.all(running.slice(start, start + READ_CONCURRENCY).map((node) => this.poll(node)));
    }
  }

  private async launchAll(): Promise<void> {
    const batch: NodeRecord[] = [];
    while (!this.stopping && this.inFlight() < this.record.limits.maxParallel) {
      const node = this.pick();
      if (!node) break;
      // Reserved for this batch: not picked twice, and counted against the site's limit.
      node.status = 'sending';
      batch.push(node);
    }
    for (const node of batch) node.status = 'pending';
    await Promise.all(batch.map((node) => this.launch(node)));
  }

  private finished(): boolean {
    if (this.inFlight() > 0) return false;
    return this.stopping || !this.record.nodes.some((node) => node.status === 'pending');
  }

  private wait(ms: number): Promise<void> {
    const { signal } = this.options;
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      }
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async run(): Promise<RolloutRecord> {
    const { signal, reporter } = this.options;
    this.record.status = 'running';
    delete this.record.reason;
    await this.save();
    while (!signal.aborted) {
      await this.launchAll();
      await this.save();
      reporter.tick(this.record, {
        failures: this.failures,
        failureLimit: this.limit,
        stopping: this.stopping,
      });
      if (this.finished()) break;
      await this.wait(this.options.pollMs ?? 1000);
      if (signal.aborted) break;
      await this.pollAll();
    }
    if (signal.aborted) {
      this.record.status = 'interrupted';
      this.record.reason = 'interrupted: the nodes in flight go on; resume to follow them';
    } else if (this.stopping) {
      this.record.status = 'stopped';
    } else {
      this.record.status = 'completed';
    }
    await this.save();
    reporter.tick(this.record, {
      failures: this.failures,
      failureLimit: this.limit,
      stopping: this.stopping,
    });
    return this.record;
  }
}

export function runRollout(
  record: RolloutRecord,
  action: FleetAction,
  options: RunOptions,
): Promise<RolloutRecord> {
  return new Run(record, action, options).run();
}

/**
 * Readies a saved rollout to run again: interrupted requests are looked at before being
 * resent; with `retryFailed`, failed nodes are tried again (their old error kept until then).
 */
export function prepareResume(record: RolloutRecord, retryFailed: boolean): void {
  for (const node of record.nodes) {
    if (node.status === 'sending') node.status = 'pending';
    if (retryFailed && node.status === 'failed') {
      node.status = 'pending';
      node.attempts = 0;
      delete node.before;
      delete node.sentAt;
      delete node.finishedAt;
    }
  }
}
