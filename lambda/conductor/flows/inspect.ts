/**
 * The inspect flow (Ironic's `inspection.py`, out of band):
 *
 *   inspecting: read power and boot device → manageable
 *
 * It stamps `inspection_started_at` when it starts and `inspection_finished_at` at its end.
 */

import type { FlowHooks, Plan } from './runner.ts';
import type { FlowState } from './steps.ts';

export const planInspect = (base: Pick<FlowState, 'index' | 'user'>): Plan => ({
  flow: { ...base, flow: 'inspect', steps: ['read_power', 'read_boot_device'], finish: ['done'] },
  onStart: (at) => ({ inspection_started_at: at, inspection_finished_at: null }),
});

export const inspectHooks: FlowHooks = {
  failure: (step) => `Failed to inspect hardware: ${step} failed`,
  finished: (node, _flow, at) => ({ node: { ...node, inspection_finished_at: at }, ops: [] }),
};
