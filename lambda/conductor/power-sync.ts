/**
 * Applies an agent's `power_report` (what its periodic sweep read from the BMCs) to the
 * nodes: each report is decided by `domain/power/sync.ts` on the node as stored now and
 * written conditionally, so a report racing an API action or another report changes
 * nothing it should not. Only the reporting agent's own site's nodes are touched.
 *
 * `force_power_state_during_sync` (Ironic's option; env `METALPLANE_FORCE_POWER_STATE_DURING_SYNC`,
 * default off): instead of recording a state changed behind Metalplane's back, drive the
 * hardware back to the recorded one (a power task, with its lock).
 */

import { environmentConfig, FORCE_POWER_STATE_ENV } from '../config.ts';
import type { Node } from '../domain/nodes/node.ts';
import { POWER_OFF, POWER_ON } from '../domain/power/power.ts';
import { decideSync, type PowerObservation } from '../domain/power/sync.ts';
import { ironicTimestamp } from '../domain/time.ts';
import { metrics } from '../observability/metrics.ts';
import type { Conductor } from './conductor.ts';
import { startPowerChange } from './power.ts';

export { FORCE_POWER_STATE_ENV };

export interface PowerReport extends PowerObservation {
  readonly node: string;
  readonly observed_at: string;
}

export interface SyncOutcome {
  readonly updated: number;
  readonly forced: number;
  readonly unchanged: number;
  /** Reports about nodes that are not (or no longer) the agent's site's: ignored. */
  readonly foreign: number;
}

/** Reports applied at once (each is a read and at most one write). */
const CONCURRENCY = 8;

export function forceFromEnv(): boolean {
  return environmentConfig().forcePowerStateDuringSync;
}

export async function applyPowerReports(
  conductor: Conductor,
  site: string,
  reports: readonly PowerReport[],
  force = forceFromEnv(),
): Promise<SyncOutcome> {
  metrics.powerReports(site, reports);
  const counts = { updated: 0, forced: 0, unchanged: 0, foreign: 0 };
  let next = 0;
  const worker = async () => {
    while (next < reports.length) {
      const report = reports[next++] as PowerReport;
      counts[await applyOne(conductor, site, report, force)]++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, reports.length) }, worker));
  return counts;
}

async function applyOne(
  conductor: Conductor,
  site: string,
  report: PowerReport,
  force: boolean,
): Promise<keyof SyncOutcome> {
  let outcome: keyof SyncOutcome = 'unchanged';
  let forceTarget: string | undefined;
  await conductor.nodes.modify(report.node, (node: Node) => {
    if (node.conductor_group !== site) {
      outcome = 'foreign';
      return undefined;
    }
    const decision = decideSync(node, report, force);
    if (decision.kind === 'none') return undefined;
    if (decision.kind === 'force') {
      forceTarget = decision.target;
      return undefined;
    }
    outcome = 'updated';
    conductor.log(decision.error ? 'warn' : 'info', decision.event, { node: node.uuid, site });
    return { ...decision.node, updated_at: ironicTimestamp() };
  });
  if (forceTarget === POWER_ON || forceTarget === POWER_OFF) {
    const found = await conductor.nodes.get(report.node);
    if (!found) return outcome;
    try {
      await startPowerChange(conductor, found, { target: forceTarget, timeout: undefined }, 'conductor');
      conductor.log('warn', 'power state forced back during sync', {
        node: report.node,
        target: forceTarget,
      });
      outcome = 'forced';
    } catch (error) {
      // Locked or changed meanwhile: the next sweep looks again.
      conductor.log('warn', 'power state could not be forced', {
        node: report.node,
        error: (error as Error).message,
      });
    }
  }
  return outcome;
}
