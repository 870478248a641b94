/**
 * The power-state sync (Ironic's `_sync_power_states` periodic task, on the site): every
 * `interval` the agent reads the power state of each of its site's nodes from the BMCs,
 * with at most `concurrency` reads at once and each bounded by `probeTimeout` — a BMC
 * that does not answer costs one timeout of one slot, never a stalled sweep — and reports
 * to the control plane, in batches, the nodes whose state differs from what is recorded
 * and the ones whose BMC did not answer (with how many times in a row: the control plane
 * faults a node past Ironic's retry limit, and clears the fault when it answers again).
 *
 * Which nodes: the control plane's list (`GET /v1/agent/nodes`, its `sync` flag says
 * which ones Ironic would sync: not in maintenance unless recovering from a power
 * failure, not enrolling, not waiting for a callback); nodes with an action in flight
 * are left alone. Offline, the last list is used and reports that cannot be sent are
 * dropped: the next sweep compares again.
 */

import type { PowerState } from '../../protocol/actions.ts';
import type { AgentMessage } from '../../protocol/messages.ts';
import { errorMessage, type Logger } from '../log.ts';

/** A node as `GET /v1/agent/nodes` lists it. */
export interface SyncNode {
  readonly uuid: string;
  readonly driver: string;
  readonly driver_info: Record<string, unknown>;
  readonly power_state: string | null;
  readonly target_power_state: string | null;
  readonly reservation: string | null;
  readonly fault: string | null;
  /** Whether the control plane wants this node's state read (Ironic's sync rules). */
  readonly sync: boolean;
}

type PowerReportMessage = Extract<AgentMessage, { type: 'power_report' }>;
export type PowerReportItem = PowerReportMessage['reports'][number];

/** Reads one node's power state; must honour `signal` (aborted at the probe timeout). */
export type Probe = (node: SyncNode, signal: AbortSignal) => Promise<PowerState>;

export interface PowerSyncOptions {
  readonly intervalMs: number;
  readonly concurrency: number;
  readonly probeTimeoutMs: number;
  /** The site's nodes (throws when the control plane cannot be reached). */
  readonly listNodes: () => Promise<SyncNode[]>;
  /** The probe of a hardware type, or undefined when this agent does not drive it. */
  readonly probeFor: (driver: string) => Probe | undefined;
  readonly send: (message: PowerReportMessage) => Promise<void>;
  readonly log: Logger;
}

export interface SweepStats {
  readonly nodes: number;
  readonly probed: number;
  readonly failed: number;
  readonly reported: number;
  readonly durationMs: number;
  readonly listed: 'fresh' | 'cached';
}

/** A power_report carries at most this many nodes (the protocol's limit). */
export const REPORT_BATCH = 500;

class ProbeTimeout extends Error {
  override readonly name = 'ProbeTimeout';
}

export class PowerSync {
  readonly #o: PowerSyncOptions;
  readonly #failures = new Map<string, number>();
  #nodes: SyncNode[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<SweepStats> | undefined;
  #stopped = false;
  #abort = new AbortController();
  sweeps = 0;
  last: SweepStats | undefined;

  constructor(options: PowerSyncOptions) {
    this.#o = options;
  }

  start(firstDelayMs = Math.min(5000, this.#o.intervalMs)): void {
    this.#stopped = false;
    this.#schedule(firstDelayMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running?.catch(() => undefined);
    this.#abort = new AbortController();
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      void this.sweep()
        .catch((error) => this.#o.log.warn('power sync sweep failed', { error: errorMessage(error) }))
        .finally(() => this.#schedule(this.#o.intervalMs));
    }, delayMs);
    this.#timer.unref();
  }

  /** One sweep (a sweep already running is awaited instead of overlapped). */
  sweep(): Promise<SweepStats> {
    this.#running ??= this.#sweep().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #sweep(): Promise<SweepStats> {
    const started = performance.now();
    let listed: SweepStats['listed'] = 'fresh';
    try {
      this.#nodes = await this.#o.listNodes();
    } catch (error) {
      listed = 'cached';
      this.#o.log.warn('power sync: node list unavailable, using the last one', {
        error: errorMessage(error),
        nodes: this.#nodes.length,
      });
    }
    const work: Array<{ node: SyncNode; probe: Probe }> = [];
    for (const node of this.#nodes) {
      if (!node.sync || node.reservation || node.target_power_state) continue;
      const probe = this.#o.probeFor(node.driver);
      if (probe) work.push({ node, probe });
    }
    const reports: PowerReportItem[] = [];
    let failed = 0;
    let next = 0;
    const worker = async () => {
      while (next < work.length && !this.#abort.signal.aborted) {
        const { node, probe } = work[next++] as { node: SyncNode; probe: Probe };
        const report = await this.#probeOne(node, probe);
        if (report?.error !== undefined) failed++;
        if (report) reports.push(report);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#o.concurrency, work.length) }, worker));
    const known = new Set(this.#nodes.map((node) => node.uuid));
    for (const uuid of this.#failures.keys()) if (!known.has(uuid)) this.#failures.delete(uuid);
    await this.#send(reports);
    const stats: SweepStats = {
      nodes: this.#nodes.length,
      probed: work.length,
      failed,
      reported: reports.length,
      durationMs: Math.round(performance.now() - started),
      listed,
    };
    this.sweeps++;
    this.last = stats;
    this.#o.log.info('power sync sweep', { ...stats });
    return stats;
  }

  /** The node's report, or undefined when it is in sync. */
  async #probeOne(node: SyncNode, probe: Probe): Promise<PowerReportItem | undefined> {
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(this.#o.probeTimeoutMs)]);
    try {
      const state = await withDeadline(probe(node, signal), signal);
      this.#failures.delete(node.uuid);
      // A node recovering from a power failure is reported even when the state matches.
      if (state === node.power_state && node.fault !== 'power failure') return undefined;
      return { node: node.uuid, power_state: state, observed_at: new Date().toISOString() };
    } catch (error) {
      const failures = (this.#failures.get(node.uuid) ?? 0) + 1;
      this.#failures.set(node.uuid, failures);
      const message =
        error instanceof ProbeTimeout
          ? `no answer from the BMC within ${this.#o.probeTimeoutMs} ms`
          : errorMessage(error);
      this.#o.log.warn('power sync: could not read the power state', {
        node: node.uuid,
        failures,
        error: message,
      });
      return {
        node: node.uuid,
        power_state: null,
        error: message.slice(0, 1000),
        failures,
        observed_at: new Date().toISOString(),
      };
    }
  }

  async #send(reports: PowerReportItem[]): Promise<void> {
    for (let i = 0; i < reports.length; i += REPORT_BATCH) {
      const batch = reports.slice(i, i + REPORT_BATCH);
      try {
        await this.#o.send({ v: 1, type: 'power_report', reports: batch });
      } catch (error) {
        this.#o.log.warn('power report not sent: the next sweep reports again', {
          reports: batch.length,
          error: errorMessage(error),
        });
        return;
      }
    }
  }
}

/** The probe's answer, or ProbeTimeout as soon as `signal` fires (a probe that ignores it cannot stall the sweep). */
function withDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ProbeTimeout('timeout'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
