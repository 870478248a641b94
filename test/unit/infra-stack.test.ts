/**
 * The CDK stack, synthesized in-process (offline, local esbuild bundling, no Docker). The
 * first synth bundles the Lambdas as a deploy does, and the bundles are checked below;
 * the others skip bundling (test/support/cdk.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
import { removeTestApps, testApp } from '../support/cdk.ts';

const stackName = 'Metalplane';

let template: Template;
let bundledApp: App;

beforeAll(() => {
  // Inside the project, so a bundle's external AWS SDK resolves from node_modules as it
  // resolves from the Lambda runtime.
  bundledApp = testApp({}, { bundle: true, parent: new URL('../../.local', import.meta.url).pathname });
  template = Template.fromStack(new MetalplaneStack(bundledApp, stackName, { stackName }));
}, 120_000);
afterAll(removeTestApps);

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

/** The logical id of the one API Gateway v2 API of this protocol. */
function apiOf(protocol: 'HTTP' | 'WEBSOCKET'): string {
  const found = resources('AWS::ApiGatewayV2::Api').filter(
    ([, api]) => api.Properties.ProtocolType === protocol,
  );
  expect(found).toHaveLength(1);
  return found[0]![0];
}

/** The integration and the Lambda (logical id, resource) behind a route of an API. */
function routeTarget(
  apiId: string,
  routeKey: string,
): { route: Resource; integration: Resource; fn: [string, Resource] } {
  const [, route] = resources('AWS::ApiGatewayV2::Route').find(
    ([, r]) => r.Properties.RouteKey === routeKey && (r.Properties.ApiId as { Ref?: string }).Ref === apiId,
  )!;
  const target = route.Properties.Target as { 'Fn::Join': [string, unknown[]] };
  const integrationId = (target['Fn::Join'][1][1] as { Ref: string }).Ref;
  const integration = template.toJSON().Resources[integrationId] as Resource;
  const uri = integration.Properties.IntegrationUri as
    | { 'Fn::GetAtt': [string, string] }
    | { 'Fn::Join': [string, unknown[]] };
  // HTTP integrations name the function's ARN; WebSocket ones the Lambda invocation URI.
  const functionId =
    'Fn::GetAtt' in uri
      ? uri['Fn::GetAtt'][0]
      : (
          uri['Fn::Join'][1].find(
            (part) => typeof part === 'object' && part !== null && 'Fn::GetAtt' in part,
          ) as {
            'Fn::GetAtt': [string, string];
          }
        )['Fn::GetAtt'][0];
  return { route, integration, fn: [functionId, template.toJSON().Resources[functionId] as Resource] };
}

describe('HTTP API', () => {
  function apiFunction(): [string, Resource] {
    const { integration, fn } = routeTarget(apiOf('HTTP'), '$default');
    expect(integration.Properties).toMatchObject({
      IntegrationType: 'AWS_PROXY',
      PayloadFormatVersion: '2.0',
    });
    return fn;
  }

  it('routes $default to the api Lambda: nodejs24.x on arm64, 512 MB, 29 s', () => {
    // One HTTP API (the Ironic API) and one WebSocket API (the agents').
    template.resourceCountIs('AWS::ApiGatewayV2::Api', 2);
    apiOf('HTTP');
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

  it("logs to a log group with the stage's retention (prod, the default: 90 days, retained)", () => {
    const [, fn] = apiFunction();
    const logGroupId = (fn.Properties.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
    expect(template.toJSON().Resources[logGroupId]).toMatchObject({
      Type: 'AWS::Logs::LogGroup',
      Properties: { RetentionInDays: 90 },
      DeletionPolicy: 'Retain',
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

describe('agents WebSocket API', () => {
  it('routes $connect, $disconnect and $default (two-way) to the agents Lambda', () => {
    const api = apiOf('WEBSOCKET');
    const functions = ['$connect', '$disconnect', '$default'].map((key) => {
      const { route, integration, fn } = routeTarget(api, key);
      expect(integration.Properties).toMatchObject({ IntegrationType: 'AWS_PROXY' });
      expect(route.Properties.AuthorizationType).toBe('NONE');
      return fn;
    });
    expect(new Set(functions.map(([id]) => id)).size).toBe(1);
    const [agentsId, agents] = functions[0]!;
    expect(agentsId).toMatch(/^AgentsFunction/);
    expect(agents.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 29,
    });
    // `pull` is answered with the route response.
    const { route } = routeTarget(api, '$default');
    expect(route.Properties.RouteResponseSelectionExpression).toBe('$default');
    template.hasResourceProperties('AWS::ApiGatewayV2::RouteResponse', {
      ApiId: { Ref: api },
      RouteResponseKey: '$default',
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      ApiId: { Ref: api },
      StageName: 'agents',
      AutoDeploy: true,
    });
    template.hasOutput('AgentsWebSocketUrl', { Value: Match.anyValue() });
  });

  it('gives the agents and api Lambdas the tables, the prefix and the management endpoint', () => {
    const api = apiOf('WEBSOCKET');
    const [, agents] = routeTarget(api, '$default').fn;
    const [, http] = routeTarget(apiOf('HTTP'), '$default').fn;
    for (const fn of [agents, http]) {
      const variables = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(Object.keys(variables)).toEqual(expect.arrayContaining(tables.map((t) => t.envVar)));
      expect(variables.METALPLANE_RESOURCE_PREFIX).toBe(stackName);
      // https://{apiId}.execute-api.{region}.{suffix}/agents
      expect(JSON.stringify(variables.METALPLANE_WS_MANAGEMENT_ENDPOINT)).toContain(api);
      expect(JSON.stringify(variables.METALPLANE_WS_MANAGEMENT_ENDPOINT)).toMatch(/^.*https:\/\/.*\/agents"/);
    }
    const httpVariables = (http.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(JSON.stringify(httpVariables.METALPLANE_WS_URL)).toMatch(/wss:\/\/.*\/agents"/);
  });
});

describe('conductor', () => {
  function conductor(): [string, Resource] {
    // The schedule's rule (the other is the events bus's rule to the webhooks).
    const rules = resources('AWS::Events::Rule').filter(([, rule]) => rule.Properties.ScheduleExpression);
    expect(rules).toHaveLength(1);
    const [, rule] = rules[0]!;
    expect(rule.Properties).toMatchObject({ ScheduleExpression: 'rate(1 minute)', State: 'ENABLED' });
    const [target] = rule.Properties.Targets as Array<{ Arn: { 'Fn::GetAtt': [string, string] } }>;
    const id = target!.Arn['Fn::GetAtt'][0];
    return [id, template.toJSON().Resources[id] as Resource];
  }

  it('runs the conductor Lambda every minute, allowed to be invoked by that rule only', () => {
    const [id, fn] = conductor();
    expect(fn.Properties).toMatchObject({
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      FunctionName: { 'Fn::GetAtt': [id, 'Arn'] },
      Principal: 'events.amazonaws.com',
    });
    const variables = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(variables)).toEqual(expect.arrayContaining(tables.map((t) => t.envVar)));
  });
});

describe('IAM of the agent channel', () => {
  type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
  const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
  /** The statements of the policy attached to the role of the function `functionPrefix`. */
  function statementsOf(functionPrefix: string): Statement[] {
    const policies = resources('AWS::IAM::Policy').filter(([id]) =>
      id.startsWith(`${functionPrefix}ServiceRoleDefaultPolicy`),
    );
    expect(policies).toHaveLength(1);
    return (policies[0]![1].Properties.PolicyDocument as { Statement: Statement[] }).Statement;
  }
  const actionsOf = (statements: Statement[]) => statements.flatMap((s) => list(s.Action));

  it('lets only the api, agents and image-verify Lambdas manage connections, of this API stage only', () => {
    const api = apiOf('WEBSOCKET');
    const managing = resources('AWS::IAM::Policy').flatMap(([id, p]) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter((s) =>
        list(s.Action).includes('execute-api:ManageConnections'),
      ).map((s) => [id, s] as const),
    );
    expect(managing.map(([id]) => id.replace(/ServiceRole.*$/, '')).sort()).toStrictEqual([
      'AgentsFunction',
      'ApiFunction',
      // Pushes `wake` (topic images) when a large image's verification makes it active.
      'ImageVerifyFunction',
    ]);
    for (const [, statement] of managing) {
      expect(list(statement.Action)).toStrictEqual(['execute-api:ManageConnections']);
      const arn = JSON.stringify(statement.Resource);
      expect(arn).toContain(`{"Ref":"${api}"}`);
      expect(arn).toContain('"/agents/*/@connections/*"');
    }
    expect(actionsOf(statementsOf('ConductorFunction'))).not.toContain('execute-api:ManageConnections');
  });

  it('lets the agents Lambda receive and delete on site queues only: no create, delete, send', () => {
    const sqsStatements = statementsOf('AgentsFunction').filter((s) =>
      list(s.Action).some((action) => action.startsWith('sqs:')),
    );
    expect(sqsStatements).toHaveLength(1);
    expect([...list(sqsStatements[0]!.Action)].sort()).toStrictEqual(
      [
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ].sort(),
    );
    const arn = sqsStatements[0]!.Resource as { 'Fn::Join': [string, unknown[]] };
    expect(arn['Fn::Join'][1].at(-1)).toBe(`:${stackName}-SiteCommands-*.fifo`);
    // The conductor deletes site messages (expiry) and consumes the dead-letter queue only.
    const conductorStatements = statementsOf('ConductorFunction').filter((s) =>
      list(s.Action).some((action) => action.startsWith('sqs:')),
    );
    const receiving = conductorStatements.filter((s) => list(s.Action).includes('sqs:ReceiveMessage'));
    expect(receiving).toHaveLength(1);
    expect(JSON.stringify(receiving[0]!.Resource)).toContain('CommandsDeadLetter');
    expect(JSON.stringify(receiving[0]!.Resource)).not.toContain('SiteCommands');
    const siteStatement = conductorStatements.find((s) =>
      JSON.stringify(s.Resource).includes('SiteCommands'),
    );
    expect([...list(siteStatement!.Action)].sort()).toStrictEqual(['sqs:DeleteMessage', 'sqs:GetQueueUrl']);
  });
});

describe('secrets key and throttling', () => {
  type Statement = { Effect: string; Action: string | string[]; Resource: unknown; Condition?: unknown };
  const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
  const kmsStatements = () =>
    resources('AWS::IAM::Policy').flatMap(([id, p]) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter((s) =>
        list(s.Action).some((action) => action.startsWith('kms:')),
      ).map((s) => [id.replace(/ServiceRole.*$/, ''), s] as const),
    );

  it('has one KMS key, rotated yearly, retained, behind the alias the Lambdas and metalplane-admin use', () => {
    const [[id, key]] = resources('AWS::KMS::Key') as [[string, Resource]];
    expect(key.Properties.EnableKeyRotation).toBe(true);
    expect(key.DeletionPolicy).toBe('Retain');
    template.hasResourceProperties('AWS::KMS::Alias', {
      AliasName: `alias/${stackName}-Secrets`,
      TargetKeyId: { 'Fn::GetAtt': [id, 'Arn'] },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ METALPLANE_SECRETS_KEY: { 'Fn::GetAtt': [id, 'Arn'] } }) },
    });
  });

  it('lets only the api, agents and webhooks Lambdas open secrets, the conductor seal them; always with the context', () => {
    const byFunction = new Map<string, string[]>();
    for (const [fn, statement] of kmsStatements()) {
      byFunction.set(fn, [...(byFunction.get(fn) ?? []), ...list(statement.Action)].sort());
      expect(statement.Condition).toStrictEqual({
        StringEquals: { 'kms:EncryptionContext:purpose': 'metalplane-secrets' },
      });
      expect(JSON.stringify(statement.Resource)).toContain('Secrets');
    }
    // The webhooks Lambda opens its subscriptions' HMAC secrets, and seals nothing.
    const webhooks = [...byFunction.keys()].filter((fn) => fn.startsWith('EventsWebhooksFunction'));
    expect(webhooks).toHaveLength(1);
    expect(byFunction.get(webhooks[0]!)).toEqual(['kms:Decrypt']);
    byFunction.delete(webhooks[0]!);
    expect(Object.fromEntries(byFunction)).toStrictEqual({
      ApiFunction: ['kms:Decrypt', 'kms:GenerateDataKey'],
      AgentsFunction: ['kms:Decrypt', 'kms:GenerateDataKey'],
      ConductorFunction: ['kms:GenerateDataKey'],
    });
  });

  it('throttles the HTTP API and the agents WebSocket API', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      DefaultRouteSettings: { ThrottlingRateLimit: 200, ThrottlingBurstLimit: 400 },
    });
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: 'agents',
      DefaultRouteSettings: { ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 },
    });
  });
});

describe('audit trail table', () => {
  type Statement = { Action: string | string[]; Resource: unknown };
  const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

  it('is append-and-read only, for the api Lambda only', () => {
    const [[auditId]] = Object.entries(template.findResources('AWS::DynamoDB::Table')).filter(
      ([, table]) => (table as Resource).Properties.TableName === `${stackName}-Audit`,
    ) as [[string, Resource]];
    const touching = resources('AWS::IAM::Policy').flatMap(([id, p]) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter((s) =>
        JSON.stringify(s.Resource).includes(`"${auditId}"`),
      ).map((s) => [id.replace(/ServiceRole.*$/, ''), s] as const),
    );
    expect(new Set(touching.map(([fn]) => fn))).toStrictEqual(new Set(['ApiFunction']));
    expect(touching.flatMap(([, s]) => list(s.Action)).sort()).toStrictEqual(
      ['dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query'].sort(),
    );
  });
});

/** The template of the stack synthesized with `context` over cdk.json's. */
function synthesize(context: Record<string, unknown>, name = stackName): Template {
  return Template.fromStack(new MetalplaneStack(testApp(context), name, { stackName: name }));
}

const certificateArn = 'arn:aws:acm:eu-west-1:123456789012:certificate/0f6c2a64-1b7e-4c55-9a3b-2f1e9c7d8a10';

describe('stages (context metalplane:stage)', () => {
  let dev: Template;
  beforeAll(() => {
    dev = synthesize({ 'metalplane:stage': 'dev' });
  }, 120_000);

  type Json = { Resources: Record<string, Resource & { UpdateReplacePolicy?: string }> };
  const ofType = (t: Template, type: string) =>
    Object.values((t.toJSON() as Json).Resources).filter((r) => r.Type === type);

  it('prod is the default: tables deletion-protected, with PITR, retained on delete and replace', () => {
    const all = ofType(template, 'AWS::DynamoDB::Table');
    expect(all).toHaveLength(tables.length);
    for (const table of all) {
      expect(table.Properties).toMatchObject({
        DeletionProtectionEnabled: true,
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      });
      expect([table.DeletionPolicy, table.UpdateReplacePolicy]).toStrictEqual(['Retain', 'Retain']);
    }
  });

  it('prod deletes no data: tables, bucket, KMS key and every log group are retained', () => {
    for (const type of ['AWS::DynamoDB::Table', 'AWS::S3::Bucket', 'AWS::KMS::Key', 'AWS::Logs::LogGroup']) {
      const all = ofType(template, type);
      expect(all.length, type).toBeGreaterThan(0);
      for (const resource of all) expect(resource.DeletionPolicy, type).toBe('Retain');
    }
    // Nothing in the prod template is deleted with the stack but queues, functions, APIs,
    // roles and other stateless resources.
    const deleted = Object.values((template.toJSON() as Json).Resources)
      .filter((r) => r.DeletionPolicy === 'Delete')
      .map((r) => r.Type);
    expect(deleted.filter((type) => /DynamoDB|S3::Bucket$|KMS::Key|Logs::LogGroup/.test(type))).toEqual([]);
  });

  it('dev: tables keep PITR but are not protected and go with the stack; the bucket stays', () => {
    for (const table of ofType(dev, 'AWS::DynamoDB::Table')) {
      expect(table.Properties).toMatchObject({
        DeletionProtectionEnabled: false,
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      });
      expect(table.DeletionPolicy).toBe('Delete');
    }
    expect(ofType(dev, 'AWS::S3::Bucket')[0]!.DeletionPolicy).toBe('Retain');
    const [key] = ofType(dev, 'AWS::KMS::Key');
    expect(key!.DeletionPolicy).toBe('Delete');
    expect(key!.Properties.PendingWindowInDays).toBe(7);
    for (const group of ofType(dev, 'AWS::Logs::LogGroup')) {
      expect(group.Properties.RetentionInDays).toBe(7);
      expect(group.DeletionPolicy).toBe('Delete');
    }
  });

  it('log retention can be set by context', () => {
    const t = synthesize({ 'metalplane:logRetentionDays': 14, 'metalplane:accessLogRetentionDays': '400' });
    const retentions = ofType(t, 'AWS::Logs::LogGroup').map((g) => g.Properties.RetentionInDays);
    expect(new Set(retentions)).toStrictEqual(new Set([14, 400]));
  }, 120_000);

  it('refuses an unknown stage, a bad retention and a WAF context (HTTP/WebSocket APIs take none)', () => {
    expect(() => synthesize({ 'metalplane:stage': 'production' })).toThrow(/"dev" or "prod"/);
    expect(() => synthesize({ 'metalplane:logRetentionDays': 31 })).toThrow(/retention/);
    expect(() => synthesize({ 'metalplane:waf': true })).toThrow(/WAF cannot be associated/);
    expect(() => synthesize({ 'metalplane:wafAclArn': 'arn:aws:wafv2:x' })).toThrow(/docs\/deploy\.md/);
  }, 120_000);
});

describe('API access logs', () => {
  type Json = { Resources: Record<string, Resource> };
  function stage(name: string): Resource {
    const found = Object.values((template.toJSON() as Json).Resources).filter(
      (r) => r.Type === 'AWS::ApiGatewayV2::Stage' && r.Properties.StageName === name,
    );
    expect(found).toHaveLength(1);
    return found[0]!;
  }

  it.each([
    ['$default', 'HTTP API', ['requestId', 'sourceIp', 'routeKey', 'status', 'integrationError']],
    ['agents', 'WebSocket API', ['requestId', 'sourceIp', 'eventType', 'connectionId', 'status']],
  ])('%s (%s): JSON lines into its own log group, retained a year in prod', (name, _, fields) => {
    const settings = stage(name).Properties.AccessLogSettings as {
      DestinationArn: { 'Fn::GetAtt': [string, string] };
      Format: string;
    };
    const [groupId, attribute] = settings.DestinationArn['Fn::GetAtt'];
    expect(attribute).toBe('Arn');
    expect(template.toJSON().Resources[groupId]).toMatchObject({
      Type: 'AWS::Logs::LogGroup',
      Properties: { RetentionInDays: 365 },
      DeletionPolicy: 'Retain',
    });
    const format = JSON.parse(settings.Format) as Record<string, string>;
    expect(Object.keys(format)).toEqual(expect.arrayContaining(fields));
    expect(format.requestId).toBe('$context.requestId');
    // No header, body or authorization value is logged.
    expect(settings.Format).not.toMatch(/authorizer|header|body/i);
  });

  it("sets the region's API Gateway CloudWatch role (WebSocket logging needs it) unless told not to", () => {
    template.resourceCountIs('AWS::ApiGateway::Account', 1);
    template.hasResourceProperties('AWS::IAM::Role', {
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'apigateway.amazonaws.com' } })],
      },
    });
    const without = synthesize({ 'metalplane:apiGatewayCloudWatchRole': false });
    without.resourceCountIs('AWS::ApiGateway::Account', 0);
  }, 120_000);
});

describe('custom domain (context metalplane:domainName + metalplane:certificateArn)', () => {
  it('none by default', () => {
    template.resourceCountIs('AWS::ApiGatewayV2::DomainName', 0);
    template.resourceCountIs('AWS::ApiGatewayV2::ApiMapping', 0);
  });

  it('a regional TLS 1.2 domain with the given certificate, mapped to the HTTP API', () => {
    const t = synthesize({
      'metalplane:domainName': 'metalplane.example.com',
      'metalplane:certificateArn': certificateArn,
    });
    t.hasResourceProperties('AWS::ApiGatewayV2::DomainName', {
      DomainName: 'metalplane.example.com',
      DomainNameConfigurations: [
        Match.objectLike({
          CertificateArn: certificateArn,
          EndpointType: 'REGIONAL',
          SecurityPolicy: 'TLS_1_2',
        }),
      ],
    });
    const apis = t.findResources('AWS::ApiGatewayV2::Api', { Properties: { ProtocolType: 'HTTP' } });
    const [httpApiId] = Object.keys(apis);
    t.hasResourceProperties('AWS::ApiGatewayV2::ApiMapping', {
      ApiId: { Ref: httpApiId },
      Stage: Match.anyValue(),
    });
    t.hasOutput('ApiCustomDomainUrl', { Value: 'https://metalplane.example.com/' });
    t.hasOutput('ApiCustomDomainTarget', { Value: Match.anyValue() });
  }, 120_000);

  it('refuses one without the other, and a certificate that is not an ACM ARN', () => {
    expect(() => synthesize({ 'metalplane:domainName': 'metalplane.example.com' })).toThrow(/go together/);
    expect(() =>
      synthesize({ 'metalplane:domainName': 'a.example.com', 'metalplane:certificateArn': 'cert-1' }),
    ).toThrow(/ACM certificate ARN/);
  }, 120_000);
});

describe('per-site queues: tracked by tag', () => {
  it("tags the stack's resources with metalplane:stack", () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: queueName(stackName, commandsDeadLetterQueue),
      Tags: Match.arrayWith([{ Key: 'metalplane:stack', Value: stackName }]),
    });
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      Tags: Match.arrayWith([{ Key: 'metalplane:stack', Value: stackName }]),
    });
  });

  it('has a resource group of every SQS queue tagged with the stack (the sites’ included)', () => {
    template.hasResourceProperties('AWS::ResourceGroups::Group', {
      Name: `${stackName}-queues`,
      ResourceQuery: {
        Type: 'TAG_FILTERS_1_0',
        Query: {
          ResourceTypeFilters: ['AWS::SQS::Queue'],
          TagFilters: [{ Key: 'metalplane:stack', Values: [stackName] }],
        },
      },
    });
  });
});

describe('Lambda bundles (esbuild, as `cdk deploy` makes them)', () => {
  /** Each function's logical id → its bundle's directory in the cloud assembly. */
  function bundles(): Map<string, string> {
    const found = new Map<string, string>();
    for (const [id, fn] of resources('AWS::Lambda::Function')) {
      const key = (fn.Properties.Code as { S3Key?: string }).S3Key;
      if (key?.endsWith('.zip')) found.set(id, join(bundledApp.outdir, `asset.${key.slice(0, -4)}`));
    }
    return found;
  }

  it('bundles each of the five functions into one ESM file that imports only Node and the runtime’s AWS SDK', () => {
    const found = bundles();
    expect([...found.keys()].map((id) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'AgentsFunction',
      'ApiFunction',
      'ConductorFunction',
      'EventsWebhooksFunction',
      'ImageVerifyFunction',
    ]);
    const builtins = new Set(builtinModules);
    for (const [id, dir] of found) {
      expect(readdirSync(dir).sort(), id).toEqual(['index.mjs', 'index.mjs.map']);
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      // Static and dynamic imports of the minified module: what the runtime must provide.
      const imported = new Set(
        [...code.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["']([^"'\s]+)["']/g)].map((match) => match[1]!),
      );
      const foreign = [...imported].filter(
        (name) => !name.startsWith('@aws-sdk/') && !builtins.has(name.replace(/^node:/, '')),
      );
      expect(foreign, `${id} imports what its zip does not hold`).toEqual([]);
      expect(code, id).toMatch(/export\s*\{[^}]*\bas handler\b/);
    }
  });

  it('the api bundle loads in a fresh Node.js and answers GET /v1', async () => {
    const api = [...bundles()].find(([id]) => id.startsWith('ApiFunction'))?.[1];
    expect(api && existsSync(join(api, 'index.mjs'))).toBe(true);
    const probe = join(bundledApp.outdir, 'probe.mjs');
    writeFileSync(
      probe,
      `const { handler } = await import(${JSON.stringify(join(api!, 'index.mjs'))});
const answer = await handler({ version: '2.0', routeKey: '$default', rawPath: '/v1', rawQueryString: '',
  headers: { host: 'x' }, requestContext: { http: { method: 'GET', path: '/v1', sourceIp: '127.0.0.1' },
  domainName: 'x', requestId: 'r' }, isBase64Encoded: false },
  { getRemainingTimeInMillis: () => 29000, awsRequestId: 'r', functionName: 'api' });
process.stdout.write(JSON.stringify(answer));`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, [probe], {
      env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'SILENT' },
      timeout: 30_000,
    });
    const answer = JSON.parse(stdout) as { statusCode: number; body: string };
    expect(answer.statusCode).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({
      id: 'v1',
      media_types: { type: 'application/vnd.openstack.ironic.v1+json' },
    });
  });
});
