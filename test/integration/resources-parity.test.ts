/**
 * The proof that the CDK stack and the local bootstrap cannot drift: both are built from
 * `infra/resources.ts`, and here the synthesized CloudFormation template is compared,
 * resource by resource, with what moto reports for the bootstrapped resources. Each side
 * is normalized from its own source (template properties vs. the emulator's Describe and Get answers), so
 * a difference in either implementation fails the comparison.
 */

import { randomBytes } from 'node:crypto';
import {
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  ListTablesCommand,
} from '@aws-sdk/client-dynamodb';
import {
  GetBucketEncryptionCommand,
  GetBucketLifecycleConfigurationCommand,
  GetPublicAccessBlockCommand,
  ListBucketsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { commandsDeadLetterQueue, siteCommandQueue } from '../../infra/resources.ts';
import { buildQueue, MetalplaneStack } from '../../infra/stack.ts';
import { bootstrapResources, createSiteCommandQueue, s3Client } from '../../local/bootstrap.ts';
import { emulatorEnvironment } from '../../local/moto.ts';
import { removeTestApps, testApp } from '../support/cdk.ts';

// The stack name is the prefix, so physical names must match exactly on both sides.
const prefix = `t-${randomBytes(4).toString('hex')}`;
const site = 'fra1';

type Resource = { Type: string; Properties: Record<string, any> };
type Resources = Record<string, Resource>;

let cfn: Resources;
let dynamodb: DynamoDBClient;
let sqs: SQSClient;
let s3: S3Client;

beforeAll(async () => {
  Object.assign(process.env, emulatorEnvironment(inject('awsEndpoint')));
  cfn = synthesize();
  await bootstrapResources(prefix);
  await createSiteCommandQueue(prefix, site);
  dynamodb = new DynamoDBClient({});
  sqs = new SQSClient({});
  s3 = s3Client();
});

afterAll(() => {
  for (const client of [dynamodb, sqs, s3]) client?.destroy();
  removeTestApps();
});

/** The stack, plus one site queue built as the stack builds queues, to compare redrive. */
function synthesize(): Resources {
  const stack = new MetalplaneStack(testApp(), prefix, { stackName: prefix });
  buildQueue(stack, prefix, siteCommandQueue(site), stack.queues.get(commandsDeadLetterQueue.id));
  return Template.fromStack(stack).toJSON().Resources as Resources;
}

/**
 * Every table name: ListTables answers at most 100 a page (as DynamoDB does), and the
 * suite's other files share this emulator, so this stack's tables may be past the first.
 */
async function allTableNames(): Promise<string[]> {
  const names: string[] = [];
  let start: string | undefined;
  for (let page = 0; page < 100; page++) {
    const answer = await dynamodb.send(new ListTablesCommand({ ExclusiveStartTableName: start }));
    names.push(...(answer.TableNames ?? []));
    start = answer.LastEvaluatedTableName;
    if (!start) break;
  }
  return names;
}

function ofType(type: string): Resource[] {
  return Object.values(cfn).filter((resource) => resource.Type === type);
}

const byKey =
  <T>(key: (item: T) => string) =>
  (a: T, b: T) =>
    key(a).localeCompare(key(b));

// --- normalization ----------------------------------------------------------------------

type Key = { AttributeName?: string; KeyType?: string };
type Attribute = { AttributeName?: string; AttributeType?: string };
type Index = {
  IndexName?: string;
  KeySchema?: Key[];
  Projection?: { ProjectionType?: string; NonKeyAttributes?: string[] };
};

function normalizeTable(table: {
  keySchema: Key[] | undefined;
  attributes: Attribute[] | undefined;
  indexes: Index[] | undefined;
  billingMode: string | undefined;
  ttl: { attribute: string; enabled: boolean } | undefined;
}) {
  const keys = (schema: Key[] | undefined) => (schema ?? []).map((k) => `${k.KeyType}:${k.AttributeName}`);
  return {
    keySchema: keys(table.keySchema),
    attributes: (table.attributes ?? []).map((a) => `${a.AttributeName}:${a.AttributeType}`).sort(),
    indexes: (table.indexes ?? [])
      .map((index) => ({
        name: index.IndexName,
        keySchema: keys(index.KeySchema),
        projection: index.Projection?.ProjectionType,
        nonKeyAttributes: [...(index.Projection?.NonKeyAttributes ?? [])].sort(),
      }))
      .sort(byKey((index) => String(index.name))),
    billingMode: table.billingMode ?? 'PROVISIONED',
    ttl: table.ttl?.enabled ? table.ttl.attribute : null,
  };
}

function cfnTable(resource: Resource) {
  const p = resource.Properties;
  return normalizeTable({
    keySchema: p.KeySchema,
    attributes: p.AttributeDefinitions,
    indexes: p.GlobalSecondaryIndexes,
    billingMode: p.BillingMode,
    ttl: p.TimeToLiveSpecification && {
      attribute: p.TimeToLiveSpecification.AttributeName,
      enabled: p.TimeToLiveSpecification.Enabled === true,
    },
  });
}

async function motoTable(name: string) {
  const { Table: t } = await dynamodb.send(new DescribeTableCommand({ TableName: name }));
  const { TimeToLiveDescription: ttl } = await dynamodb.send(
    new DescribeTimeToLiveCommand({ TableName: name }),
  );
  return normalizeTable({
    keySchema: t?.KeySchema,
    attributes: t?.AttributeDefinitions,
    indexes: t?.GlobalSecondaryIndexes,
    billingMode: t?.BillingModeSummary?.BillingMode,
    ttl: ttl?.AttributeName
      ? { attribute: ttl.AttributeName, enabled: ttl.TimeToLiveStatus === 'ENABLED' }
      : undefined,
  });
}

interface NormalizedQueue {
  fifo: boolean;
  contentBasedDeduplication: boolean;
  visibilityTimeout: number;
  retention: number;
  sse: boolean;
  redrive: { deadLetterQueue: string; maxReceiveCount: number } | null;
}

function cfnQueue(resource: Resource): NormalizedQueue {
  const p = resource.Properties;
  const redrive = p.RedrivePolicy;
  const deadLetterId = redrive?.deadLetterTargetArn?.['Fn::GetAtt']?.[0];
  return {
    fifo: p.FifoQueue === true,
    contentBasedDeduplication: p.ContentBasedDeduplication === true,
    visibilityTimeout: Number(p.VisibilityTimeout ?? 30),
    retention: Number(p.MessageRetentionPeriod ?? 345_600),
    sse: p.SqsManagedSseEnabled === true,
    redrive: redrive
      ? {
          deadLetterQueue: cfn[deadLetterId]?.Properties.QueueName,
          maxReceiveCount: Number(redrive.maxReceiveCount),
        }
      : null,
  };
}

async function motoQueue(url: string): Promise<NormalizedQueue> {
  const { Attributes: a = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }),
  );
  const redrive = a.RedrivePolicy ? JSON.parse(a.RedrivePolicy) : null;
  return {
    fifo: a.FifoQueue === 'true',
    contentBasedDeduplication: a.ContentBasedDeduplication === 'true',
    visibilityTimeout: Number(a.VisibilityTimeout),
    retention: Number(a.MessageRetentionPeriod),
    sse: a.SqsManagedSseEnabled === 'true',
    redrive: redrive
      ? {
          deadLetterQueue: String(redrive.deadLetterTargetArn).split(':').at(-1)!,
          maxReceiveCount: Number(redrive.maxReceiveCount),
        }
      : null,
  };
}

type Rule = {
  ID?: string;
  Id?: string;
  Status?: string;
  Prefix?: string;
  Filter?: { Prefix?: string };
  AbortIncompleteMultipartUpload?: { DaysAfterInitiation?: number };
};

function normalizeRules(rules: Rule[] | undefined) {
  return (rules ?? [])
    .map((rule) => ({
      id: rule.ID ?? rule.Id,
      status: rule.Status,
      prefix: rule.Filter?.Prefix ?? rule.Prefix ?? '',
      abortIncompleteMultipartUploadDays: rule.AbortIncompleteMultipartUpload?.DaysAfterInitiation ?? null,
    }))
    .sort(byKey((rule) => String(rule.id)));
}

// --- the comparisons --------------------------------------------------------------------

describe('the CDK stack and the local bootstrap build the same resources', () => {
  it('tables: same names, keys, attributes, GSIs, billing mode and TTL', async () => {
    const templateTables = ofType('AWS::DynamoDB::Table');
    const TableNames = await allTableNames();
    const motoNames = TableNames.filter((name) => name.startsWith(`${prefix}-`)).sort();
    expect(motoNames.length).toBeGreaterThan(0);
    expect(templateTables.map((t) => t.Properties.TableName).sort()).toEqual(motoNames);
    for (const resource of templateTables) {
      const name = resource.Properties.TableName;
      const expected = cfnTable(resource);
      expect(expected.keySchema.length, name).toBeGreaterThan(0);
      expect(await motoTable(name), name).toEqual(expected);
    }
  });

  it('queues: same names, FIFO, visibility, retention, SSE and redrive (DLQ and maxReceiveCount)', async () => {
    const templateQueues = ofType('AWS::SQS::Queue');
    const { QueueUrls = [] } = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: `${prefix}-` }));
    const motoUrls = new Map(QueueUrls.map((url) => [url.split('/').at(-1)!, url]));
    expect(templateQueues.map((q) => q.Properties.QueueName).sort()).toEqual([...motoUrls.keys()].sort());
    expect(templateQueues.some((q) => q.Properties.RedrivePolicy)).toBe(true);
    for (const resource of templateQueues) {
      const name = resource.Properties.QueueName;
      expect(await motoQueue(motoUrls.get(name)!), name).toEqual(cfnQueue(resource));
    }
  });

  it('bucket: same name, lifecycle rules, public access block and encryption', async () => {
    const [bucket, ...others] = ofType('AWS::S3::Bucket');
    expect(others).toHaveLength(0);
    const p = bucket!.Properties;
    const { Buckets = [] } = await s3.send(new ListBucketsCommand({}));
    expect(Buckets.map((b) => b.Name).filter((name) => name?.startsWith(`${prefix}-`))).toEqual([
      p.BucketName,
    ]);
    const Bucket = p.BucketName as string;
    const lifecycle = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }));
    expect(normalizeRules(lifecycle.Rules as Rule[])).toEqual(
      normalizeRules(p.LifecycleConfiguration?.Rules),
    );
    const { PublicAccessBlockConfiguration } = await s3.send(new GetPublicAccessBlockCommand({ Bucket }));
    expect(PublicAccessBlockConfiguration).toEqual(p.PublicAccessBlockConfiguration);
    const encryption = await s3.send(new GetBucketEncryptionCommand({ Bucket }));
    const algorithm = (rules?: { ApplyServerSideEncryptionByDefault?: { SSEAlgorithm?: string } }[]) =>
      rules?.map((rule) => rule.ApplyServerSideEncryptionByDefault?.SSEAlgorithm);
    expect(algorithm(encryption.ServerSideEncryptionConfiguration?.Rules)).toEqual(
      p.BucketEncryption.ServerSideEncryptionConfiguration.map(
        (rule: { ServerSideEncryptionByDefault: { SSEAlgorithm: string } }) =>
          rule.ServerSideEncryptionByDefault.SSEAlgorithm,
      ),
    );
  });
});
