/**
 * Events and webhooks on AWS (docs/events.md), a construct the stack adds:
 *
 * - the events bus `<stack>-Events`, to which the Lambdas that change state (api, agents,
 *   conductor, image verify) may `events:PutEvents`, and nothing else;
 * - its rule `<stack>-Webhooks` (source `metalplane`) sending every event to the
 *   `WebhookEvents` queue (infra/resources.ts; the local bootstrap builds the same);
 * - the webhooks Lambda (`lambda/entrypoints/webhooks.ts`) on that queue and on
 *   `WebhookDeliveries`: it fans each event out into deliveries and POSTs them, signed,
 *   re-queueing failures with a delay (exponential backoff) and dead-lettering the last.
 *
 * Least privilege: the webhooks Lambda reads and writes the Webhooks table only (no Scan),
 * sends only to the deliveries and dead-letter queues, and only opens secrets
 * (`kms:Decrypt` under Metalplane's encryption context); it reads no other table.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import {
  eventBus,
  eventBusName,
  resourcePrefixEnvVar,
  secretsKey,
  webhookDeadLetterQueue,
  webhookDeliveriesQueue,
  webhookEventsQueue,
  webhookRuleName,
  webhooksTable,
} from './resources.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The source of every Metalplane event (lambda/domain/events/events.ts). */
export const EVENT_SOURCE = 'metalplane';

export interface MetalplaneEventsProps {
  /** The stack's tables and queues by definition id (`MetalplaneStack.tables` / `.queues`). */
  readonly tables: ReadonlyMap<string, dynamodb.ITable>;
  readonly queues: ReadonlyMap<string, sqs.IQueue>;
  /** The key sealing secrets: webhook secrets are sealed with it too. */
  readonly secretsKey: kms.IKey;
  /** The Lambdas that publish events (state changes, command ends, agent sockets, images). */
  readonly publishers: readonly lambda.IFunction[];
  /** The webhooks Lambda's log group: the stage's retention and removal policy. */
  readonly logRetention?: logs.RetentionDays;
  readonly logRemovalPolicy?: RemovalPolicy;
  /** Retries before a delivery is dead-lettered, and the first backoff (doubling). */
  readonly maxAttempts?: number;
  readonly backoffBaseSeconds?: number;
}

export class MetalplaneEvents extends Construct {
  readonly bus: events.EventBus;
  readonly rule: events.Rule;
  readonly webhooksFunction: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: MetalplaneEventsProps) {
    super(scope, id);
    const prefix = Stack.of(this).stackName;
    const need = <T>(map: ReadonlyMap<string, T>, key: string): T => {
      const found = map.get(key);
      if (!found) throw new Error(`MetalplaneEvents: the stack has no ${key}`);
      return found;
    };
    const table = need(props.tables, webhooksTable.id);
    const eventsQueue = need(props.queues, webhookEventsQueue.id);
    const deliveriesQueue = need(props.queues, webhookDeliveriesQueue.id);
    const deadLetterQueue = need(props.queues, webhookDeadLetterQueue.id);

    this.bus = new events.EventBus(this, eventBus.id, { eventBusName: eventBusName(prefix) });
    for (const publisher of props.publishers) this.bus.grantPutEventsTo(publisher);
    this.rule = new events.Rule(this, 'WebhooksRule', {
      ruleName: webhookRuleName(prefix),
      eventBus: this.bus,
      description: 'Metalplane events to the webhooks (docs/events.md)',
      eventPattern: { source: [EVENT_SOURCE] },
      targets: [new targets.SqsQueue(eventsQueue)],
    });

    this.webhooksFunction = new nodejs.NodejsFunction(this, 'WebhooksFunction', {
      entry: join(projectRoot, 'lambda', 'entrypoints', 'webhooks.ts'),
      handler: 'handler',
      projectRoot,
      depsLockFilePath: join(projectRoot, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 256,
      // Under the queues' 60 s visibility: a batch of 5 deliveries, 10 s each at most.
      timeout: Duration.seconds(55),
      environment: {
        [resourcePrefixEnvVar]: prefix,
        [webhooksTable.envVar]: table.tableName,
        [secretsKey.envVar]: props.secretsKey.keyArn,
        METALPLANE_WEBHOOK_MAX_ATTEMPTS: String(props.maxAttempts ?? 6),
        METALPLANE_WEBHOOK_BACKOFF_SECONDS: String(props.backoffBaseSeconds ?? 30),
        NODE_OPTIONS: '--enable-source-maps',
      },
      logGroup: new logs.LogGroup(this, 'WebhooksLogs', {
        // The stage's, as the stack's other Lambdas' (kept in prod).
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: props.logRemovalPolicy ?? RemovalPolicy.RETAIN,
      }),
      bundling: {
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        format: nodejs.OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        forceDockerBundling: false,
      },
    });
    const fn = this.webhooksFunction;
    table.grant(fn, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query');
    for (const queue of [deliveriesQueue, deadLetterQueue])
      queue.grant(fn, 'sqs:GetQueueUrl', 'sqs:SendMessage');
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: [props.secretsKey.keyArn],
        conditions: { StringEquals: { 'kms:EncryptionContext:purpose': 'metalplane-secrets' } },
      }),
    );
    fn.addEventSource(new SqsEventSource(eventsQueue, { batchSize: 10, reportBatchItemFailures: true }));
    fn.addEventSource(
      new SqsEventSource(deliveriesQueue, {
        batchSize: 5,
        reportBatchItemFailures: true,
        maxConcurrency: 10,
      }),
    );
  }
}
