/**
 * Webhook subscriptions and their deliveries in the Webhooks table (`infra/resources.ts`),
 * and the webhook queues (docs/events.md). Every read is a GetItem or a Query: the
 * subscriptions under `pk = webhooks`, a webhook's deliveries under `pk = deliveries#<id>`
 * (newest first, a week's TTL).
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { MetalplaneEvent } from '../domain/events/events.ts';
import type { Delivery, DeliveryStatus, Webhook } from '../domain/events/webhooks.ts';
import { clientSqs, libDynamoDB, type Sender } from './aws-sdk.ts';
import { type DocumentClient, type TableName, TableRepository } from './dynamo/client.ts';

const WEBHOOKS_PK = 'webhooks';
const webhookSk = (id: string) => `webhook#${id}`;
const deliveriesPk = (webhookId: string) => `deliveries#${webhookId}`;
/** How long a delivery stays visible. */
export const DELIVERY_RETENTION_SECONDS = 7 * 24 * 3600;
/** At most this many webhooks (all of them are read for each event). */
export const MAX_WEBHOOKS = 100;

export interface DeliveryKey {
  readonly webhookId: string;
  readonly sk: string;
}

export class WebhookRepository extends TableRepository {
  constructor(db: DocumentClient, table: TableName) {
    super(db, table);
  }

  async create(webhook: Webhook): Promise<void> {
    await this.db.send(
      new (await libDynamoDB()).PutCommand({
        TableName: this.table,
        Item: { pk: WEBHOOKS_PK, sk: webhookSk(webhook.id), doc: webhook },
        ConditionExpression: 'attribute_not_exists(pk)',
      }),
    );
  }

  async get(id: string): Promise<Webhook | undefined> {
    const answer = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: { pk: WEBHOOKS_PK, sk: webhookSk(id) },
        ConsistentRead: true,
      }),
    );
    return answer.Item?.doc as Webhook | undefined;
  }

  /** Every webhook (bounded by `MAX_WEBHOOKS`), oldest first. */
  async list(): Promise<Webhook[]> {
    const webhooks: Webhook[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const answer = await this.db.send(
        new (await libDynamoDB()).QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk and begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': WEBHOOKS_PK, ':prefix': 'webhook#' },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of answer.Items ?? []) webhooks.push(item.doc as Webhook);
      start = answer.LastEvaluatedKey;
    } while (start);
    return webhooks.sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  /** Deletes it; answers whether it existed. Its deliveries expire with their TTL. */
  async delete(id: string): Promise<boolean> {
    const answer = await this.db.send(
      new (await libDynamoDB()).DeleteCommand({
        TableName: this.table,
        Key: { pk: WEBHOOKS_PK, sk: webhookSk(id) },
        ReturnValues: 'ALL_OLD',
      }),
    );
    return answer.Attributes !== undefined;
  }

  /** Records a new delivery; answers its key (carried by its queue message). */
  async addDelivery(delivery: Delivery, now: Date): Promise<DeliveryKey> {
    const sk = `${delivery.created_at}#${delivery.id}`;
    await this.db.send(
      new (await libDynamoDB()).PutCommand({
        TableName: this.table,
        Item: {
          pk: deliveriesPk(delivery.webhook_id),
          sk,
          doc: delivery,
          expiresAt: Math.floor(now.getTime() / 1000) + DELIVERY_RETENTION_SECONDS,
        },
      }),
    );
    return { webhookId: delivery.webhook_id, sk };
  }

  async updateDelivery(
    key: DeliveryKey,
    change: {
      readonly status: DeliveryStatus;
      readonly attempts: number;
      readonly last_status_code: number | null;
      readonly last_error: string | null;
      readonly updated_at: string;
    },
  ): Promise<void> {
    await this.db.send(
      new (await libDynamoDB()).UpdateCommand({
        TableName: this.table,
        Key: { pk: deliveriesPk(key.webhookId), sk: key.sk },
        UpdateExpression:
          'SET #doc.#status = :status, #doc.attempts = :attempts, #doc.last_status_code = :code, #doc.last_error = :error, #doc.updated_at = :at',
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: { '#doc': 'doc', '#status': 'status' },
        ExpressionAttributeValues: {
          ':status': change.status,
          ':attempts': change.attempts,
          ':code': change.last_status_code,
          ':error': change.last_error,
          ':at': change.updated_at,
        },
      }),
    );
  }

  /** The webhook's most recent deliveries, newest first. */
  async deliveries(webhookId: string, limit: number): Promise<Delivery[]> {
    const answer = await this.db.send(
      new (await libDynamoDB()).QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': deliveriesPk(webhookId) },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (answer.Items ?? []).map((item) => item.doc as Delivery);
  }
}

/** One (event, webhook) delivery on the deliveries queue. */
export interface DeliveryMessage {
  readonly kind: 'webhook.delivery';
  readonly webhook_id: string;
  readonly delivery_id: string;
  readonly delivery_sk: string;
  /** Attempts made before this one. */
  readonly attempts: number;
  readonly event: MetalplaneEvent;
}

export function isDeliveryMessage(value: unknown): value is DeliveryMessage {
  const message = value as Partial<DeliveryMessage> | null;
  return (
    typeof message === 'object' &&
    message !== null &&
    message.kind === 'webhook.delivery' &&
    typeof message.webhook_id === 'string' &&
    typeof message.delivery_sk === 'string' &&
    typeof message.attempts === 'number' &&
    typeof message.event === 'object'
  );
}

/** Sends to queues known by name (their URLs looked up once). */
export class NamedQueues {
  private readonly sqs: () => Sender<SQSClient>;
  private readonly urls = new Map<string, Promise<string>>();

  constructor(sqs: () => Sender<SQSClient>) {
    this.sqs = sqs;
  }

  private url(name: string): Promise<string> {
    let url = this.urls.get(name);
    if (!url) {
      const sqs = this.sqs();
      url = clientSqs()
        .then(({ GetQueueUrlCommand }) => sqs.send(new GetQueueUrlCommand({ QueueName: name })))
        .then((answer) => answer.QueueUrl as string);
      url.catch(() => this.urls.delete(name));
      this.urls.set(name, url);
    }
    return url;
  }

  async send(name: string, body: unknown, delaySeconds = 0): Promise<void> {
    await this.sqs().send(
      new (await clientSqs()).SendMessageCommand({
        QueueUrl: await this.url(name),
        MessageBody: JSON.stringify(body),
        ...(delaySeconds > 0 ? { DelaySeconds: Math.min(900, Math.round(delaySeconds)) } : {}),
      }),
    );
  }

  async queueUrl(name: string): Promise<string> {
    return this.url(name);
  }
}
