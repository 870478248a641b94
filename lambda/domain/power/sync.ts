/**
 * Power-state sync (Ironic's `_sync_power_states` / `do_sync_power_state` and
 * `_power_failure_recovery`), as a pure decision: given a node as stored and what the
 * site's agent read from its BMC, what changes. The agent polls and reports; the
 * conductor applies these decisions with conditional writes (`lambda/conductor/power-sync.ts`).
 */
import type { Node } from '../nodes/node.ts';

/** Ironic's `faults.POWER_FAILURE`. */
export const POWER_FAILURE = 'power failure';
/** Ironic's `[conductor]power_state_sync_max_retries`. */
export const SYNC_MAX_RETRIES = 3;
/** Provision states Ironic leaves out of the sync (SYNC_EXCLUDED_STATES). */
export const SYNC_EXCLUDED_STATES: readonly string[] = [
  'wait call-back',
  'clean wait',
  'enroll',
  'adopt failed',
];

export interface PowerObservation {
  readonly power_state: string | null;
  readonly error?: string;
  /** Consecutive failed reads of this node's BMC, as counted by the agent. */
  readonly failures?: number;
}

export type SyncDecision =
  /** Nothing to do (in sync, excluded, locked, or a failure still under the retry limit). */
  | { readonly kind: 'none'; readonly why: string }
  /** Write these changes. */
  | { readonly kind: 'update'; readonly node: Node; readonly event: string; readonly error: boolean }
  /** `force_power_state_during_sync`: drive the hardware back to the recorded state. */
  | { readonly kind: 'force'; readonly target: string; readonly event: string };

/** Is this node one the agent should poll (and report on)? */
export function isSynced(node: Pick<Node, 'provision_state' | 'maintenance' | 'fault'>): boolean {
  if (node.maintenance) return node.fault === POWER_FAILURE; // recovery probes only
  return !SYNC_EXCLUDED_STATES.includes(node.provision_state);
}

export function decideSync(node: Node, seen: PowerObservation, force: boolean): SyncDecision {
  if (node.task || node.reservation || node.target_power_state) {
    return { kind: 'none', why: 'an action is in progress' };
  }
  if (node.maintenance) {
    if (node.fault !== POWER_FAILURE) return { kind: 'none', why: 'in maintenance' };
    if (seen.error || seen.power_state === null) return { kind: 'none', why: 'still failing' };
    return {
      kind: 'update',
      node: {
        ...node,
        power_state: seen.power_state,
        maintenance: false,
        maintenance_reason: null,
        fault: null,
      },
      event: `Node ${node.uuid} is recovered from power failure with actual power state '${seen.power_state}'.`,
      error: false,
    };
  }
  if (SYNC_EXCLUDED_STATES.includes(node.provision_state)) {
    return { kind: 'none', why: `provision state ${node.provision_state} is not synced` };
  }
  if (seen.error || seen.power_state === null) {
    if ((seen.failures ?? 1) <= SYNC_MAX_RETRIES)
      return { kind: 'none', why: 'failure under the retry limit' };
    const message =
      `During sync_power_state, max retries exceeded for node ${node.uuid}, node state None does not match ` +
      `expected state '${node.power_state ?? 'None'}'. Updating DB state to 'None' Switching node to maintenance mode.` +
      (seen.error ? ` Error: ${seen.error}` : '');
    return {
      kind: 'update',
      node: {
        ...node,
        power_state: null,
        maintenance: true,
        maintenance_reason: message,
        fault: POWER_FAILURE,
      },
      event: message,
      error: true,
    };
  }
  if (node.power_state === seen.power_state) return { kind: 'none', why: 'in sync' };
  if (node.power_state === null) {
    return {
      kind: 'update',
      node: { ...node, power_state: seen.power_state },
      event: `During sync_power_state, node ${node.uuid} has no previous known state. Recording current state '${seen.power_state}'.`,
      error: false,
    };
  }
  if (force) {
    return {
      kind: 'force',
      target: node.power_state,
      event: `During sync_power_state, node ${node.uuid} state '${seen.power_state}' does not match expected state. Changing hardware state to '${node.power_state}'.`,
    };
  }
  return {
    kind: 'update',
    node: { ...node, power_state: seen.power_state },
    event: `During sync_power_state, node ${node.uuid} state does not match expected state '${node.power_state}'. Updating recorded state to '${seen.power_state}'.`,
    error: false,
  };
}
