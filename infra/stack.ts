/**
 * Metalplane's CDK stack: the tables, queues and bucket of `infra/resources.ts` (the
 * local bootstrap builds the same ones from the same definitions), the HTTP API in
 * front of the api Lambda, the agents' WebSocket API in front of the agents Lambda, and
 * the conductor Lambda on a one-minute schedule. Physical names are the resources.ts
 * helpers' with the stack name as prefix. Environment-agnostic: `cdk synth` needs no
 * credentials and looks nothing up.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import * as apigateway from 'aws-cdk-lib/aws-apigateway';
import {
  ApiMapping,
  DomainName,
  EndpointType,
  HttpApi,
  HttpStage,
  LogGroupLogDestination,
  SecurityPolicy,
  WebSocketApi,
  WebSocketStage,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration, WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as resourcegroups from 'aws-cdk-lib/aws-resourcegroups';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { MetalplaneEvents } from './events.ts';
import { Observability } from './observability.ts';
import {
  auditTable,
  type BucketDefinition,
  bucketName,
  commandsDeadLetterQueue,
  imagesBucket,
  imageVerifyQueue,
  type KeyAttribute,
  keyAlias,
  managementEndpointEnvVar,
  type QueueDefinition,
  queueName,
  queues,
  resourcePrefixEnvVar,
  secretsKey,
  siteCommandQueue,
  siteQueueNameWildcard,
  type TableDefinition,
  tableName,
  tables,
  webhooksTable,
  webSocketUrlEnvVar,
} from './resources.ts';
import {
  accessLogGroup,
  customDomain,
  httpAccessLogFormat,
  manageApiGatewayAccount,
  type StageSettings,
  siteTagKeys,
  stageSettings,
  suppressNagFindings,
  webSocketAccessLogFormat,
} from './security.ts';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Lifecycle rule id, the same as the local bootstrap's (the parity test compares them). */
export const abortIncompleteUploadsRuleId = 'AbortIncompleteMultipartUploads';

/**
 * Item-level DynamoDB actions of the api Lambda (tables and their indexes). No Scan: no
 * request path scans (DESIGN.md, "State"), and IAM holds it to that. Transactions are
 * authorized by these same item actions.
 */
const tableActions = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
];

/**
 * Images: presigned GET/PUT (multipart included), HEAD, delete, and listing; objects
 * under `images/` only (`images/<uuid>/<role>`, docs/images.md).
 */
export const imageObjectsPattern = 'images/*';
const bucketActions = ['s3:ListBucket', 's3:ListBucketMultipartUploads'];
const objectActions = [
  's3:GetObject',
  's3:GetObjectAttributes',
  's3:PutObject',
  's3:DeleteObject',
  's3:AbortMultipartUpload',
  's3:ListMultipartUploadParts',
];

/** Actions the api Lambda needs on site command queues, which the sites API creates. */
const siteQueueActions = [
  'sqs:CreateQueue',
  'sqs:DeleteQueue',
  'sqs:GetQueueUrl',
  'sqs:GetQueueAttributes',
  'sqs:SetQueueAttributes',
  'sqs:TagQueue',
  'sqs:SendMessage',
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibility',
];

/**
 * What the agents Lambda does with site queues: receive, delete (results), change
 * visibility, and find a queue by name. It never creates, deletes or sends.
 */
const agentQueueActions = [
  'sqs:GetQueueUrl',
  'sqs:GetQueueAttributes',
  'sqs:ReceiveMessage',
  'sqs:DeleteMessage',
  'sqs:ChangeMessageVisibility',
];

/** The conductor's tick expires commands: it deletes an expired command's message in flight. */
const conductorQueueActions = ['sqs:GetQueueUrl', 'sqs:DeleteMessage'];

/** The agents' WebSocket API stage (its URLs end in `/agents`). */
export const webSocketStageName = 'agents';

/**
 * API Gateway's throttling, the first line against a flood (the api Lambda adds a
 * per-credential rate limit and a failed-password backoff behind it, docs/security.md).
 * Context `metalplane:apiRateLimit` / `metalplane:apiBurstLimit` override the HTTP API's.
 */
export const defaultApiThrottle = { rateLimit: 200, burstLimit: 400 };
/** An agent sends a few messages a second at most; a site's worth of agents stays far below. */
export const agentsThrottle = { rateLimit: 100, burstLimit: 200 };

/** The api Lambda's actions on the audit trail: append, read, list. */
const auditActions = ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:DescribeTable'];

/** KMS actions sealing secrets (new data keys) and opening them; both bound to Metalplane's context. */
const sealActions = ['kms:GenerateDataKey'];
const openActions = ['kms:Decrypt'];

export class MetalplaneStack extends Stack {
  readonly tables = new Map<string, dynamodb.Table>();
  readonly queues = new Map<string, sqs.Queue>();
  readonly bucket: s3.Bucket;
  readonly apiFunction: nodejs.NodejsFunction;
  readonly httpApi: HttpApi;
  readonly agentsFunction: nodejs.NodejsFunction;
  readonly webSocketApi: WebSocketApi;
  readonly webSocketStage: WebSocketStage;
  readonly conductorFunction: nodejs.NodejsFunction;
  readonly imageVerifyFunction: nodejs.NodejsFunction;
  /** Seals BMC credentials and the other secrets of nodes and commands (envelope encryption). */
  readonly secretsKey: kms.Key;
  /** `dev` or `prod` (context `metalplane:stage`, default `prod`): removal policies, retention. */
  readonly stage: StageSettings;
  /** The events bus, its webhooks rule and the webhooks Lambda (infra/events.ts). */
  readonly events: MetalplaneEvents;
  readonly httpStage: HttpStage;
  /** The HTTP API's custom domain, when the context gives one. */
  readonly domainName?: DomainName;

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, props);
    // Context is checked first: a bad value fails before anything is built or bundled.
    this.stage = stageSettings(this);
    const domain = customDomain(this);
    // Everything the stack creates carries the stack's tag; the sites API's queues should
    // too (docs/deploy.md, "Per-site queues"), and the resource group below lists them.
    Tags.of(this).add(siteTagKeys.stack, this.stackName);
    this.secretsKey = new kms.Key(this, secretsKey.id, {
      alias: keyAlias(this.stackName, secretsKey),
      description: secretsKey.description,
      enableKeyRotation: true,
      // Without the key, every sealed secret is lost: it outlives a prod stack.
      removalPolicy: this.stage.keyRemovalPolicy,
      pendingWindow: Duration.days(this.stage.keyPendingWindowDays),
    });
    for (const definition of tables) this.tables.set(definition.id, this.addTable(definition));
    for (const definition of deadLettersFirst(queues)) {
      this.queues.set(definition.id, this.addQueue(definition));
    }
    this.bucket = this.addBucket(imagesBucket);

    // The agents' WebSocket API. Its stage's callback URL is the management endpoint
    // every Lambda that pushes to (or closes) an agent's socket is given.
    this.webSocketApi = new WebSocketApi(this, 'AgentsWebSocketApi', {
      apiName: `${this.stackName}-agents`,
      description: 'Metalplane site agents: commands, results, heartbeats (protocol/messages.ts)',
    });
    // WebSocket access logging needs the region's API Gateway CloudWatch Logs role.
    const apiGatewayAccount = manageApiGatewayAccount(this) ? this.addApiGatewayAccount() : undefined;
    this.webSocketStage = new WebSocketStage(this, 'AgentsWebSocketStage', {
      webSocketApi: this.webSocketApi,
      stageName: webSocketStageName,
      autoDeploy: true,
      throttle: agentsThrottle,
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogGroup(this, 'AgentsAccessLogs', this.stage)),
        format: webSocketAccessLogFormat,
      },
    });
    if (apiGatewayAccount) this.webSocketStage.node.addDependency(apiGatewayAccount.account);
    const channelEnvironment = {
      [managementEndpointEnvVar]: this.webSocketStage.callbackUrl,
    };

    this.apiFunction = this.addFunction('ApiFunction', 'ApiLogs', ['entrypoints', 'api.ts'], {
      memorySize: 512,
      timeout: Duration.seconds(29),
      environment: { ...channelEnvironment, [webSocketUrlEnvVar]: this.webSocketStage.url },
    });
    this.grantApi(this.apiFunction);
    this.grantAudit(this.apiFunction);
    // It seals what the API is given and opens secrets for agents (their HTTPS routes).
    this.grantSecrets(this.apiFunction, [...sealActions, ...openActions]);
    this.webSocketStage.grantManagementApiAccess(this.apiFunction);
    this.httpApi = new HttpApi(this, 'HttpApi', {
      apiName: this.stackName,
      defaultIntegration: new HttpLambdaIntegration('ApiIntegration', this.apiFunction),
      createDefaultStage: false,
    });
    this.httpStage = new HttpStage(this, 'HttpApiDefaultStage', {
      httpApi: this.httpApi,
      autoDeploy: true,
      throttle: {
        rateLimit: Number(this.node.tryGetContext('metalplane:apiRateLimit') ?? defaultApiThrottle.rateLimit),
        burstLimit: Number(
          this.node.tryGetContext('metalplane:apiBurstLimit') ?? defaultApiThrottle.burstLimit,
        ),
      },
      accessLogSettings: {
        destination: new LogGroupLogDestination(accessLogGroup(this, 'ApiAccessLogs', this.stage)),
        format: httpAccessLogFormat,
      },
    });
    if (domain) {
      // A regional custom domain (TLS 1.2) mapped to the HTTP API's $default stage.
      this.domainName = new DomainName(this, 'ApiDomainName', {
        domainName: domain.domainName,
        certificate: acm.Certificate.fromCertificateArn(this, 'ApiCertificate', domain.certificateArn),
        endpointType: EndpointType.REGIONAL,
        securityPolicy: SecurityPolicy.TLS_1_2,
      });
      new ApiMapping(this, 'ApiDomainMapping', {
        api: this.httpApi,
        domainName: this.domainName,
        stage: this.httpStage,
      });
    }

    this.agentsFunction = this.addFunction('AgentsFunction', 'AgentsLogs', ['entrypoints', 'agents.ts'], {
      memorySize: 512,
      timeout: Duration.seconds(29),
      environment: channelEnvironment,
    });
    this.grantTables(this.agentsFunction);
    this.grantSiteQueues(this.agentsFunction, agentQueueActions);
    // Hands commands to agents: opens their secrets (and seals what it writes).
    this.grantSecrets(this.agentsFunction, [...sealActions, ...openActions]);
    // Presigned GETs of the site's images are signed with this role: it must read them.
    this.agentsFunction.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [this.bucket.arnForObjects(imageObjectsPattern)],
      }),
    );
    this.webSocketStage.grantManagementApiAccess(this.agentsFunction);
    const integration = (name: string) => new WebSocketLambdaIntegration(name, this.agentsFunction);
    this.webSocketApi.addRoute('$connect', { integration: integration('AgentsConnect') });
    this.webSocketApi.addRoute('$disconnect', { integration: integration('AgentsDisconnect') });
    // Two-way: a `pull` is answered with the `commands` message as the route response.
    this.webSocketApi.addRoute('$default', {
      integration: integration('AgentsDefault'),
      returnResponse: true,
    });

    this.conductorFunction = this.addFunction(
      'ConductorFunction',
      'ConductorLogs',
      ['entrypoints', 'conductor.ts'],
      {
        memorySize: 256,
        timeout: Duration.seconds(55),
        environment: {},
      },
    );
    this.grantTables(this.conductorFunction);
    this.grantSiteQueues(this.conductorFunction, conductorQueueActions);
    // Queues commands (a deploy's callback token is sealed); never opens a secret.
    this.grantSecrets(this.conductorFunction, sealActions);
    // It reads the commands' dead-letter queue to fail what could not be delivered.
    this.queues.get(commandsDeadLetterQueue.id)!.grantConsumeMessages(this.conductorFunction);
    new events.Rule(this, 'ConductorTick', {
      description: 'The conductor tick: expires overdue agent commands',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(this.conductorFunction, { retryAttempts: 0 })],
    });

    // Verification of large uploads, off the API's 29 s (docs/images.md): queued by the
    // api Lambda when an upload completes, one message per file.
    this.imageVerifyFunction = this.addFunction(
      'ImageVerifyFunction',
      'ImageVerifyLogs',
      ['entrypoints', 'verify.ts'],
      { memorySize: 1024, timeout: Duration.minutes(15), environment: channelEnvironment },
    );
    this.grantTables(this.imageVerifyFunction);
    this.imageVerifyFunction.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:DeleteObject'],
        resources: [this.bucket.arnForObjects(imageObjectsPattern)],
      }),
    );
    this.webSocketStage.grantManagementApiAccess(this.imageVerifyFunction);
    const verifyQueue = this.queues.get(imageVerifyQueue.id)!;
    this.imageVerifyFunction.addEventSource(
      new SqsEventSource(verifyQueue, { batchSize: 1, reportBatchItemFailures: true }),
    );
    verifyQueue.grantSendMessages(this.apiFunction);

    new CfnOutput(this, 'ApiUrl', { value: `${this.httpApi.apiEndpoint}/` });
    new CfnOutput(this, 'AgentsWebSocketUrl', { value: this.webSocketStage.url });
    if (this.domainName) {
      new CfnOutput(this, 'ApiCustomDomainUrl', { value: `https://${domain!.domainName}/` });
      new CfnOutput(this, 'ApiCustomDomainTarget', {
        description: 'CNAME / alias target of the custom domain (Route 53 or your DNS)',
        value: this.domainName.regionalDomainName,
      });
    }

    // Per-site queues are created at run time (docs/deploy.md, "Per-site queues"): this
    // group lists every queue tagged with the stack's name, the static ones and the
    // sites' (when tagged), for the console, drift reviews and cleanup after a destroy.
    new resourcegroups.CfnGroup(this, 'QueuesGroup', {
      name: `${this.stackName}-queues`,
      description: `SQS queues of the Metalplane stack ${this.stackName} including per-site command queues`,
      resourceQuery: {
        type: 'TAG_FILTERS_1_0',
        query: {
          resourceTypeFilters: ['AWS::SQS::Queue'],
          tagFilters: [{ key: siteTagKeys.stack, values: [this.stackName] }],
        },
      },
    });

    // Events bus, its rule to the webhooks, and the webhooks Lambda (docs/events.md).
    this.events = new MetalplaneEvents(this, 'Events', {
      tables: this.tables,
      queues: this.queues,
      secretsKey: this.secretsKey,
      publishers: [this.apiFunction, this.agentsFunction, this.conductorFunction, this.imageVerifyFunction],
      logRetention: this.stage.logRetention,
      logRemovalPolicy: this.stage.logRemovalPolicy,
    });

    // Dashboard and alarms (to the SNS topic of context, else one of the stack's):
    // infra/observability.ts, docs/observability.md.
    new Observability(this, 'Observability', {
      functions: {
        api: this.apiFunction,
        agents: this.agentsFunction,
        conductor: this.conductorFunction,
        imageVerify: this.imageVerifyFunction,
        webhooks: this.events.webhooksFunction,
      },
      httpApi: this.httpApi,
      webSocketApi: this.webSocketApi,
      webSocketStageName,
      queues: this.queues,
      tables: this.tables,
      keyRemovalPolicy: this.stage.keyRemovalPolicy,
    });

    // Last, so it sees every construct above: cdk-nag findings not fixed, with reasons.
    suppressNagFindings({
      functions: [
        this.apiFunction,
        this.agentsFunction,
        this.conductorFunction,
        this.imageVerifyFunction,
        this.events.webhooksFunction,
      ],
      // Dead-letter targets: of the static queues and of the sites' (created at run time).
      deadLetterQueues: [...queues, siteCommandQueue('*')].flatMap((definition) =>
        definition.deadLetter ? [this.queues.get(definition.deadLetter.queueId)!] : [],
      ),
      bucket: this.bucket,
      httpApi: this.httpApi,
      webSocketApi: this.webSocketApi,
      ...(apiGatewayAccount ? { apiGatewayCloudWatchRole: apiGatewayAccount.role } : {}),
    });
  }

  /**
   * The region's API Gateway account settings: the role API Gateway writes WebSocket
   * access logs with (HTTP APIs need none). Context `metalplane:apiGatewayCloudWatchRole=false`
   * leaves an existing one alone.
   */
  private addApiGatewayAccount(): { role: iam.Role; account: apigateway.CfnAccount } {
    const role = new iam.Role(this, 'ApiGatewayCloudWatchRole', {
      assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      managedPolicies: [
        iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs'),
      ],
    });
    // Kept when the stack goes: the account setting would otherwise name a deleted role.
    role.applyRemovalPolicy(RemovalPolicy.RETAIN);
    const account = new apigateway.CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: role.roleArn });
    return { role, account };
  }

  private addTable(definition: TableDefinition): dynamodb.Table {
    const table = new dynamodb.Table(this, definition.id, {
      tableName: tableName(this.stackName, definition),
      partitionKey: attribute(definition.partitionKey),
      ...(definition.sortKey ? { sortKey: attribute(definition.sortKey) } : {}),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      ...(definition.ttlAttribute ? { timeToLiveAttribute: definition.ttlAttribute } : {}),
      deletionProtection: this.stage.tableDeletionProtection,
      removalPolicy: this.stage.dataRemovalPolicy,
    });
    for (const index of definition.indexes) {
      table.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: attribute(index.partitionKey),
        ...(index.sortKey ? { sortKey: attribute(index.sortKey) } : {}),
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    return table;
  }

  private addQueue(definition: QueueDefinition): sqs.Queue {
    const deadLetterId = definition.deadLetter?.queueId;
    const deadLetterQueue = deadLetterId === undefined ? undefined : this.queues.get(deadLetterId);
    if (deadLetterId !== undefined && !deadLetterQueue) {
      throw new Error(`queue ${definition.id}: no queue ${deadLetterId}`);
    }
    return buildQueue(this, this.stackName, definition, deadLetterQueue);
  }

  private addBucket(definition: BucketDefinition): s3.Bucket {
    return new s3.Bucket(this, definition.id, {
      bucketName: bucketName(this.stackName, definition),
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      lifecycleRules: [
        {
          id: abortIncompleteUploadsRuleId,
          enabled: true,
          abortIncompleteMultipartUploadAfter: Duration.days(definition.abortIncompleteMultipartUploadDays),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /** A Node.js 24 arm64 Lambda from `lambda/<entry>`, esbuild-bundled as ESM, with its log group. */
  private addFunction(
    id: string,
    logGroupId: string,
    entry: readonly string[],
    options: { memorySize: number; timeout: Duration; environment: Record<string, string> },
  ): nodejs.NodejsFunction {
    return new nodejs.NodejsFunction(this, id, {
      entry: join(projectRoot, 'lambda', ...entry),
      handler: 'handler',
      projectRoot,
      depsLockFilePath: join(projectRoot, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_24_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: options.memorySize,
      timeout: options.timeout,
      environment: {
        ...this.resourceEnvironment(),
        ...options.environment,
        NODE_OPTIONS: '--enable-source-maps',
      },
      logGroup: new logs.LogGroup(this, logGroupId, {
        retention: this.stage.logRetention,
        removalPolicy: this.stage.logRemovalPolicy,
      }),
      bundling: {
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        format: nodejs.OutputFormat.ESM,
        target: 'node24',
        mainFields: ['module', 'main'],
        // Bundled CommonJS dependencies may call require(); ESM has none.
        banner:
          "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
        forceDockerBundling: false,
      },
    });
  }

  /** Each definition's envVar → physical name (queues by name, as `local/bootstrap.ts`). */
  private resourceEnvironment(): Record<string, string> {
    const environment: Record<string, string> = { [resourcePrefixEnvVar]: this.stackName };
    for (const definition of tables)
      environment[definition.envVar] = this.tables.get(definition.id)!.tableName;
    for (const definition of queues) {
      if (definition.envVar) environment[definition.envVar] = this.queues.get(definition.id)!.queueName;
    }
    environment[imagesBucket.envVar] = this.bucket.bucketName;
    environment[secretsKey.envVar] = this.secretsKey.keyArn;
    return environment;
  }

  /** KMS `actions` on the secrets key, only with Metalplane's encryption context. */
  private grantSecrets(fn: lambda.IFunction, actions: readonly string[]): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [...actions],
        resources: [this.secretsKey.keyArn],
        conditions: { StringEquals: { 'kms:EncryptionContext:purpose': 'metalplane-secrets' } },
      }),
    );
  }

  /** Every table but the audit trail, which only the api Lambda touches (`grantAudit`). */
  /**
   * Every table but the audit trail (`grantAudit`), and but the webhooks' unless asked:
   * only the api Lambda manages subscriptions (the webhooks Lambda has its own grants).
   */
  private grantTables(fn: lambda.IFunction, options: { webhooks?: boolean } = {}): void {
    for (const [id, table] of this.tables) {
      if (id === auditTable.id || (id === webhooksTable.id && !options.webhooks)) continue;
      table.grant(fn, ...tableActions);
    }
  }

  /** Append and read only: no code path may rewrite or delete an audit record (TTL expires them). */
  private grantAudit(fn: lambda.IFunction): void {
    this.tables.get(auditTable.id)!.grant(fn, ...auditActions);
  }

  /** `actions` on the site command queues only (`<stack>-SiteCommands-*.fifo`). */
  private grantSiteQueues(fn: lambda.IFunction, actions: readonly string[]): void {
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [...actions],
        resources: [this.formatArn({ service: 'sqs', resource: siteQueueNameWildcard(this.stackName) })],
      }),
    );
  }

  private grantApi(fn: lambda.IFunction): void {
    this.grantTables(fn, { webhooks: true });
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: bucketActions, resources: [this.bucket.bucketArn] }),
    );
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: objectActions,
        resources: [this.bucket.arnForObjects(imageObjectsPattern)],
      }),
    );
    for (const queue of this.queues.values()) queue.grant(fn, 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes');
    this.grantSiteQueues(fn, siteQueueActions);
  }
}

/** The SQS queue of `definition`, named from `prefix`, dead-lettering to `deadLetterQueue`. */
export function buildQueue(
  scope: Construct,
  prefix: string,
  definition: QueueDefinition,
  deadLetterQueue?: sqs.IQueue,
): sqs.Queue {
  const maxReceiveCount = definition.deadLetter?.maxReceiveCount;
  return new sqs.Queue(scope, definition.id, {
    queueName: queueName(prefix, definition),
    ...(definition.fifo ? { fifo: true } : {}),
    visibilityTimeout: Duration.seconds(definition.visibilityTimeoutSeconds),
    retentionPeriod: Duration.seconds(definition.retentionSeconds),
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    ...(deadLetterQueue && maxReceiveCount
      ? { deadLetterQueue: { queue: deadLetterQueue, maxReceiveCount } }
      : {}),
  });
}

function attribute(key: KeyAttribute): dynamodb.Attribute {
  const types = {
    S: dynamodb.AttributeType.STRING,
    N: dynamodb.AttributeType.NUMBER,
    B: dynamodb.AttributeType.BINARY,
  };
  return { name: key.name, type: types[key.type] };
}

function deadLettersFirst(definitions: readonly QueueDefinition[]): QueueDefinition[] {
  return [...definitions].sort((a, b) => Number(!!a.deadLetter) - Number(!!b.deadLetter));
}
