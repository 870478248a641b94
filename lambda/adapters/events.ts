/**
 * Publication of Metalplane's events to EventBridge (docs/events.md): the bus
 * `<prefix>-Events`, source `metalplane`, detail-type = the event's type, detail = the
 * event (`domain/events/events.ts`). Best effort by design: a state change is already
 * committed when its event is published, and an EventBridge outage must not fail it; a
 * failed entry is logged (events carry no secrets) and counted.
 *
 * The choke points call the module functions (`publishNodeChanges`, `publishEvents`), which
 * use one publisher per container on the configuration's prefix; without a prefix (a unit
 * test's bare repository) nothing is published.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@aws-lambda-powertools/logger';
import type { EventBridgeClient, PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { eventBusName } from '../../infra/resources.ts';
import { type ConfigSource, environmentConfig } from '../config.ts';
import {
  EVENT_SOURCE,
  type EventContext,
  type EventType,
  type MetalplaneEvent,
  makeEvent,
  type NodeStates,
  nodeStateEvents,
} from '../domain/events/events.ts';
import { clientEventBridge, lazyClient, type Sender } from './aws-sdk.ts';
import { defer } from './pending-work.ts';

/** PutEvents takes at most 10 entries. */
const BATCH = 10;

export interface EventPublisherOptions {
  /** The bus's name; undefined: publish nothing. */
  readonly busName: () => string | undefined;
  readonly client?: EventBridgeClient;
  readonly logger?: Pick<Logger, 'warn'>;
}

export class EventPublisher {
  private readonly options: EventPublisherOptions;
  private client: Sender<EventBridgeClient> | undefined;
  /** Entries that could not be published since the container started. */
  failed = 0;

  constructor(options: EventPublisherOptions) {
    this.options = options;
  }

  private get eventBridge(): Sender<EventBridgeClient> {
    this.client ??=
      this.options.client ??
      lazyClient(
        async () =>
          new (await clientEventBridge()).EventBridgeClient({
            maxAttempts: 2,
            requestHandler: { requestTimeout: 3000, connectionTimeout: 1000 },
          }),
      );
    return this.client;
  }

  /** Publishes `events` (never throws); answers how many were accepted. */
  async publish(events: readonly MetalplaneEvent[]): Promise<number> {
    const bus = this.options.busName();
    if (!bus || events.length === 0) return 0;
    let accepted = 0;
    for (let start = 0; start < events.length; start += BATCH) {
      const batch = events.slice(start, start + BATCH);
      const entries: PutEventsRequestEntry[] = batch.map((event) => ({
        EventBusName: bus,
        Source: EVENT_SOURCE,
        DetailType: event.type,
        Time: new Date(event.time),
        Detail: JSON.stringify(event),
      }));
      try {
        const answer = await this.eventBridge.send(
          new (await clientEventBridge()).PutEventsCommand({ Entries: entries }),
        );
        const failures = answer.FailedEntryCount ?? 0;
        accepted += batch.length - failures;
        if (failures > 0)
          this.failure(failures, answer.Entries?.find((entry) => entry.ErrorCode)?.ErrorMessage);
      } catch (error) {
        this.failure(batch.length, (error as Error).message);
      }
    }
    return accepted;
  }

  private failure(count: number, reason: string | undefined): void {
    this.failed += count;
    this.options.logger?.warn('events not published', { count, reason: reason ?? 'unknown' });
  }
}

export const eventContext: EventContext = { newId: () => randomUUID(), now: () => new Date() };

/** The publisher on the configuration's prefix (default: the environment's as it is at each use). */
export function eventPublisherFor(config: ConfigSource = environmentConfig): EventPublisher {
  return new EventPublisher({
    busName: () => {
      const prefix = config().resourcePrefix;
      return prefix ? eventBusName(prefix) : undefined;
    },
    logger: new Logger({ serviceName: 'metalplane-events' }),
  });
}

let shared: EventPublisher | undefined;

/** The container's publisher (environment configuration, read at each publication). */
export function eventPublisher(): EventPublisher {
  shared ??= eventPublisherFor();
  return shared;
}

export function publishEvents(events: readonly MetalplaneEvent[]): Promise<number> {
  return eventPublisher().publish(events);
}

/**
 * One event of `type` about `site`, published before the invocation ends, beside its next
 * calls (`defer`); outside an invocation, before this resolves.
 */
export function publishEvent(
  type: EventType,
  site: string | null,
  detail: Readonly<Record<string, unknown>>,
): Promise<void> {
  const event = makeEvent(eventContext, type, site, detail);
  return defer(() => publishEvents([event]));
}

/**
 * The node's provision and power state changes between two versions (the node
 * repository's writes), published as `publishEvent` publishes.
 */
export async function publishNodeChanges(before: NodeStates, after: NodeStates): Promise<void> {
  const events = nodeStateEvents(eventContext, before, after);
  if (events.length > 0) await defer(() => publishEvents(events));
}

/** What a `command.finished` event says of a command (no arguments, no result: they may be large or secret). */
export interface FinishedCommand {
  readonly id: string;
  readonly node: string;
  readonly site: string;
  readonly action: string;
  readonly status: string;
  readonly attempts: number;
  readonly error: string | null;
  readonly finished_at: string | null;
  readonly requested_by: string | null;
}

/** A finished command (result stored, expired, dead-lettered), published (the `CommandCompletions` port). */
export async function publishCommandFinished(command: FinishedCommand): Promise<void> {
  await publishEvent('command.finished', command.site, {
    command_id: command.id,
    node_uuid: command.node,
    action: command.action,
    status: command.status,
    attempts: command.attempts,
    error: command.error,
    finished_at: command.finished_at,
    requested_by: command.requested_by,
  });
}
