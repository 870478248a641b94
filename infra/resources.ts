/**
 * The one definition of Metalplane's stateful AWS resources.
 *
 * Both the CDK stack (`infra/stack.ts`) and the local bootstrap (`local/bootstrap.ts`)
 * build their tables, queues and bucket from these plain objects, so the cloud and the
 * local stack cannot drift; `test/integration/resources-parity.test.ts` proves it.
 * It also names the environment variables the stack sets and the Lambdas read, so
 * `lambda/` imports them from here and `infra/` imports nothing from `lambda/`.
 * This module is pure data: no aws-cdk-lib and no AWS SDK imports.
 */
import { createHash } from 'node:crypto';

export type AttributeType = 'S' | 'N' | 'B';

export interface KeyAttribute {
  readonly name: string;
  readonly type: AttributeType;
}

export interface IndexDefinition {
  readonly name: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
}

export interface TableDefinition {
  /** Stable id: the CDK logical id and the suffix of the physical name. */
  readonly id: string;
  /** Environment variable through which the Lambdas and the agent learn the name. */
  readonly envVar: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  readonly indexes: readonly IndexDefinition[];
  /** Attribute holding an epoch-seconds expiry, if the table has TTL. */
  readonly ttlAttribute?: string;
}

export interface QueueDefinition {
  readonly id: string;
  readonly envVar?: string;
  readonly fifo: boolean;
  readonly visibilityTimeoutSeconds: number;
  readonly retentionSeconds: number;
  /** Dead-letter queue (by id) and how many receives before a message goes there. */
  readonly deadLetter?: { readonly queueId: string; readonly maxReceiveCount: number };
}

export interface BucketDefinition {
  readonly id: string;
  readonly envVar: string;
  /** Days after which an unfinished multipart upload is aborted. */
  readonly abortIncompleteMultipartUploadDays: number;
}

const S = (name: string): KeyAttribute => ({ name, type: 'S' });

/**
 * Inventory: one table for every resource an operator enrolls (nodes, ports,
 * portgroups, chassis, allocations, deploy templates, sites, agents, images, users,
 * tokens) and the uniqueness records that keep names and MAC addresses unique.
 * `pk`/`sk` address one item; the indexes serve every listing without a scan.
 */
export const inventoryTable: TableDefinition = {
  id: 'Inventory',
  envVar: 'METALPLANE_INVENTORY_TABLE',
  partitionKey: S('pk'),
  sortKey: S('sk'),
  indexes: [
    // All items of a kind in creation order (the default listing order, as Ironic's `id`).
    { name: 'byKind', partitionKey: S('kindPk'), sortKey: S('listSk') },
    // All items of a kind by name (`sort_key=name`).
    { name: 'byName', partitionKey: S('kindPk'), sortKey: S('nameSk') },
    // Children of a parent: ports of a node, nodes of a chassis, tokens of a user ...
    { name: 'byParent', partitionKey: S('parentPk'), sortKey: S('listSk') },
    // Node listing filters, each `<kind>#<value>` in creation order.
    { name: 'byState', partitionKey: S('statePk'), sortKey: S('listSk') },
    { name: 'byDriver', partitionKey: S('driverPk'), sortKey: S('listSk') },
    { name: 'bySite', partitionKey: S('sitePk'), sortKey: S('listSk') },
    { name: 'byOwner', partitionKey: S('ownerPk'), sortKey: S('listSk') },
    { name: 'byLessee', partitionKey: S('lesseePk'), sortKey: S('listSk') },
    { name: 'byResourceClass', partitionKey: S('classPk'), sortKey: S('listSk') },
    // Nodes by the catalog image their `instance_info.image_source` names (`node#<name or
    // uuid>`): an image still in use is not deleted (lambda/api/routes/images.ts).
    { name: 'byImage', partitionKey: S('imagePk'), sortKey: S('listSk') },
  ],
  ttlAttribute: 'expiresAt',
};

/** Commands for agents (DESIGN.md, "Commands"): the durable record of each one. */
export const commandsTable: TableDefinition = {
  id: 'Commands',
  envVar: 'METALPLANE_COMMANDS_TABLE',
  partitionKey: S('pk'),
  sortKey: S('sk'),
  indexes: [
    // A node's commands in creation order (the admin's debugging view).
    { name: 'byNode', partitionKey: S('nodePk'), sortKey: S('nodeSk') },
    // Sparse: only open commands carry `openPk` (a few shards), sorted by deadline, so the
    // periodic tick finds the overdue ones without a scan.
    { name: 'byOpen', partitionKey: S('openPk'), sortKey: S('openSk') },
  ],
  ttlAttribute: 'expiresAt',
};

/** Open agent WebSocket connections, by site, so the control plane can push. */
export const connectionsTable: TableDefinition = {
  id: 'Connections',
  envVar: 'METALPLANE_CONNECTIONS_TABLE',
  partitionKey: S('pk'),
  sortKey: S('sk'),
  indexes: [],
  ttlAttribute: 'expiresAt',
};

/**
 * The audit trail (docs/security.md, "Audit trail"): one item per change made through the
 * API (`lambda/adapters/dynamo/audit-repository.ts`). `pk = audit`, `sk` = the record's
 * UUIDv7 id (time-ordered: newest first is one Query); the indexes filter by actor and by
 * resource (its UUID or id, and its name); `expiresAt` is the retention
 * (`METALPLANE_AUDIT_RETENTION_DAYS`, default 365).
 */
export const auditTable: TableDefinition = {
  id: 'Audit',
  envVar: 'METALPLANE_AUDIT_TABLE',
  partitionKey: S('pk'),
  sortKey: S('sk'),
  indexes: [
    { name: 'byActor', partitionKey: S('actorPk'), sortKey: S('sk') },
    { name: 'byResource', partitionKey: S('resourcePk'), sortKey: S('sk') },
    { name: 'byResourceName', partitionKey: S('resourceNamePk'), sortKey: S('sk') },
  ],
  ttlAttribute: 'expiresAt',
};

/**
 * Webhook subscriptions and their recent deliveries (docs/events.md,
 * `lambda/adapters/events-webhooks.ts`): `pk = webhooks`, `sk = webhook#<id>` for each
 * subscription (their listing is one Query), `pk = deliveries#<id>`, `sk = <time>#<delivery>`
 * for its deliveries, newest first, expiring (`expiresAt`) after a week.
 */
export const webhooksTable: TableDefinition = {
  id: 'Webhooks',
  envVar: 'METALPLANE_WEBHOOKS_TABLE',
  partitionKey: S('pk'),
  sortKey: S('sk'),
  indexes: [],
  ttlAttribute: 'expiresAt',
};

export const tables: readonly TableDefinition[] = [
  inventoryTable,
  commandsTable,
  connectionsTable,
  auditTable,
  webhooksTable,
];

/**
 * Every site's command queue is a FIFO queue created when the site is created
 * (`siteCommandQueue`); they all dead-letter into this one static FIFO queue, where a
 * command that could not be delivered waits for an operator.
 */
export const commandsDeadLetterQueue: QueueDefinition = {
  id: 'CommandsDeadLetter',
  envVar: 'METALPLANE_COMMANDS_DLQ',
  fifo: true,
  visibilityTimeoutSeconds: 30,
  retentionSeconds: 14 * 24 * 3600,
};

/**
 * Verifications of large uploaded images (docs/images.md): the api Lambda queues one
 * when a file's upload completes, the verify Lambda reads the object back from S3 and
 * hashes it (up to 15 minutes). Visibility covers that; three failures dead-letter.
 */
export const imageVerifyDeadLetterQueue: QueueDefinition = {
  id: 'ImageVerifyDeadLetter',
  fifo: false,
  visibilityTimeoutSeconds: 30,
  retentionSeconds: 14 * 24 * 3600,
};

export const imageVerifyQueue: QueueDefinition = {
  id: 'ImageVerify',
  envVar: 'METALPLANE_IMAGE_VERIFY_QUEUE',
  fifo: false,
  visibilityTimeoutSeconds: 16 * 60,
  retentionSeconds: 4 * 24 * 3600,
  deadLetter: { queueId: imageVerifyDeadLetterQueue.id, maxReceiveCount: 3 },
};

/**
 * Webhooks (docs/events.md): an EventBridge rule on the events bus (`eventBusName`) sends
 * every Metalplane event to `WebhookEvents`; the webhooks Lambda fans each one out into
 * `WebhookDeliveries`, one message per subscribed webhook, and delivers those (retrying
 * with backoff through message delays). What fails for good lands in `WebhookDeadLetter`.
 */
export const webhookDeadLetterQueue: QueueDefinition = {
  id: 'WebhookDeadLetter',
  fifo: false,
  visibilityTimeoutSeconds: 30,
  retentionSeconds: 14 * 24 * 3600,
};

export const webhookEventsQueue: QueueDefinition = {
  id: 'WebhookEvents',
  envVar: 'METALPLANE_WEBHOOK_EVENTS_QUEUE',
  fifo: false,
  visibilityTimeoutSeconds: 60,
  retentionSeconds: 4 * 24 * 3600,
  deadLetter: { queueId: webhookDeadLetterQueue.id, maxReceiveCount: 5 },
};

export const webhookDeliveriesQueue: QueueDefinition = {
  id: 'WebhookDeliveries',
  envVar: 'METALPLANE_WEBHOOK_DELIVERIES_QUEUE',
  fifo: false,
  visibilityTimeoutSeconds: 60,
  retentionSeconds: 4 * 24 * 3600,
  deadLetter: { queueId: webhookDeadLetterQueue.id, maxReceiveCount: 10 },
};

export const queues: readonly QueueDefinition[] = [
  commandsDeadLetterQueue,
  imageVerifyDeadLetterQueue,
  imageVerifyQueue,
  webhookDeadLetterQueue,
  webhookEventsQueue,
  webhookDeliveriesQueue,
];

/**
 * Tags of every queue Metalplane creates (the static ones and each site's, created at run
 * time by the sites API): the stack's resource group finds them by `stack`, so `cdk
 * destroy` leftovers and drift are visible (docs/deploy.md, "Per-site queues").
 */
export const siteTagKeys = { stack: 'metalplane:stack', site: 'metalplane:site' } as const;

/** The start of every site command queue's id: IAM and the dashboard find them by it. */
export const SITE_QUEUE_ID_PREFIX = 'SiteCommands-';
/** The longest site name a queue id keeps as it is (see `siteQueueKey`). */
const SITE_QUEUE_KEY_MAX = 32;

/**
 * A site's part of its command queue's name. SQS names hold letters, digits, '-' and '_',
 * 80 characters with `.fifo`; site names may also hold '.', and run to 64 characters. A
 * name SQS can hold, up to 32 characters, is kept as it is (so `fra1` gives
 * `<stack>-SiteCommands-fra1.fifo`); any other gets its first 19 characters made safe and
 * 12 hex digits of its SHA-256: distinct names give distinct queues, and the whole name
 * fits for stack names up to 29 characters.
 */
export function siteQueueKey(site: string): string {
  if (site.length <= SITE_QUEUE_KEY_MAX && /^[A-Za-z0-9_-]+$/.test(site)) return site;
  const digest = createHash('sha256').update(site).digest('hex').slice(0, 12);
  return `${site.slice(0, 19).replace(/[^A-Za-z0-9_-]/g, '_')}-${digest}`;
}

/** The command queue of one site: group = node, deduplication id = command id. */
export function siteCommandQueue(site: string): QueueDefinition {
  return {
    id: `${SITE_QUEUE_ID_PREFIX}${siteQueueKey(site)}`,
    fifo: true,
    visibilityTimeoutSeconds: 60,
    retentionSeconds: 14 * 24 * 3600,
    deadLetter: { queueId: commandsDeadLetterQueue.id, maxReceiveCount: 10 },
  };
}

export const imagesBucket: BucketDefinition = {
  id: 'Images',
  envVar: 'METALPLANE_IMAGES_BUCKET',
  abortIncompleteMultipartUploadDays: 2,
};

/**
 * Environment variable holding the prefix of physical names (the stack name on AWS,
 * the local prefix locally), from which a site's queue name is derived
 * (`lambda/adapters/resource-factory.ts`).
 */
export const resourcePrefixEnvVar = 'METALPLANE_RESOURCE_PREFIX';

/** Physical names, derived from a prefix (the stack name on AWS, `metalplane-local` locally). */
export function tableName(prefix: string, table: TableDefinition): string {
  return `${prefix}-${table.id}`;
}

export function queueName(prefix: string, queue: QueueDefinition): string {
  return `${prefix}-${queue.id}${queue.fifo ? '.fifo' : ''}`;
}

/** Every site's command queue name, as an IAM wildcard: `<prefix>-SiteCommands-*.fifo`. */
export function siteQueueNameWildcard(prefix: string): string {
  return `${prefix}-${SITE_QUEUE_ID_PREFIX}*.fifo`;
}

export function bucketName(prefix: string, bucket: BucketDefinition): string {
  return `${prefix}-${bucket.id}`.toLowerCase();
}

/**
 * The KMS key that seals secrets at rest (`lambda/adapters/kms/envelope-sealer.ts`):
 * BMC passwords and the other values Ironic masks, in node items and command records.
 * Symmetric, yearly automatic rotation; the Lambdas know it by `envVar`.
 */
export interface KeyDefinition {
  readonly id: string;
  readonly envVar: string;
  readonly description: string;
}

export const secretsKey: KeyDefinition = {
  id: 'Secrets',
  envVar: 'METALPLANE_SECRETS_KEY',
  description: 'Metalplane: seals BMC credentials and other secrets in DynamoDB (envelope encryption)',
};

export const keys: readonly KeyDefinition[] = [secretsKey];

/** The key's alias (what the local stack hands the Lambdas; the stack hands them its ARN). */
export function keyAlias(prefix: string, key: KeyDefinition): string {
  return `alias/${prefix}-${key.id}`;
}

/**
 * The agents' WebSocket API, as the Lambdas learn it from the environment: the stage's
 * `@connections` callback URL (`lambda/adapters/connection-notifier.ts` pushes through it;
 * the local WebSocket gateway's `managementEndpoint` locally) …
 */
export const managementEndpointEnvVar = 'METALPLANE_WS_MANAGEMENT_ENDPOINT';
/** … and where agents dial it (the stage URL): told to them at enrollment. */
export const webSocketUrlEnvVar = 'METALPLANE_WS_URL';

/** The EventBridge bus Metalplane publishes its events to (source `metalplane`, docs/events.md). */
export const eventBus = { id: 'Events' } as const;

export function eventBusName(prefix: string): string {
  return `${prefix}-${eventBus.id}`;
}

/** The rule on that bus that feeds the webhooks (`webhookEventsQueue`). */
export function webhookRuleName(prefix: string): string {
  return `${prefix}-Webhooks`;
}
