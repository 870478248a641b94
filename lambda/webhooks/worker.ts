/**
 * The webhooks Lambda's work (docs/events.md), on SQS batches:
 *
 * - a record of the events queue is an EventBridge event (the rule on the bus sends every
 *   Metalplane event there): it is fanned out, one delivery record and one message on the
 *   deliveries queue per enabled webhook subscribed to its type;
 * - a record of the deliveries queue is one (event, webhook) delivery: a signed POST
 *   (`X-Metalplane-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`,
 *   `X-Metalplane-Timestamp`, `X-Metalplane-Event-Id`). A 2xx answer delivers it; anything
 *   else is retried with exponential backoff (the message sent again with a delay), and
 *   after `maxAttempts` it goes to the dead-letter queue and shows as `failed`.
 *
 * A record whose processing failed on AWS's side (DynamoDB, SQS) is answered as a batch
 * item failure, so SQS redelivers it (and dead-letters it after the queue's receive count).
 */
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import {
  type DeliveryMessage,
  isDeliveryMessage,
  type NamedQueues,
  type WebhookRepository,
} from '../adapters/events-webhooks.ts';
import type { SecretSealer } from '../domain/auth/sealing.ts';
import {
  backoffSeconds,
  EVENT_SCHEMA_VERSION,
  isEventType,
  type MetalplaneEvent,
  signPayload,
} from '../domain/events/events.ts';
import { type Delivery, subscribes, webhookSealContext } from '../domain/events/webhooks.ts';

export const DEFAULT_MAX_ATTEMPTS = 6;
export const DEFAULT_BACKOFF_BASE_SECONDS = 30;
export const DELIVERY_TIMEOUT_MS = 10_000;
/** The part of a failed answer's body kept in `last_error`. */
const ERROR_TEXT = 200;

export interface WebhookWorkerOptions {
  readonly webhooks: WebhookRepository;
  readonly queues: NamedQueues;
  /** Queue names (from the resource prefix). */
  readonly deliveriesQueue: () => string;
  readonly deadLetterQueue: () => string;
  readonly sealer: SecretSealer;
  readonly newId: () => string;
  readonly now: () => Date;
  readonly logger: { warn(message: string, extra: Record<string, unknown>): void };
  readonly maxAttempts?: number;
  readonly backoffBaseSeconds?: number;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

/** The Metalplane event an EventBridge envelope carries, if it is one. */
export function eventOf(envelope: unknown): MetalplaneEvent | undefined {
  const detail = (envelope as { detail?: unknown } | null)?.detail as Partial<MetalplaneEvent> | undefined;
  if (!detail || detail.version !== EVENT_SCHEMA_VERSION || !isEventType(detail.type)) return undefined;
  if (typeof detail.id !== 'string' || typeof detail.time !== 'string') return undefined;
  return detail as MetalplaneEvent;
}

export class WebhookWorker {
  private readonly options: WebhookWorkerOptions;

  constructor(options: WebhookWorkerOptions) {
    this.options = options;
  }

  get maxAttempts(): number {
    return this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  }

  /** An SQS batch of either queue; the failed records are answered for redelivery. */
  async handle(event: SQSEvent): Promise<SQSBatchResponse> {
    const failures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      try {
        await this.record(record);
      } catch (error) {
        this.options.logger.warn('webhook record failed; SQS will redeliver it', {
          messageId: record.messageId,
          error: (error as Error).message,
        });
        failures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures: failures };
  }

  private async record(record: SQSRecord): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(record.body);
    } catch {
      this.options.logger.warn('webhook record is not JSON; dropped', { messageId: record.messageId });
      return;
    }
    if (isDeliveryMessage(body)) return this.deliver(body);
    const event = eventOf(body);
    if (event) {
      await this.fanOut(event);
      return;
    }
    this.options.logger.warn('webhook record of an unknown shape; dropped', { messageId: record.messageId });
  }

  /** One delivery record and message per webhook subscribed to the event's type. */
  async fanOut(event: MetalplaneEvent): Promise<number> {
    const webhooks = (await this.options.webhooks.list()).filter((webhook) =>
      subscribes(webhook, event.type),
    );
    for (const webhook of webhooks) {
      const now = this.options.now();
      const delivery: Delivery = {
        id: this.options.newId(),
        webhook_id: webhook.id,
        event_id: event.id,
        event_type: event.type,
        status: 'pending',
        attempts: 0,
        last_status_code: null,
        last_error: null,
        created_at: now.toISOString(),
        updated_at: now.toISOString(),
      };
      const key = await this.options.webhooks.addDelivery(delivery, now);
      const message: DeliveryMessage = {
        kind: 'webhook.delivery',
        webhook_id: webhook.id,
        delivery_id: delivery.id,
        delivery_sk: key.sk,
        attempts: 0,
        event,
      };
      await this.options.queues.send(this.options.deliveriesQueue(), message);
    }
    return webhooks.length;
  }

  /** One attempt of one delivery. */
  async deliver(message: DeliveryMessage): Promise<void> {
    const key = { webhookId: message.webhook_id, sk: message.delivery_sk };
    const attempts = message.attempts + 1;
    const webhook = await this.options.webhooks.get(message.webhook_id);
    if (!webhook?.enabled) {
      await this.options.webhooks
        .updateDelivery(key, {
          status: 'failed',
          attempts: message.attempts,
          last_status_code: null,
          last_error: webhook ? 'The webhook is disabled.' : 'The webhook was deleted.',
          updated_at: this.options.now().toISOString(),
        })
        .catch(() => undefined);
      return;
    }
    const secret = await this.options.sealer.open(webhook.secret, webhookSealContext(webhook.id));
    const outcome = await this.post(webhook.url, secret, message.event);
    const updated_at = this.options.now().toISOString();
    if (outcome.ok) {
      await this.options.webhooks.updateDelivery(key, {
        status: 'delivered',
        attempts,
        last_status_code: outcome.status,
        last_error: null,
        updated_at,
      });
      return;
    }
    const last = { attempts, last_status_code: outcome.status, last_error: outcome.error, updated_at };
    if (attempts >= this.maxAttempts) {
      await this.options.queues.send(this.options.deadLetterQueue(), {
        ...message,
        attempts,
        last_error: outcome.error,
      });
      await this.options.webhooks.updateDelivery(key, { status: 'failed', ...last });
      this.options.logger.warn('webhook delivery dead-lettered', {
        webhook: webhook.id,
        event: message.event.id,
        attempts,
        error: outcome.error,
      });
      return;
    }
    const delay = backoffSeconds(attempts, this.options.backoffBaseSeconds ?? DEFAULT_BACKOFF_BASE_SECONDS);
    await this.options.queues.send(this.options.deliveriesQueue(), { ...message, attempts }, delay);
    await this.options.webhooks.updateDelivery(key, { status: 'retrying', ...last });
  }

  private async post(
    url: string,
    secret: string,
    event: MetalplaneEvent,
  ): Promise<{ ok: boolean; status: number | null; error: string | null }> {
    const body = JSON.stringify(event);
    const timestamp = String(Math.floor(this.options.now().getTime() / 1000));
    try {
      const answer = await (this.options.fetch ?? fetch)(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'Metalplane-Webhooks/1',
          'X-Metalplane-Signature': signPayload(secret, timestamp, body),
          'X-Metalplane-Timestamp': timestamp,
          'X-Metalplane-Event-Id': event.id,
          'X-Metalplane-Event-Type': event.type,
        },
        body,
        // A redirect is not followed: the subscribed URL is the only one that receives events.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs ?? DELIVERY_TIMEOUT_MS),
      });
      if (answer.status >= 200 && answer.status < 300) {
        await answer.body?.cancel();
        return { ok: true, status: answer.status, error: null };
      }
      const text = (await answer.text().catch(() => '')).slice(0, ERROR_TEXT);
      return { ok: false, status: answer.status, error: `HTTP ${answer.status}${text ? `: ${text}` : ''}` };
    } catch (error) {
      const cause = (error as Error & { cause?: Error }).cause;
      return { ok: false, status: null, error: (cause ?? (error as Error)).message.slice(0, ERROR_TEXT) };
    }
  }
}
