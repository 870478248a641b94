/**
 * The provision state machine: which event moves a node from which state to which, and
 * what `provision_state` / `target_provision_state` a node shows afterwards, with the
 * semantics of Ironic's FSM (`ironic/common/fsm.py`) and `TaskManager.process_event`
 * (`ironic/conductor/task_manager.py`). Pure: the conductor applies the result.
 */
import {
  DEFAULT_TARGETS,
  INTERNAL_EVENTS,
  type InternalEvent,
  PROVISION_EVENTS,
  PROVISION_STATES,
  type ProvisionEvent,
  type ProvisionState,
  type ProvisionVerb,
  STABLE_STATES,
  type StableState,
  TRANSITIONS,
  VERBS,
} from './states.ts';

export type { InternalEvent, ProvisionEvent, ProvisionState, ProvisionVerb, StableState } from './states.ts';

const NEXT = new Map<ProvisionState, Map<ProvisionEvent, ProvisionState>>();
for (const [from, event, to] of TRANSITIONS) {
  const events = NEXT.get(from) ?? new Map<ProvisionEvent, ProvisionState>();
  events.set(event, to);
  NEXT.set(from, events);
}

/** A transition the machine does not have; `InvalidStateRequested` at the API. */
export class InvalidTransitionError extends Error {
  readonly state: string;
  readonly event: string;

  constructor(state: string, event: string) {
    super(`Event "${event}" is not allowed in provision state "${state}".`);
    this.name = 'InvalidTransitionError';
    this.state = state;
    this.event = event;
  }
}

export function isProvisionState(value: unknown): value is ProvisionState {
  return (PROVISION_STATES as readonly unknown[]).includes(value);
}

export function isProvisionEvent(value: unknown): value is ProvisionEvent {
  return (PROVISION_EVENTS as readonly unknown[]).includes(value);
}

export function isInternalEvent(value: unknown): value is InternalEvent {
  return (INTERNAL_EVENTS as readonly unknown[]).includes(value);
}

export function isStable(state: ProvisionState): state is StableState {
  return (STABLE_STATES as readonly string[]).includes(state);
}

/** The stable state a transient state works towards (null for a stable state). */
export function defaultTarget(state: ProvisionState): StableState | null {
  return isStable(state) ? null : DEFAULT_TARGETS[state];
}

/** The event a `target` of the provision API fires (`rebuild` is its own event). */
export function eventForVerb(verb: string): ProvisionEvent | undefined {
  if (verb === 'rebuild') return 'rebuild';
  return Object.hasOwn(VERBS, verb) ? VERBS[verb as keyof typeof VERBS] : undefined;
}

export function isProvisionVerb(value: unknown): value is ProvisionVerb {
  return typeof value === 'string' && eventForVerb(value) !== undefined;
}

/** Ironic's `is_actionable_event`: does `event` lead anywhere from `state`? */
export function canTransition(state: string, event: string): boolean {
  return isProvisionState(state) && isProvisionEvent(event) && NEXT.get(state)?.has(event) === true;
}

/** The events allowed in a state, in the table's order. */
export function eventsFrom(state: ProvisionState): ProvisionEvent[] {
  return [...(NEXT.get(state)?.keys() ?? [])];
}

/** The state `event` leads to from `state`; throws InvalidTransitionError when none. */
export function transition(state: string, event: string): ProvisionState {
  const next = isProvisionState(state) && isProvisionEvent(event) ? NEXT.get(state)?.get(event) : undefined;
  if (!next) throw new InvalidTransitionError(state, event);
  return next;
}

/** A node's position in the machine, as its two fields show it. */
export interface ProvisionPosition {
  readonly provision_state: ProvisionState;
  readonly target_provision_state: StableState | null;
}

export interface AdvanceOptions {
  /**
   * The final state the work aims at when it is not the machine's default, as Ironic's
   * `process_event(..., target_state=)`: `manageable` for manual cleaning (its `clean`,
   * and every `wait`/`resume`/`fail` of it, else the target falls back to `available`).
   */
  readonly target?: StableState;
}

/**
 * The position after `event`, as Ironic's FSM computes it: the target is cleared once
 * reached, replaced by the new state's own target when it has one, overridden by
 * `options.target`; a stable state shows no target (`TaskManager.process_event`).
 */
export function advance(
  position: ProvisionPosition,
  event: ProvisionEvent,
  options: AdvanceOptions = {},
): ProvisionPosition {
  const next = transition(position.provision_state, event);
  let target: StableState | null = position.target_provision_state ?? defaultTarget(position.provision_state);
  if (target === next) target = null;
  const own = defaultTarget(next);
  if (own !== null) target = own;
  if (options.target !== undefined) {
    if (!isStable(options.target))
      throw new Error(`Target state '${options.target}' is not a 'stable' state`);
    target = options.target;
  }
  return { provision_state: next, target_provision_state: isStable(next) ? null : target };
}

/**
 * States in which the conductor is working on the node: it holds the node (its
 * `reservation`) and the API answers another action with 409 NodeLocked. The same list
 * as Ironic's STUCK_STATES_TREATED_AS_FAIL (work that cannot resume if its worker dies:
 * `fail` it). The `... wait` states are not here: the node waits on something outside
 * (a callback, an agent) and is not locked, so `abort` and the timeouts can act on it.
 */
export const WORKING_STATES: readonly ProvisionState[] = [
  'verifying',
  'deploying',
  'cleaning',
  'deleting',
  'inspecting',
  'adopting',
  'rescuing',
  'unrescuing',
];

/** States that wait on something outside the conductor: the periodic tick times them out. */
export const WAITING_STATES: readonly ProvisionState[] = [
  'wait call-back',
  'clean wait',
  'inspect wait',
  'rescue wait',
];

/** states.FAILURE_STATES: an action failed; `last_error` says why. */
export const FAILURE_STATES: readonly ProvisionState[] = [
  'deploy failed',
  'clean failed',
  'inspect failed',
  'rescue failed',
  'unrescue failed',
  'adopt failed',
];

/** How an operator leaves each failure state (and `error`, a failed undeploy): the verbs the machine allows. */
export const RECOVERY_VERBS: Readonly<Partial<Record<ProvisionState, readonly ProvisionVerb[]>>> = {
  'deploy failed': ['active', 'deploy', 'rebuild', 'deleted', 'undeploy'],
  'clean failed': ['manage'],
  'inspect failed': ['manage', 'inspect'],
  'adopt failed': ['adopt', 'manage'],
  'rescue failed': ['rescue', 'unrescue', 'deleted', 'undeploy'],
  'unrescue failed': ['rescue', 'unrescue', 'deleted', 'undeploy'],
  error: ['rebuild', 'deleted', 'undeploy'],
};

export function isFailureState(state: ProvisionState): boolean {
  return FAILURE_STATES.includes(state);
}

/** The state a verb enters from `state` (the first, in-progress state of the action). */
export function verbTransition(state: string, verb: string): ProvisionState {
  const event = eventForVerb(verb);
  if (!event) throw new InvalidTransitionError(state, verb);
  return transition(state, event);
}
