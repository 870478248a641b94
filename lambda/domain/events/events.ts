/**
 * Metalplane's events (docs/events.md): what the control plane publishes to EventBridge
 * (source `metalplane`, detail-type = the event's `type`) and what webhooks receive. The
 * schema is versioned: `version: '1'` names this shape; a change that is not purely
 * additive gets a new version. Pure logic: no AWS imports.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const EVENT_SCHEMA_VERSION = '1';
export const EVENT_SOURCE = 'metalplane';

export const EVENT_TYPES = [
  'node.provision_state.changed',
  'node.power_state.changed',
  'command.finished',
  'agent.connected',
  'agent.disconnected',
  'image.ready',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

/** One event, as published (EventBridge `detail`) and as a webhook's body. */
export interface MetalplaneEvent {
  readonly version: typeof EVENT_SCHEMA_VERSION;
  /** Unique per event (a webhook receiver deduplicates on it: delivery is at least once). */
  readonly id: string;
  /** ISO 8601, UTC. */
  readonly time: string;
  readonly type: EventType;
  /** The site (Ironic conductor group) concerned; null for an image (it is not one site's). */
  readonly site: string | null;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface EventContext {
  readonly newId: () => string;
  readonly now: () => Date;
}

export function makeEvent(
  context: EventContext,
  type: EventType,
  site: string | null,
  detail: Readonly<Record<string, unknown>>,
): MetalplaneEvent {
  return {
    version: EVENT_SCHEMA_VERSION,
    id: context.newId(),
    time: context.now().toISOString(),
    type,
    site,
    detail,
  };
}

/** What a node's events read of it. */
export interface NodeStates {
  readonly uuid: string;
  readonly name?: string | null;
  readonly conductor_group?: string | null;
  readonly provision_state?: string | null;
  readonly target_provision_state?: string | null;
  readonly power_state?: string | null;
  readonly last_error?: string | null;
}

/** The events of one node write: its provision state and its power state, when they changed. */
export function nodeStateEvents(
  context: EventContext,
  before: NodeStates,
  after: NodeStates,
): MetalplaneEvent[] {
  const events: MetalplaneEvent[] = [];
  const site = after.conductor_group ?? before.conductor_group ?? null;
  const node = { node_uuid: after.uuid, node_name: after.name ?? null };
  if ((before.provision_state ?? null) !== (after.provision_state ?? null)) {
    events.push(
      makeEvent(context, 'node.provision_state.changed', site, {
        ...node,
        previous: before.provision_state ?? null,
        current: after.provision_state ?? null,
        target: after.target_provision_state ?? null,
        last_error: after.last_error ?? null,
      }),
    );
  }
  if ((before.power_state ?? null) !== (after.power_state ?? null)) {
    events.push(
      makeEvent(context, 'node.power_state.changed', site, {
        ...node,
        previous: before.power_state ?? null,
        current: after.power_state ?? null,
      }),
    );
  }
  return events;
}

/** The signature of a webhook delivery: `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`. */
export function signPayload(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Checks a signature as a receiver should (constant time); the receiver also bounds the timestamp's age. */
export function verifySignature(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signPayload(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** Delay before the next attempt after `attempts` failed ones: base·2^(n-1), capped (SQS: ≤ 900 s). */
export function backoffSeconds(attempts: number, baseSeconds: number, capSeconds = 900): number {
  return Math.min(capSeconds, Math.max(0, Math.round(baseSeconds * 2 ** Math.max(0, attempts - 1))));
}
