/**
 * Metalplane's observability on AWS (docs/observability.md): one CloudWatch dashboard,
 * the alarms, the SNS topic they notify, X-Ray tracing of the Lambdas (opt-in), and the
 * log metric filter counting image verification failures.
 *
 * The metrics are the `Metalplane` namespace's, written by the Lambdas as the Embedded
 * Metric Format (`lambda/observability/metrics.ts`), and AWS's own (API Gateway, Lambda,
 * SQS, DynamoDB). infra/ imports nothing from lambda/, so the names the alarms watch are
 * repeated here; `test/unit/observability-infra.test.ts` holds the two lists equal.
 *
 * Context (cdk.json or `-c`):
 *   metalplane:alarmTopicArn     an existing SNS topic for the alarms; default: one is
 *                                created (KMS-encrypted, TLS only) and output
 *   metalplane:alarmEmail        an e-mail address subscribed to the created topic
 *   metalplane:agentSilentMinutes after how long without a heartbeat an agent is silent (5)
 *   metalplane:tracing           `true`: X-Ray active tracing on every Lambda (it needs
 *                                `xray:PutTraceSegments` on `*`: X-Ray has no resource ARNs)
 *
 * Every alarm's description names its runbook: docs/observability.md#runbook-<name> (the
 * sections are in docs/observability.md, "Runbook: <name>").
 */
import { CfnOutput, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { IHttpApi, IWebSocketApi } from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { NagSuppressions } from 'cdk-nag';
import { Construct } from 'constructs';
import { commandsDeadLetterQueue, queues as queueDefinitions, SITE_QUEUE_ID_PREFIX } from './resources.ts';

/** The namespace of the Lambdas' EMF metrics (`lambda/observability/metrics.ts`). */
export const METRICS_NAMESPACE = 'Metalplane';

/** The metrics the Lambdas emit (`METRICS` of `lambda/observability/metrics.ts`). */
export const LAMBDA_METRICS = [
  'CommandsQueued',
  'CommandsSucceeded',
  'CommandsFailed',
  'CommandsExpired',
  'DispatchLatency',
  'AgentConnections',
  'AgentDisconnections',
  'AgentsConnected',
  'AgentsSilent',
  'ApiErrors',
  'PowerSyncFailures',
] as const;
type LambdaMetric = (typeof LAMBDA_METRICS)[number];

/** Counted from the logs: the image catalog's message (`IMAGE_VERIFICATION_FAILED_MESSAGE`). */
export const IMAGE_VERIFICATION_FAILURES = 'ImageVerificationFailures';
export const IMAGE_VERIFICATION_FAILED_MESSAGE = 'image file failed verification';

/** The conductor Lambda's variable for the silence threshold (`lambda/entrypoints/conductor.ts`). */
export const AGENT_SILENT_MINUTES_ENV = 'METALPLANE_AGENT_SILENT_MINUTES';
export const DEFAULT_AGENT_SILENT_MINUTES = 5;

/** The API's 5xx rate (percent of requests, over 5 minutes) above which it alarms. */
export const API_5XX_RATE_PERCENT = 1;
/** Fewer requests than this in 5 minutes never alarm on the rate (one failed request of two). */
export const API_5XX_MIN_REQUESTS = 10;

/** The runbook of an alarm, by its short name (docs/deploy.md's anchors). */
export const runbookUrl = (name: string) => `docs/observability.md#runbook-${name}`;

export interface ObservabilityProps {
  /** The Lambdas, by a short name (`api`, `agents`, `conductor`, `imageVerify` ...). */
  readonly functions: Readonly<Record<string, lambda.Function>>;
  readonly httpApi: IHttpApi;
  readonly webSocketApi: IWebSocketApi;
  /** The WebSocket API's stage name (its metrics' `Stage` dimension). */
  readonly webSocketStageName: string;
  /** The stack's queues by definition id (`MetalplaneStack.queues`). */
  readonly queues: ReadonlyMap<string, sqs.IQueue>;
  /** The stack's tables by definition id (`MetalplaneStack.tables`). */
  readonly tables: ReadonlyMap<string, dynamodb.ITable>;
  /** The function (by its key in `functions`) whose tick emits the agent gauges. Default `conductor`. */
  readonly conductorFunction?: string;
  /** Default: context `metalplane:alarmTopicArn`; else a topic is created. */
  readonly alarmTopicArn?: string;
  /** Default: context `metalplane:alarmEmail`. */
  readonly alarmEmail?: string;
  /** Default: context `metalplane:agentSilentMinutes`, else 5. */
  readonly agentSilentMinutes?: number;
  /** Default: context `metalplane:tracing` (`true`), else off. */
  readonly tracing?: boolean;
  /**
   * Of the created topic's KMS key (the stage's `keyRemovalPolicy`): default RETAIN, as
   * every key of a prod stack.
   */
  readonly keyRemovalPolicy?: RemovalPolicy;
}

const FIVE_MINUTES = Duration.minutes(5);

export class Observability extends Construct {
  readonly topic: sns.ITopic;
  readonly dashboard: cloudwatch.Dashboard;
  /** Every alarm, by its short name (`api-5xx-rate`, `lambda-errors-api` ...). */
  readonly alarms = new Map<string, cloudwatch.Alarm>();
  private readonly prefix: string;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.prefix = stack.stackName;
    const context = (key: string): unknown => this.node.tryGetContext(`metalplane:${key}`);

    this.topic = this.alarmTopic(
      props.alarmTopicArn ?? stringOrUndefined(context('alarmTopicArn')),
      props.alarmEmail ?? stringOrUndefined(context('alarmEmail')),
      props.keyRemovalPolicy ?? RemovalPolicy.RETAIN,
    );

    const silentMinutes =
      props.agentSilentMinutes ?? (Number(context('agentSilentMinutes')) || DEFAULT_AGENT_SILENT_MINUTES);
    const tracing = props.tracing ?? String(context('tracing') ?? 'false') === 'true';
    const conductor = props.functions[props.conductorFunction ?? 'conductor'];
    conductor?.addEnvironment(AGENT_SILENT_MINUTES_ENV, String(silentMinutes));
    for (const [name, fn] of Object.entries(props.functions)) this.trace(name, fn, tracing);

    // --- alarms -------------------------------------------------------------------------
    const requests = props.httpApi.metricCount({ statistic: 'Sum', period: FIVE_MINUTES });
    const serverErrors = props.httpApi.metricServerError({ statistic: 'Sum', period: FIVE_MINUTES });
    const clientErrors = props.httpApi.metricClientError({ statistic: 'Sum', period: FIVE_MINUTES });
    const errorRate = new cloudwatch.MathExpression({
      expression: `IF(requests >= ${API_5XX_MIN_REQUESTS}, 100 * errors / requests, 0)`,
      usingMetrics: { errors: serverErrors, requests },
      label: 'API 5xx rate (%)',
      period: FIVE_MINUTES,
    });
    this.alarm('api-5xx-rate', errorRate, {
      threshold: API_5XX_RATE_PERCENT,
      summary: `More than ${API_5XX_RATE_PERCENT}% of the API's requests answered 5xx over 5 minutes.`,
    });

    const deadLetterIds = new Set([
      commandsDeadLetterQueue.id,
      ...queueDefinitions.flatMap((definition) =>
        definition.deadLetter ? [definition.deadLetter.queueId] : [],
      ),
    ]);
    const deadLetterQueues = [...props.queues].filter(([queueId]) => deadLetterIds.has(queueId));
    for (const [queueId, queue] of deadLetterQueues) {
      this.alarm(
        `dlq-${kebab(queueId)}`,
        queue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(1) }),
        {
          threshold: 0,
          summary: `The dead-letter queue ${queueId} holds messages.`,
          runbook: 'dlq-depth',
        },
      );
    }

    this.alarm('commands-expiring', this.metric('CommandsExpired', 'Sum'), {
      threshold: 0,
      summary: 'Commands expired: their deadline passed without a result from the site agent.',
    });
    this.alarm('agent-silent', this.metric('AgentsSilent', 'Maximum'), {
      threshold: 0,
      summary: `An agent sent no heartbeat for ${silentMinutes} minutes (per site: the AgentsSilent metric's site dimension).`,
    });

    for (const [name, fn] of Object.entries(props.functions)) {
      this.alarm(
        `lambda-errors-${kebab(name)}`,
        fn.metricErrors({ statistic: 'Sum', period: FIVE_MINUTES }),
        {
          threshold: 0,
          summary: `The ${name} Lambda's invocations failed (an error escaped the handler, or a timeout).`,
          runbook: 'lambda-errors',
        },
      );
      this.alarm(
        `lambda-throttles-${kebab(name)}`,
        fn.metricThrottles({ statistic: 'Sum', period: FIVE_MINUTES }),
        {
          threshold: 0,
          summary: `The ${name} Lambda was throttled (account or reserved concurrency reached).`,
          runbook: 'lambda-throttles',
        },
      );
    }

    // Counted from the logs: the catalog verifies small files in the api Lambda, large
    // ones in the image-verify Lambda; a filter on every log group counts both.
    for (const [name, fn] of Object.entries(props.functions)) {
      new logs.MetricFilter(this, `ImageVerificationFailures-${name}`, {
        logGroup: fn.logGroup,
        filterPattern: logs.FilterPattern.stringValue('$.message', '=', IMAGE_VERIFICATION_FAILED_MESSAGE),
        metricNamespace: METRICS_NAMESPACE,
        metricName: IMAGE_VERIFICATION_FAILURES,
        metricValue: '1',
        unit: cloudwatch.Unit.COUNT,
      });
    }
    const imageFailures = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: IMAGE_VERIFICATION_FAILURES,
      statistic: 'Sum',
      period: FIVE_MINUTES,
    });
    this.alarm('image-verification-failures', imageFailures, {
      threshold: 0,
      summary: "An uploaded image file failed verification (its size or SHA-256 is not the registration's).",
    });

    // --- dashboard ----------------------------------------------------------------------
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${this.prefix}-overview`,
      defaultInterval: Duration.hours(6),
    });
    const functions = Object.entries(props.functions);
    const perFunction = (metric: (fn: lambda.Function) => cloudwatch.IMetric) =>
      functions.map(([name, fn]) => withLabel(metric(fn), name));
    const webSocket = (metricName: string, statistic = 'Sum') =>
      new cloudwatch.Metric({
        namespace: 'AWS/ApiGateway',
        metricName,
        dimensionsMap: { ApiId: props.webSocketApi.apiId, Stage: props.webSocketStageName },
        statistic,
        period: FIVE_MINUTES,
        label: metricName,
      });
    // Site queues are made by the sites API, not by the stack: found by their names' prefix.
    const siteQueuePrefix = `${this.prefix}-${SITE_QUEUE_ID_PREFIX}`;

    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# ${this.prefix}\nAlarms notify the SNS topic; runbooks: docs/observability.md. Metalplane's own metrics: namespace \`${METRICS_NAMESPACE}\`.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: [...this.alarms.values()],
        width: 24,
        height: 4,
      }),
    );
    this.dashboard.addWidgets(
      graph('API requests and errors', [
        withLabel(requests, 'requests'),
        withLabel(clientErrors, '4xx'),
        withLabel(serverErrors, '5xx'),
      ]),
      graph('API 5xx rate (%)', [errorRate], {
        horizontal: [{ value: API_5XX_RATE_PERCENT, label: 'alarm' }],
      }),
      graph('API latency (ms)', [
        withLabel(props.httpApi.metricLatency({ statistic: 'p50', period: FIVE_MINUTES }), 'p50'),
        withLabel(props.httpApi.metricLatency({ statistic: 'p99', period: FIVE_MINUTES }), 'p99'),
      ]),
      graph('API 4xx/5xx per route', [
        search(
          `{${METRICS_NAMESPACE},route,statusClass} MetricName="ApiErrors"`,
          'Sum',
          `${prop('statusClass')} ${prop('route')}`,
        ),
      ]),
    );
    this.dashboard.addWidgets(
      graph(
        'Lambda errors',
        perFunction((fn) => fn.metricErrors({ statistic: 'Sum', period: FIVE_MINUTES })),
      ),
      graph(
        'Lambda throttles',
        perFunction((fn) => fn.metricThrottles({ statistic: 'Sum', period: FIVE_MINUTES })),
      ),
      graph(
        'Lambda duration p99 (ms)',
        perFunction((fn) => fn.metricDuration({ statistic: 'p99', period: FIVE_MINUTES })),
      ),
      graph(
        'Lambda concurrency (max)',
        perFunction((fn) =>
          fn.metric('ConcurrentExecutions', { statistic: 'Maximum', period: FIVE_MINUTES }),
        ),
      ),
    );
    this.dashboard.addWidgets(
      graph('Commands', [
        withLabel(this.metric('CommandsQueued', 'Sum'), 'queued'),
        withLabel(this.metric('CommandsSucceeded', 'Sum'), 'succeeded'),
        withLabel(this.metric('CommandsFailed', 'Sum'), 'failed'),
        withLabel(this.metric('CommandsExpired', 'Sum'), 'expired'),
      ]),
      graph('Dispatch latency, queued → agent (ms)', [
        withLabel(this.metric('DispatchLatency', 'p50'), 'p50'),
        withLabel(this.metric('DispatchLatency', 'p90'), 'p90'),
        withLabel(this.metric('DispatchLatency', 'Maximum'), 'max'),
      ]),
      graph('Commands failed and expired per site', [
        search(`{${METRICS_NAMESPACE},site} MetricName="CommandsFailed"`, 'Sum', `failed ${prop('site')}`),
        search(`{${METRICS_NAMESPACE},site} MetricName="CommandsExpired"`, 'Sum', `expired ${prop('site')}`),
      ]),
      graph('Dispatch latency p90 per site (ms)', [
        search(`{${METRICS_NAMESPACE},site} MetricName="DispatchLatency"`, 'p90', prop('site')),
      ]),
    );
    this.dashboard.addWidgets(
      graph(
        'Dead-letter queues (messages)',
        deadLetterQueues.map(([queueId, queue]) =>
          withLabel(
            queue.metricApproximateNumberOfMessagesVisible({
              statistic: 'Maximum',
              period: Duration.minutes(1),
            }),
            queueId,
          ),
        ),
      ),
      graph('Site command queues: oldest message (s)', [
        search(
          `{AWS/SQS,QueueName} MetricName="ApproximateAgeOfOldestMessage" "${siteQueuePrefix}"`,
          'Maximum',
          prop('QueueName'),
        ),
      ]),
      graph(
        'DynamoDB throttled requests',
        [...props.tables].flatMap(([tableId, table]) => [
          withLabel(
            table.metric('ReadThrottleEvents', { statistic: 'Sum', period: FIVE_MINUTES }),
            `${tableId} read`,
          ),
          withLabel(
            table.metric('WriteThrottleEvents', { statistic: 'Sum', period: FIVE_MINUTES }),
            `${tableId} write`,
          ),
        ]),
      ),
      graph('DynamoDB system errors', [
        ...[...props.tables].map(([tableId, table]) =>
          withLabel(table.metric('SystemErrors', { statistic: 'Sum', period: FIVE_MINUTES }), tableId),
        ),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Agents', [
        withLabel(this.metric('AgentsConnected', 'Maximum', Duration.minutes(1)), 'connected (alive)'),
        withLabel(this.metric('AgentsSilent', 'Sum', Duration.minutes(1)), `silent > ${silentMinutes} min`),
      ]),
      graph('Agent WebSocket connects / disconnects', [
        withLabel(this.metric('AgentConnections', 'Sum'), 'connects'),
        withLabel(this.metric('AgentDisconnections', 'Sum'), 'disconnects'),
      ]),
      graph('Agents WebSocket API', [
        webSocket('ConnectCount'),
        webSocket('MessageCount'),
        webSocket('ClientError'),
        webSocket('IntegrationError'),
        webSocket('ExecutionError'),
      ]),
      graph('Silent agents per site', [
        search(`{${METRICS_NAMESPACE},site} MetricName="AgentsSilent"`, 'Maximum', prop('site')),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Power sync failures (BMC reads)', [
        withLabel(this.metric('PowerSyncFailures', 'Sum'), 'all sites'),
        search(`{${METRICS_NAMESPACE},site} MetricName="PowerSyncFailures"`, 'Sum', prop('site')),
      ]),
      graph('Image verification failures', [withLabel(imageFailures, 'failures')]),
      graph('Audit records not written', [
        new cloudwatch.Metric({
          namespace: METRICS_NAMESPACE,
          metricName: 'AuditWriteFailures',
          dimensionsMap: { Service: 'metalplane-api' },
          statistic: 'Sum',
          period: FIVE_MINUTES,
          label: 'audit write failures',
        }),
      ]),
    );
  }

  /** A Metalplane metric without dimensions: the fleet's total, which the alarms watch. */
  private metric(name: LambdaMetric, statistic: string, period: Duration = FIVE_MINUTES): cloudwatch.Metric {
    return new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: name, statistic, period });
  }

  /** An alarm `> threshold` on one evaluation period, notifying the topic (and its recovery). */
  private alarm(
    name: string,
    metric: cloudwatch.IMetric,
    options: { readonly threshold: number; readonly summary: string; readonly runbook?: string },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, `Alarm-${name}`, {
      alarmName: `${this.prefix}-${name}`,
      alarmDescription: `${options.summary} Runbook: ${runbookUrl(options.runbook ?? name)}`,
      metric,
      threshold: options.threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      // No data is no trouble: no request, no command, no failure.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    const action = new actions.SnsAction(this.topic);
    alarm.addAlarmAction(action);
    alarm.addOkAction(action);
    this.alarms.set(name, alarm);
    return alarm;
  }

  private alarmTopic(
    arn: string | undefined,
    email: string | undefined,
    keyRemovalPolicy: RemovalPolicy,
  ): sns.ITopic {
    if (arn) return sns.Topic.fromTopicArn(this, 'AlarmTopic', arn);
    // Encrypted with a key CloudWatch may use (it cannot use the AWS-managed SNS key).
    const key = new kms.Key(this, 'AlarmTopicKey', {
      description: `${this.prefix}: encrypts the alarm topic's messages`,
      enableKeyRotation: true,
      removalPolicy: keyRemovalPolicy,
      pendingWindow: Duration.days(keyRemovalPolicy === RemovalPolicy.RETAIN ? 30 : 7),
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    const topic = new sns.Topic(this, 'AlarmTopic', {
      topicName: `${this.prefix}-alarms`,
      displayName: `${this.prefix} alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    if (email) topic.addSubscription(new subscriptions.EmailSubscription(email));
    new CfnOutput(this, 'AlarmTopicArn', {
      value: topic.topicArn,
      description: 'The SNS topic the alarms notify',
    });
    return topic;
  }

  /** X-Ray: active tracing and the Tracer on, or the Tracer told it is off. */
  private trace(name: string, fn: lambda.Function, tracing: boolean): void {
    fn.addEnvironment('POWERTOOLS_TRACE_ENABLED', String(tracing));
    if (!tracing || !fn.role) return;
    (fn.node.defaultChild as lambda.CfnFunction).tracingConfig = { mode: lambda.Tracing.ACTIVE };
    // A policy of its own, so that its one wildcard is suppressed alone (cdk-nag IAM5).
    const policy = new iam.Policy(this, `XRay-${name}`, {
      roles: [fn.role],
      statements: [
        new iam.PolicyStatement({
          actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
          resources: ['*'],
        }),
      ],
    });
    NagSuppressions.addResourceSuppressions(policy, [
      {
        id: 'AwsSolutions-IAM5',
        reason:
          "X-Ray's PutTraceSegments and PutTelemetryRecords take no resource ARN: only '*' is possible.",
        appliesTo: ['Resource::*'],
      },
    ]);
  }
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function kebab(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

function withLabel(metric: cloudwatch.IMetric, label: string): cloudwatch.IMetric {
  return metric instanceof cloudwatch.Metric || metric instanceof cloudwatch.MathExpression
    ? metric.with({ label })
    : metric;
}

/** A dashboard label naming a SEARCH result's dimension (`${PROP('Dim.site')}`). */
function prop(dimension: string): string {
  return ['$', `{PROP('Dim.${dimension}')}`].join('');
}

function search(query: string, statistic: string, label: string): cloudwatch.MathExpression {
  return new cloudwatch.MathExpression({
    expression: `SEARCH('${query}', '${statistic}', 300)`,
    usingMetrics: {},
    label,
    period: FIVE_MINUTES,
  });
}

function graph(
  title: string,
  left: cloudwatch.IMetric[],
  options: { readonly horizontal?: cloudwatch.HorizontalAnnotation[] } = {},
): cloudwatch.GraphWidget {
  return new cloudwatch.GraphWidget({
    title,
    left,
    width: 6,
    height: 6,
    ...(options.horizontal ? { leftAnnotations: options.horizontal } : {}),
  });
}
