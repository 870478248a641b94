/**
 * Node history (Ironic 1.78+): the events recorded against a node, as Ironic stores
 * them (`ironic/objects/node_history.py`) and shows them
 * (`NodeHistoryController` in ironic/api/controllers/v1/node.py), and what the conductor
 * records (`node_history_record` in ironic/conductor/utils.py): an error sets the node's
 * `last_error` and is recorded with severity ERROR. Ironic records errors and a few
 * notices; Metalplane also records every provision state transition (severity INFO),
 * so that the history tells what happened to a node, not only what went wrong.
 * Pure: uuids, times and the conductor's name come from callers.
 */
import { defaultTarget, isStable } from '../provisioning/machine.ts';
import { HISTORY_EVENT_TYPES, type ProvisionEvent, type ProvisionState } from '../provisioning/states.ts';

/** The microversion that brought `/v1/nodes/{node}/history`; below it the path is 404. */
export const HISTORY_SINCE = 78;

export type HistorySeverity = 'INFO' | 'ERROR';

/** One event, with the fields Ironic's NodeHistory has (its `node_id` is the node's uuid here). */
export interface HistoryEvent {
  readonly uuid: string;
  readonly created_at: string;
  readonly node_uuid: string;
  readonly severity: HistorySeverity;
  /** What was going on: Ironic's vocabulary (`HISTORY_EVENT_TYPES`) or "UNKNOWN". */
  readonly event_type: string;
  readonly event: string;
  /** The host that recorded it: the site's agent, or the control plane. */
  readonly conductor: string | null;
  /** Who asked for the action, when a user did. */
  readonly user: string | null;
}

/** The fields the list shows without `detail` (NodeHistoryController.standard_fields). */
export const HISTORY_STANDARD_FIELDS = ['uuid', 'created_at', 'severity', 'event'] as const;
/** The fields of `detail=True` and of one event (detail_fields). */
export const HISTORY_DETAIL_FIELDS = [
  'uuid',
  'created_at',
  'severity',
  'event_type',
  'event',
  'conductor',
  'user',
] as const;
export type HistoryField = (typeof HISTORY_DETAIL_FIELDS)[number];

/** Ironic truncates `event` outside `detail` to 255 characters (251 and an ellipsis). */
const SUMMARY_EVENT_LENGTH = 255;

export interface HistoryRecordInput {
  readonly uuid: string;
  readonly now: string;
  readonly nodeUuid: string;
  readonly event: string;
  readonly eventType?: string | null;
  readonly error?: boolean;
  readonly conductor?: string | null;
  readonly user?: string | null;
}

/** An event as `node_history_record` writes it (a missing type is "UNKNOWN"). */
export function historyEvent(input: HistoryRecordInput): HistoryEvent {
  return {
    uuid: input.uuid,
    created_at: input.now,
    node_uuid: input.nodeUuid,
    severity: input.error ? 'ERROR' : 'INFO',
    event_type: input.eventType || 'UNKNOWN',
    event: input.event,
    conductor: input.conductor ?? null,
    user: input.user ?? null,
  };
}

/**
 * An error: the event to record, and the `last_error` the node takes with it (Ironic
 * sets both in one step, so a node's last_error is always its latest ERROR event).
 */
export function errorRecord(input: Omit<HistoryRecordInput, 'error'>): {
  event: HistoryEvent;
  lastError: string;
} {
  return { event: historyEvent({ ...input, error: true }), lastError: input.event };
}

/** The activity a transient state belongs to, as Ironic's error handlers name it. */
const EVENT_TYPE_OF_STATE: Readonly<Partial<Record<ProvisionState, string>>> = {
  verifying: HISTORY_EVENT_TYPES.verify,
  deploying: HISTORY_EVENT_TYPES.deploying,
  'wait call-back': HISTORY_EVENT_TYPES.deploying,
  'deploy failed': HISTORY_EVENT_TYPES.deploying,
  cleaning: HISTORY_EVENT_TYPES.cleaning,
  'clean wait': HISTORY_EVENT_TYPES.cleaning,
  'clean failed': HISTORY_EVENT_TYPES.cleaning,
  deleting: HISTORY_EVENT_TYPES.unprovision,
  inspecting: HISTORY_EVENT_TYPES.introspection,
  'inspect wait': HISTORY_EVENT_TYPES.introspection,
  'inspect failed': HISTORY_EVENT_TYPES.introspection,
  adopting: HISTORY_EVENT_TYPES.adoption,
  'adopt failed': HISTORY_EVENT_TYPES.adoption,
  rescuing: HISTORY_EVENT_TYPES.rescue,
  'rescue wait': HISTORY_EVENT_TYPES.rescue,
  'rescue failed': HISTORY_EVENT_TYPES.rescue,
  unrescuing: HISTORY_EVENT_TYPES.rescue,
  'unrescue failed': HISTORY_EVENT_TYPES.rescue,
};

/**
 * The event_type of a transition: the activity of the state entered, or of the state
 * left when it ends one (deploying → active is "deploying"); "provisioning" between
 * two stable states (available → manageable).
 */
export function eventTypeOfTransition(from: ProvisionState, to: ProvisionState): string {
  return EVENT_TYPE_OF_STATE[to] ?? EVENT_TYPE_OF_STATE[from] ?? HISTORY_EVENT_TYPES.provisioning;
}

export interface TransitionRecordInput {
  readonly uuid: string;
  readonly now: string;
  readonly nodeUuid: string;
  readonly from: ProvisionState;
  readonly event: ProvisionEvent;
  readonly to: ProvisionState;
  /** The node's target_provision_state after the transition. */
  readonly target: ProvisionState | null;
  readonly conductor?: string | null;
  readonly user?: string | null;
}

/**
 * An INFO event for a transition, worded as the line Ironic logs for it
 * (`TaskManager.process_event`), with the event that caused it.
 */
export function transitionRecord(input: TransitionRecordInput): HistoryEvent {
  const target = input.target ?? (isStable(input.to) ? null : defaultTarget(input.to));
  return historyEvent({
    uuid: input.uuid,
    now: input.now,
    nodeUuid: input.nodeUuid,
    event: `Node ${input.nodeUuid} moved to provision state "${input.to}" from state "${input.from}"; target provision state is "${target ?? 'None'}" (event "${input.event}")`,
    eventType: eventTypeOfTransition(input.from, input.to),
    conductor: input.conductor ?? null,
    user: input.user ?? null,
  });
}

export interface RenderHistoryOptions {
  /** Scheme and host for links (`http://127.0.0.1:6385`). */
  readonly baseUrl: string;
  /** Full fields and the whole event text (`detail=True`, and one event's view). */
  readonly detail: boolean;
  /** `fields=` (a Metalplane extension; Ironic 21.4 refuses it): these fields only. */
  readonly fields?: readonly HistoryField[];
}

/** An event as the API shows it, in Ironic's key order, with its `self` link only. */
export function renderHistoryEvent(
  event: HistoryEvent,
  options: RenderHistoryOptions,
): Record<string, unknown> {
  const wanted: readonly HistoryField[] = options.detail
    ? HISTORY_DETAIL_FIELDS
    : (options.fields ?? HISTORY_STANDARD_FIELDS);
  const shown: Record<string, unknown> = {};
  for (const field of HISTORY_DETAIL_FIELDS) {
    if (!wanted.includes(field)) continue;
    shown[field] = field === 'event' && !options.detail ? summarize(event.event) : event[field];
  }
  shown.links = [
    { href: `${options.baseUrl}/v1/nodes/${event.node_uuid}/history/${event.uuid}`, rel: 'self' },
  ];
  return shown;
}

/** Python slices by code point: so does this (an emoji is one character, not two). */
function summarize(text: string): string {
  const characters = Array.from(text);
  if (characters.length <= SUMMARY_EVENT_LENGTH) return text;
  return `${characters.slice(0, SUMMARY_EVENT_LENGTH - 4).join('')}...`;
}

export function isHistoryField(name: string): name is HistoryField {
  return (HISTORY_DETAIL_FIELDS as readonly string[]).includes(name);
}
