/**
 * infra/observability.ts, synthesized: on a small stack of the same shape (fast), and on
 * the real MetalplaneStack, which builds its own (infra/stack.ts).
 */
import { readFileSync } from 'node:fs';
import { Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { HttpApi, WebSocketApi } from 'aws-cdk-lib/aws-apigatewayv2';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGENT_SILENT_MINUTES_ENV,
  IMAGE_VERIFICATION_FAILED_MESSAGE,
  IMAGE_VERIFICATION_FAILURES,
  LAMBDA_METRICS,
  METRICS_NAMESPACE,
  Observability,
  type ObservabilityProps,
} from '../../infra/observability.ts';
import {
  commandsDeadLetterQueue,
  imageVerifyDeadLetterQueue,
  imageVerifyQueue,
} from '../../infra/resources.ts';
import { MetalplaneStack } from '../../infra/stack.ts';
import * as lambdaMetrics from '../../lambda/observability/metrics.ts';
import { removeTestApps, testApp } from '../support/cdk.ts';

afterAll(removeTestApps);

type Resource = { Type: string; Properties: Record<string, any> };

function smallStack(context: Record<string, unknown> = {}, overrides: Partial<ObservabilityProps> = {}) {
  const stack = new Stack(testApp(context, { cdkJson: false }), 'Obs', { stackName: 'Obs' });
  const fn = (id: string) =>
    new lambda.Function(stack, id, {
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline('export const handler = async () => ({});'),
      // As the real stack's: its own log group (no log-retention custom resource).
      logGroup: new logs.LogGroup(stack, `${id}Logs`),
    });
  const functions = {
    api: fn('Api'),
    agents: fn('Agents'),
    conductor: fn('Conductor'),
    imageVerify: fn('VerifyFn'),
  };
  const httpApi = new HttpApi(stack, 'Http');
  const webSocketApi = new WebSocketApi(stack, 'Ws');
  const queues = new Map<string, sqs.IQueue>([
    [commandsDeadLetterQueue.id, new sqs.Queue(stack, 'Dlq', { fifo: true })],
    [imageVerifyDeadLetterQueue.id, new sqs.Queue(stack, 'VerifyDlq')],
    [imageVerifyQueue.id, new sqs.Queue(stack, 'VerifyQueue')],
  ]);
  const tables = new Map<string, dynamodb.ITable>([
    [
      'Inventory',
      new dynamodb.Table(stack, 'Inventory', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      }),
    ],
  ]);
  const observability = new Observability(stack, 'Observability', {
    functions,
    httpApi,
    webSocketApi,
    webSocketStageName: 'agents',
    queues,
    tables,
    ...overrides,
  });
  return { template: Template.fromStack(stack), observability, functions, stack };
}

function alarms(template: Template): Resource[] {
  return Object.values(template.findResources('AWS::CloudWatch::Alarm')) as Resource[];
}

function alarmNamed(template: Template, name: string): Resource {
  const found = alarms(template).find((alarm) => alarm.Properties.AlarmName === name);
  if (!found) throw new Error(`no alarm ${name}: ${alarms(template).map((a) => a.Properties.AlarmName)}`);
  return found;
}

describe('Observability on a small stack', () => {
  let template: Template;
  beforeAll(() => {
    ({ template } = smallStack());
  });

  it('has the alarms of the issue, each with its runbook, all notifying the created topic', () => {
    const names = alarms(template)
      .map((alarm) => alarm.Properties.AlarmName as string)
      .sort();
    expect(names).toEqual(
      [
        'Obs-api-5xx-rate',
        'Obs-dlq-commands-dead-letter',
        'Obs-dlq-image-verify-dead-letter',
        'Obs-commands-expiring',
        'Obs-agent-silent',
        'Obs-image-verification-failures',
        ...['api', 'agents', 'conductor', 'image-verify'].flatMap((fn) => [
          `Obs-lambda-errors-${fn}`,
          `Obs-lambda-throttles-${fn}`,
        ]),
      ].sort(),
    );
    const topics = template.findResources('AWS::SNS::Topic');
    expect(Object.keys(topics)).toHaveLength(1);
    const [topicId] = Object.keys(topics);
    for (const alarm of alarms(template)) {
      expect(alarm.Properties.AlarmDescription).toMatch(
        /Runbook: docs\/observability\.md#runbook-[a-z0-9-]+$/,
      );
      expect(alarm.Properties.AlarmActions).toEqual([{ Ref: topicId }]);
      expect(alarm.Properties.OKActions).toEqual([{ Ref: topicId }]);
      expect(alarm.Properties.TreatMissingData).toBe('notBreaching');
      expect(alarm.Properties.ComparisonOperator).toBe('GreaterThanThreshold');
    }
    expect(alarmNamed(template, 'Obs-lambda-errors-api').Properties.AlarmDescription).toMatch(
      /#runbook-lambda-errors$/,
    );
    expect(alarmNamed(template, 'Obs-dlq-commands-dead-letter').Properties.AlarmDescription).toMatch(
      /#runbook-dlq-depth$/,
    );
  });

  it('alarms on the API 5xx rate with metric math: 5xx / requests > 1% over 5 minutes', () => {
    const alarm = alarmNamed(template, 'Obs-api-5xx-rate');
    expect(alarm.Properties.Threshold).toBe(1);
    const queries = alarm.Properties.Metrics as Array<Record<string, any>>;
    const expression = queries.find((query) => query.Expression);
    expect(expression?.Expression).toBe('IF(requests >= 10, 100 * errors / requests, 0)');
    const byId = Object.fromEntries(queries.filter((q) => q.MetricStat).map((q) => [q.Id, q.MetricStat]));
    expect(byId.errors.Metric).toMatchObject({ Namespace: 'AWS/ApiGateway', MetricName: '5xx' });
    expect(byId.requests.Metric).toMatchObject({ Namespace: 'AWS/ApiGateway', MetricName: 'Count' });
    expect(byId.errors.Period).toBe(300);
  });

  it("alarms on the Lambdas' own metrics without dimensions (every site at once)", () => {
    for (const [name, metric, statistic] of [
      ['Obs-commands-expiring', 'CommandsExpired', 'Sum'],
      ['Obs-agent-silent', 'AgentsSilent', 'Maximum'],
      ['Obs-image-verification-failures', IMAGE_VERIFICATION_FAILURES, 'Sum'],
    ] as const) {
      const alarm = alarmNamed(template, name);
      expect(alarm.Properties).toMatchObject({
        Namespace: METRICS_NAMESPACE,
        MetricName: metric,
        Statistic: statistic,
        Threshold: 0,
        Period: 300,
      });
      expect(alarm.Properties.Dimensions).toBeUndefined();
    }
  });

  it('alarms on dead-letter queue depth > 0, and Lambda errors and throttles', () => {
    const dlq = alarmNamed(template, 'Obs-dlq-commands-dead-letter');
    expect(dlq.Properties).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Statistic: 'Maximum',
      Threshold: 0,
    });
    expect(alarmNamed(template, 'Obs-lambda-errors-conductor').Properties).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Threshold: 0,
    });
    expect(alarmNamed(template, 'Obs-lambda-throttles-agents').Properties).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Throttles',
    });
  });

  it('counts image verification failures from every log group, by the catalog message', () => {
    const filters = Object.values(template.findResources('AWS::Logs::MetricFilter')) as Resource[];
    expect(filters).toHaveLength(4);
    for (const filter of filters) {
      expect(filter.Properties.FilterPattern).toBe(`{ $.message = "${IMAGE_VERIFICATION_FAILED_MESSAGE}" }`);
      expect(filter.Properties.MetricTransformations).toEqual([
        {
          MetricNamespace: METRICS_NAMESPACE,
          MetricName: IMAGE_VERIFICATION_FAILURES,
          MetricValue: '1',
          Unit: 'Count',
        },
      ]);
    }
  });

  it('creates an encrypted, TLS-only topic CloudWatch may publish to, and outputs it', () => {
    template.hasResourceProperties('AWS::SNS::Topic', {
      TopicName: 'Obs-alarms',
      KmsMasterKeyId: Match.anyValue(),
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 'sns:Publish' })]),
      },
    });
    const [key] = Object.values(template.findResources('AWS::KMS::Key')) as Array<
      Resource & { DeletionPolicy: string }
    >;
    expect(key?.DeletionPolicy).toBe('Retain'); // as every key of a prod stack (the default)
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
    expect(Object.keys(template.findOutputs('*')).some((id) => id.includes('AlarmTopicArn'))).toBe(true);
    expect(template.findResources('AWS::SNS::Subscription')).toEqual({});
  });

  it('has one dashboard with the API, Lambda, command, queue, agent and power-sync widgets', () => {
    const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard')) as Resource[];
    expect(dashboards).toHaveLength(1);
    expect(dashboards[0]!.Properties.DashboardName).toBe('Obs-overview');
    const body = JSON.stringify(dashboards[0]!.Properties.DashboardBody);
    for (const title of [
      'API requests and errors',
      'API 5xx rate (%)',
      'API 4xx/5xx per route',
      'Lambda errors',
      'Lambda throttles',
      'Lambda duration p99 (ms)',
      'Commands',
      'Dispatch latency, queued → agent (ms)',
      'Dead-letter queues (messages)',
      'Agents',
      'Power sync failures (BMC reads)',
      'Image verification failures',
    ]) {
      expect(body).toContain(title);
    }
    for (const metric of LAMBDA_METRICS) expect(body).toContain(metric);
    expect(body).toContain('Obs-SiteCommands-');
  });

  it('gives the conductor the silence threshold and tells the Tracer it is off', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { [AGENT_SILENT_MINUTES_ENV]: '5', POWERTOOLS_TRACE_ENABLED: 'false' } },
    });
    for (const fn of Object.values(template.findResources('AWS::Lambda::Function')) as Resource[]) {
      expect(fn.Properties.TracingConfig).toBeUndefined();
      expect(fn.Properties.Environment.Variables.POWERTOOLS_TRACE_ENABLED).toBe('false');
    }
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).not.toContain('xray:');
  });
});

describe('Observability options from the context', () => {
  it('synthesizes without warnings (the dashboard SEARCH expressions included)', () => {
    const { stack } = smallStack();
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.anyValue());
    expect(warnings.map((warning) => `${warning.id}: ${JSON.stringify(warning.entry.data)}`)).toEqual([]);
  });

  it('uses the topic metalplane:alarmTopicArn names, creating none', () => {
    const arn = 'arn:aws:sns:eu-west-1:123456789012:ops-alarms';
    const { template } = smallStack({ 'metalplane:alarmTopicArn': arn });
    expect(template.findResources('AWS::SNS::Topic')).toEqual({});
    expect(template.findResources('AWS::KMS::Key')).toEqual({});
    for (const alarm of alarms(template)) expect(alarm.Properties.AlarmActions).toEqual([arn]);
  });

  it('subscribes metalplane:alarmEmail, and passes metalplane:agentSilentMinutes to the conductor', () => {
    const { template } = smallStack({
      'metalplane:alarmEmail': 'ops@example.com',
      'metalplane:agentSilentMinutes': 12,
    });
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { [AGENT_SILENT_MINUTES_ENV]: '12' } },
    });
    expect(alarmNamed(template, 'Obs-agent-silent').Properties.AlarmDescription).toContain('12 minutes');
  });

  it('turns X-Ray active tracing on with metalplane:tracing', () => {
    const { template } = smallStack({ 'metalplane:tracing': 'true' });
    for (const fn of Object.values(template.findResources('AWS::Lambda::Function')) as Resource[]) {
      expect(fn.Properties.TracingConfig).toEqual({ Mode: 'Active' });
      expect(fn.Properties.Environment.Variables.POWERTOOLS_TRACE_ENABLED).toBe('true');
    }
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], Resource: '*' }),
        ]),
      },
    });
  });
});

describe('the names infra and lambda share', () => {
  it('alarms and graphs exactly the metrics the Lambdas emit', () => {
    expect([...LAMBDA_METRICS].sort()).toEqual(Object.keys(lambdaMetrics.METRICS).sort());
    expect(METRICS_NAMESPACE).toBe(lambdaMetrics.METRICS_NAMESPACE);
    expect(IMAGE_VERIFICATION_FAILURES).toBe(lambdaMetrics.IMAGE_VERIFICATION_FAILURES);
    expect(IMAGE_VERIFICATION_FAILED_MESSAGE).toBe(lambdaMetrics.IMAGE_VERIFICATION_FAILED_MESSAGE);
  });

  it('filters on the very message the image catalog logs when a file fails verification', () => {
    const catalog = readFileSync(new URL('../../lambda/images/catalog.ts', import.meta.url), 'utf8');
    expect(catalog).toContain(`this.log.warn('${IMAGE_VERIFICATION_FAILED_MESSAGE}'`);
  });
});

function onMetalplaneStack(context: Record<string, unknown> = {}) {
  // The stack builds its Observability itself (infra/stack.ts).
  return new MetalplaneStack(testApp(context), 'Metalplane', { stackName: 'Metalplane' });
}

describe('Observability on the MetalplaneStack', () => {
  it.each([
    ['tracing off', {}],
    ['tracing on', { 'metalplane:tracing': 'true' }],
  ])(
    'passes cdk-nag AwsSolutions (%s)',
    (_, context) => {
      const stack = onMetalplaneStack(context);
      Aspects.of(stack).add(new AwsSolutionsChecks());
      const annotations = Annotations.fromStack(stack);
      const ours = [
        ...annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*')),
        ...annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*')),
      ]
        .filter((finding) => finding.id.includes('/Observability/'))
        .map((finding) => `${finding.id}: ${String(finding.entry.data).split('\n')[0]}`);
      expect(ours).toEqual([]);
    },
    120_000,
  );

  it('synthesizes beside the real stack, and grants nothing on * while tracing is off', () => {
    const stack = onMetalplaneStack();
    const template = Template.fromStack(stack);
    const names = alarms(template).map((alarm) => alarm.Properties.AlarmName as string);
    expect(names).toContain('Metalplane-api-5xx-rate');
    expect(names).toContain('Metalplane-dlq-commands-dead-letter');
    expect(names).toContain('Metalplane-dlq-image-verify-dead-letter');
    expect(names).toContain('Metalplane-lambda-errors-conductor');
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [AGENT_SILENT_MINUTES_ENV]: '5' }) },
    });
    const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
      (policy) => (policy as Resource).Properties.PolicyDocument.Statement as Array<{ Resource: unknown }>,
    );
    for (const statement of statements) expect([statement.Resource].flat()).not.toContain('*');
  }, 120_000);
});
