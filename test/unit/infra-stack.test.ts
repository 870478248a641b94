/**
 * The CDK stack, synthesized in-process (offline, local esbuild bundling, no Docker).
 */
import { readFileSync } from 'node:fs';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  bucketName,
  commandsDeadLetterQueue,
  imagesBucket,
  type KeyAttribute,
  queueName,
  type TableDefinition,
  tableName,
  tables,
} from '../../infra/resources.ts';
import { MetalplaneStack } from '../../infra/stack.ts';

const stackName = 'Metalplane';
const cdkJson = JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

let template: Template;

beforeAll(() => {
  const app = new App({ context: cdkJson.context });
  template = Template.fromStack(new MetalplaneStack(app, stackName, { stackName }));
});

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };

function resources(type: string): [string, Resource][] {
  return Object.entries(template.findResources(type)) as [string, Resource][];
}

function keySchema(partitionKey: KeyAttribute, sortKey?: KeyAttribute) {
  return [
    { AttributeName: partitionKey.name, KeyType: 'HASH' },
    ...(sortKey ? [{ AttributeName: sortKey.name, KeyType: 'RANGE' }] : []),
  ];
}

function expectedTable(definition: TableDefinition) {
  return {
    TableName: tableName(stackName, definition),
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: keySchema(definition.partitionKey, definition.sortKey),
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    TimeToLiveSpecification: definition.ttlAttribute
      ? { AttributeName: definition.ttlAttribute, Enabled: true }
      : Match.absent(),
    GlobalSecondaryIndexes:
      definition.indexes.length > 0
        ? Match.arrayEquals(
            definition.indexes.map((index) => ({
              IndexName: index.name,
              KeySchema: keySchema(index.partitionKey, index.sortKey),
              Projection: { ProjectionType: 'ALL' },
            })),
          )
        : Match.absent(),
  };
}

describe('tables', () => {
  it('has exactly the tables of resources.ts', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', tables.length);
  });

  it.each(tables.map((table) => [table.id, table] as const))(
    '%s: keys, GSIs, billing, TTL, PITR, retained',
    (_, table) => {
      template.hasResource('AWS::DynamoDB::Table', {
        Properties: Match.objectLike(expectedTable(table)),
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
    },
  );
});

describe('queues', () => {
  it('has the commands dead-letter queue: FIFO, SSE, retention, TLS only', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: queueName(stackName, commandsDeadLetterQueue),
      FifoQueue: true,
      SqsManagedSseEnabled: true,
      VisibilityTimeout: commandsDeadLetterQueue.visibilityTimeoutSeconds,
      MessageRetentionPeriod: commandsDeadLetterQueue.retentionSeconds,
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('bucket', () => {
  it('blocks public access, is S3-encrypted, aborts incomplete multipart uploads, is retained', () => {
    template.hasResource('AWS::S3::Bucket', {
      Properties: Match.objectLike({
        BucketName: bucketName(stackName, imagesBucket),
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        LifecycleConfiguration: {
          Rules: [
            Match.objectLike({
              Status: 'Enabled',
              AbortIncompleteMultipartUpload: {
                DaysAfterInitiation: imagesBucket.abortIncompleteMultipartUploadDays,
              },
            }),
          ],
        },
      }),
      DeletionPolicy: 'Retain',
    });
  });

  it('denies requests without TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('HTTP API', () => {
  function apiFunction(): [string, Resource] {
    const [, route] = resources('AWS::ApiGatewayV2::Route').find(
      ([, r]) => r.Properties.RouteKey === '$default',
    )!;
    const target = route.Properties.Target as { 'Fn::Join': [string, unknown[]] };
    const integrationId = (target['Fn::Join'][1][1] as { Ref: string }).Ref;
    const integration = template.toJSON().Resources[integrationId] as Resource;
    expect(integration.Properties).toMatchObject({
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
    });
    const functionId = (integration.Properties.IntegrationUri as { 'Fn::GetAtt': [string, string] })[
      'Fn::GetAtt'
    ][0];
    return [functionId, template.toJSON().Resources[functionId] as Resource];
  }

  it('routes $default to the api Lambda: nodejs24.x on arm64, 512 MB, 29 s', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 1);
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'HTTP' });
    const [, fn] = apiFunction();
    expect(fn.Type).toBe('AWS::Lambda::Function');
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      MemorySize: 512,
      Timeout: 29,
      Handler: 'index.handler',
    });
  });

  it('gives the api Lambda every resource name and source maps', () => {
    const [, fn] = apiFunction();
    const variables = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    const envVars = [...tables.map((t) => t.envVar), commandsDeadLetterQueue.envVar, imagesBucket.envVar];
    expect(Object.keys(variables)).toEqual(expect.arrayContaining(envVars));
    expect(variables).toMatchObject({
      NODE_OPTIONS: '--enable-source-maps',
      METALPLANE_RESOURCE_PREFIX: stackName,
    });
  });

  it('logs to a log group with one month of retention', () => {
    const [, fn] = apiFunction();
    const logGroupId = (fn.Properties.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
    expect(template.toJSON().Resources[logGroupId]).toMatchObject({
      Type: 'AWS::Logs::LogGroup',
      Properties: { RetentionInDays: 30 },
    });
  });

  it('outputs the API URL', () => {
    template.hasOutput('ApiUrl', { Value: Match.anyValue() });
  });
});

describe('IAM', () => {
  type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
  const statements = (): Statement[] =>
    resources('AWS::IAM::Policy').flatMap(
      ([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );
  const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

  it('grants no service-wide wildcard actions and nothing on *', () => {
    const allows = statements().filter((s) => s.Effect === 'Allow');
    expect(allows.length).toBeGreaterThan(0);
    for (const statement of allows) {
      for (const action of list(statement.Action)) expect(action).not.toMatch(/^(\*|[a-z0-9-]+:\*)$/);
      expect(list(statement.Resource)).not.toContain('*');
    }
  });

  it('does not allow DynamoDB scans', () => {
    const actions = statements().flatMap((s) => list(s.Action));
    expect(actions).toContain('dynamodb:Query');
    expect(actions).not.toContain('dynamodb:Scan');
  });

  it('lets the api create queues only under the site-queue prefix', () => {
    const creators = statements().filter((s) => list(s.Action).includes('sqs:CreateQueue'));
    expect(creators).toHaveLength(1);
    const [arn] = list(creators[0]!.Resource) as [{ 'Fn::Join': [string, unknown[]] }];
    const parts = arn['Fn::Join'][1];
    expect(parts.at(-1)).toBe(`:${stackName}-SiteCommands-*.fifo`);
  });
});
