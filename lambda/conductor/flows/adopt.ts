/**
 * The adopt flow (a node already running its instance is taken over):
 *
 *   adopting: read power → active
 */
import type { FlowState } from './steps.ts';

export const planAdopt = (base: Pick<FlowState, 'index' | 'user'>): FlowState => ({
  ...base,
  flow: 'adopt',
  steps: ['read_power'],
  finish: ['done'],
});
