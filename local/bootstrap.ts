/**
 * Creates Metalplane's tables, queues and bucket from `infra/resources.ts` against
 * whatever endpoint the AWS SDK is configured for (`AWS_ENDPOINT_URL`, `AWS_REGION`...):
 * moto server for the local stack and the tests. The CDK stack (`infra/stack.ts`) builds
 * the same resources from the same definitions.
 *
 * Idempotent: a resource that already exists is left as it is, so the local stack can be
 * restarted on the same emulator.
 */
import {
  type AttributeDefinition,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  type KeySchemaElement,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
  ResourceAlreadyExistsException,
} from '@aws-sdk/client-eventbridge';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  EnableKeyRotationCommand,
  KMSClient,
} from '@aws-sdk/client-kms';
import {
  type BucketLocationConstraint,
  CreateBucketCommand,
  PutBucketEncryptionCommand,
  PutBucketLifecycleConfigurationCommand,
  PutPublicAccessBlockCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { SetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  type BucketDefinition,
  bucketName,
  eventBusName,
  imagesBucket,
  type KeyAttribute,
  type KeyDefinition,
  keyAlias,
  keys,
  queueName,
  queues,
  resourcePrefixEnvVar,
  type TableDefinition,
  tableName,
  tables,
  webhookEventsQueue,
  webhookRuleName,
} from '../infra/resources.ts';
import {
  createSiteCommandQueue as createSiteQueue,
  ensureQueue,
  type QueueHandle,
} from '../lambda/adapters/resource-factory.ts';

export const buckets: readonly BucketDefinition[] = [imagesBucket];

/** Physical names of what `bootstrapResources` created or found, by definition id. */
export interface ResourceNames {
  readonly prefix: string;
  readonly tables: Readonly<Record<string, string>>;
  readonly queues: Readonly<Record<string, QueueHandle>>;
  readonly buckets: Readonly<Record<string, string>>;
  /** KMS key ids, by definition id. */
  readonly keys: Readonly<Record<string, string>>;
}

export async function bootstrapResources(prefix: string): Promise<ResourceNames> {
  const dynamodb = new DynamoDBClient({});
  const sqs = new SQSClient({});
  const s3 = s3Client();
  const kms = new KMSClient({});
  try {
    const [tableNames, queueHandles, bucketNames, keyIds] = await Promise.all([
      mapById(tables, (table) => ensureTable(dynamodb, prefix, table)),
      ensureStaticQueues(sqs, prefix),
      mapById(buckets, (bucket) => ensureBucket(s3, prefix, bucket)),
      mapById(keys, (key) => ensureKey(kms, prefix, key)),
    ]);
    await ensureEventBus(prefix, sqs, queueHandles[webhookEventsQueue.id] as QueueHandle);
    return { prefix, tables: tableNames, queues: queueHandles, buckets: bucketNames, keys: keyIds };
  } finally {
    for (const client of [dynamodb, sqs, s3, kms]) client.destroy();
  }
}

/**
 * Environment for the handlers and the agent: each definition's `envVar` → physical name.
 * Queues map to their queue *name* (the URL is only known once the queue exists; resolve it
 * with GetQueueUrl), as the CDK stack does. Also carries the name prefix, from which a
 * site's command queue name is derived (`resourcePrefixEnvVar`).
 */
export function resourceEnvironment(prefix: string): Record<string, string> {
  const environment: Record<string, string> = { [resourcePrefixEnvVar]: prefix };
  for (const table of tables) environment[table.envVar] = tableName(prefix, table);
  for (const queue of queues) if (queue.envVar) environment[queue.envVar] = queueName(prefix, queue);
  for (const bucket of buckets) environment[bucket.envVar] = bucketName(prefix, bucket);
  for (const key of keys) environment[key.envVar] = keyAlias(prefix, key);
  return environment;
}

/** Creates the FIFO command queue of `site` (redrive to the commands DLQ); returns its URL. */
export async function createSiteCommandQueue(prefix: string, site: string): Promise<string> {
  const sqs = new SQSClient({});
  try {
    return await createSiteQueue(sqs, prefix, site);
  } finally {
    sqs.destroy();
  }
}

export function s3Client(): S3Client {
  return new S3Client({ forcePathStyle: process.env.METALPLANE_S3_FORCE_PATH_STYLE === 'true' });
}

async function mapById<T extends { readonly id: string }, R>(
  items: readonly T[],
  create: (item: T) => Promise<R>,
): Promise<Record<string, R>> {
  const results = await Promise.all(items.map(async (item) => [item.id, await create(item)] as const));
  return Object.fromEntries(results);
}

// --- DynamoDB ---------------------------------------------------------------------------

async function ensureTable(
  dynamodb: DynamoDBClient,
  prefix: string,
  table: TableDefinition,
): Promise<string> {
  const name = tableName(prefix, table);
  try {
    await dynamodb.send(new CreateTableCommand(createTableInput(name, table)));
  } catch (error) {
    if ((error as Error).name !== 'ResourceInUseException') throw error;
  }
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 120, minDelay: 1 }, { TableName: name });
  if (table.ttlAttribute) await ensureTimeToLive(dynamodb, name, table.ttlAttribute);
  return name;
}

export function createTableInput(name: string, table: TableDefinition): CreateTableCommandInput {
  const indexes = table.indexes.map((index) => ({
    IndexName: index.name,
    KeySchema: keySchema(index.partitionKey, index.sortKey),
    Projection: { ProjectionType: 'ALL' as const },
  }));
  return {
    TableName: name,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: keySchema(table.partitionKey, table.sortKey),
    AttributeDefinitions: attributeDefinitions(table),
    ...(indexes.length > 0 ? { GlobalSecondaryIndexes: indexes } : {}),
  };
}

function keySchema(partitionKey: KeyAttribute, sortKey?: KeyAttribute): KeySchemaElement[] {
  const schema: KeySchemaElement[] = [{ AttributeName: partitionKey.name, KeyType: 'HASH' }];
  if (sortKey) schema.push({ AttributeName: sortKey.name, KeyType: 'RANGE' });
  return schema;
}

function attributeDefinitions(table: TableDefinition): AttributeDefinition[] {
  const keys = [table, ...table.indexes].flatMap((key) => [key.partitionKey, key.sortKey ?? []].flat());
  const types = new Map<string, string>();
  for (const key of keys) {
    const known = types.get(key.name);
    if (known && known !== key.type)
      throw new Error(`table ${table.id}: ${key.name} is both ${known} and ${key.type}`);
    types.set(key.name, key.type);
  }
  return [...types].map(([name, type]) => ({
    AttributeName: name,
    AttributeType: type as KeyAttribute['type'],
  }));
}

async function ensureTimeToLive(dynamodb: DynamoDBClient, name: string, attribute: string): Promise<void> {
  const { TimeToLiveDescription: current } = await dynamodb.send(
    new DescribeTimeToLiveCommand({ TableName: name }),
  );
  const enabled = current?.TimeToLiveStatus === 'ENABLED' || current?.TimeToLiveStatus === 'ENABLING';
  if (enabled) return; // left alone, even if on another attribute
  await dynamodb.send(
    new UpdateTimeToLiveCommand({
      TableName: name,
      TimeToLiveSpecification: { AttributeName: attribute, Enabled: true },
    }),
  );
}

// --- KMS --------------------------------------------------------------------------------

/** The key behind the alias, created (with its alias) when the alias is not there yet. */
async function ensureKey(kms: KMSClient, prefix: string, key: KeyDefinition): Promise<string> {
  const alias = keyAlias(prefix, key);
  try {
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: alias }));
    if (KeyMetadata?.KeyId) return KeyMetadata.KeyId;
  } catch (error) {
    if ((error as Error).name !== 'NotFoundException') throw error;
  }
  const { KeyMetadata } = await kms.send(
    new CreateKeyCommand({
      Description: key.description,
      KeySpec: 'SYMMETRIC_DEFAULT',
      KeyUsage: 'ENCRYPT_DECRYPT',
    }),
  );
  const id = KeyMetadata?.KeyId;
  if (!id) throw new Error(`KMS created no key for ${alias}`);
  await kms.send(new EnableKeyRotationCommand({ KeyId: id }));
  try {
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: id }));
  } catch (error) {
    // Another bootstrap won the race: use its key (ours stays unused).
    if ((error as Error).name !== 'AlreadyExistsException') throw error;
    const { KeyMetadata: winner } = await kms.send(new DescribeKeyCommand({ KeyId: alias }));
    if (winner?.KeyId) return winner.KeyId;
  }
  return id;
}

// --- SQS --------------------------------------------------------------------------------

/** Static queues; dead-letter queues first, since the others' redrive policies name them. */
async function ensureStaticQueues(sqs: SQSClient, prefix: string): Promise<Record<string, QueueHandle>> {
  const handles: Record<string, QueueHandle> = {};
  const deadLettersFirst = [...queues].sort((a, b) => Number(!!a.deadLetter) - Number(!!b.deadLetter));
  for (const queue of deadLettersFirst) handles[queue.id] = await ensureQueue(sqs, prefix, queue);
  return handles;
}

// --- EventBridge ------------------------------------------------------------------------

/** The source every Metalplane event carries (`lambda/domain/events/events.ts`). */
const EVENT_SOURCE = 'metalplane';

/**
 * The events bus, and its rule sending every Metalplane event to the webhook events queue
 * (infra/events.ts builds the same on AWS); the queue's policy lets EventBridge send.
 */
async function ensureEventBus(prefix: string, sqs: SQSClient, target: QueueHandle): Promise<void> {
  const events = new EventBridgeClient({});
  try {
    const bus = eventBusName(prefix);
    try {
      await events.send(new CreateEventBusCommand({ Name: bus }));
    } catch (error) {
      if (!(error instanceof ResourceAlreadyExistsException)) throw error;
    }
    const rule = webhookRuleName(prefix);
    const { RuleArn } = await events.send(
      new PutRuleCommand({
        Name: rule,
        EventBusName: bus,
        EventPattern: JSON.stringify({ source: [EVENT_SOURCE] }),
        State: 'ENABLED',
        Description: 'Metalplane events to the webhooks (docs/events.md)',
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: rule,
        EventBusName: bus,
        Targets: [{ Id: 'webhooks', Arn: target.arn }],
      }),
    );
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'events.amazonaws.com' },
          Action: 'sqs:SendMessage',
          Resource: target.arn,
          Condition: { ArnEquals: { 'aws:SourceArn': RuleArn } },
        },
      ],
    };
    await sqs.send(
      new SetQueueAttributesCommand({ QueueUrl: target.url, Attributes: { Policy: JSON.stringify(policy) } }),
    );
  } finally {
    events.destroy();
  }
}

// --- S3 ---------------------------------------------------------------------------------

/** Creates the bucket if missing; its settings are (re)applied either way: idempotent PUTs. */
async function ensureBucket(s3: S3Client, prefix: string, bucket: BucketDefinition): Promise<string> {
  const name = bucketName(prefix, bucket);
  await createBucket(s3, name);
  await s3.send(new PutPublicAccessBlockCommand({ Bucket: name, PublicAccessBlockConfiguration: blockAll }));
  await s3.send(
    new PutBucketEncryptionCommand({ Bucket: name, ServerSideEncryptionConfiguration: s3Managed }),
  );
  const rules = [abortIncompleteUploadsRule(bucket)];
  await s3.send(
    new PutBucketLifecycleConfigurationCommand({ Bucket: name, LifecycleConfiguration: { Rules: rules } }),
  );
  return name;
}

async function createBucket(s3: S3Client, name: string): Promise<void> {
  const region = await s3.config.region();
  // us-east-1 takes no location constraint.
  const location =
    region === 'us-east-1' ? undefined : { LocationConstraint: region as BucketLocationConstraint };
  try {
    await s3.send(new CreateBucketCommand({ Bucket: name, CreateBucketConfiguration: location }));
  } catch (error) {
    if ((error as Error).name !== 'BucketAlreadyOwnedByYou') throw error;
  }
}

const blockAll = {
  BlockPublicAcls: true,
  IgnorePublicAcls: true,
  BlockPublicPolicy: true,
  RestrictPublicBuckets: true,
};

const s3Managed = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' as const } }] };

/** Same rule id as the CDK stack's (`abortIncompleteUploadsRuleId`). */
export function abortIncompleteUploadsRule(bucket: BucketDefinition) {
  return {
    ID: 'AbortIncompleteMultipartUploads',
    Status: 'Enabled' as const,
    Filter: { Prefix: '' },
    AbortIncompleteMultipartUpload: { DaysAfterInitiation: bucket.abortIncompleteMultipartUploadDays },
  };
}
