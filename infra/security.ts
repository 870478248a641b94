/**
 * What makes the stack one a security reviewer signs (issue 16, docs/deploy.md):
 *
 * - the deployment stage (`-c metalplane:stage=dev|prod`, default `prod`) and what it
 *   decides: removal policies (nothing holding data is ever deleted in `prod`), table
 *   deletion protection, log retention;
 * - the optional custom domain of the HTTP API (`metalplane:domainName` +
 *   `metalplane:certificateArn`), and why there is no WAF context (see `wafContextKeys`);
 * - the API Gateway access-log formats;
 * - the tag that tracks the per-site queues the sites API creates at run time;
 * - every cdk-nag (AwsSolutions) finding the stack does not fix, suppressed with its
 *   reason (`suppressNagFindings`): applied by the stack itself, so `cdk synth` with the
 *   AwsSolutions checks, the tests (test/unit/infra-nag.test.ts) and a reviewer see the
 *   same list.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as logs from 'aws-cdk-lib/aws-logs';
import { NagSuppressions } from 'cdk-nag';
import type { Construct, IConstruct } from 'constructs';

/** Context keys read by the stack (all optional). */
export const contextKeys = {
  stage: 'metalplane:stage',
  domainName: 'metalplane:domainName',
  certificateArn: 'metalplane:certificateArn',
  logRetentionDays: 'metalplane:logRetentionDays',
  accessLogRetentionDays: 'metalplane:accessLogRetentionDays',
  apiGatewayCloudWatchRole: 'metalplane:apiGatewayCloudWatchRole',
} as const;

/**
 * Context keys that ask for a WAF. AWS WAF web ACLs attach to REST APIs, CloudFront,
 * ALBs, AppSync, Cognito, App Runner and Verified Access, not to API Gateway HTTP or
 * WebSocket APIs (the two APIs here), so the stack refuses them rather than deploy
 * something that looks protected and is not; docs/deploy.md, "WAF", gives the options.
 */
export const wafContextKeys = ['metalplane:waf', 'metalplane:wafAclArn'] as const;

export type StageName = 'dev' | 'prod';

export interface StageSettings {
  readonly name: StageName;
  /** Tables, the images bucket, the secrets key: what holds data. */
  readonly dataRemovalPolicy: RemovalPolicy;
  /** The KMS key: without it every sealed secret is unreadable. */
  readonly keyRemovalPolicy: RemovalPolicy;
  readonly keyPendingWindowDays: number;
  /** Lambda and API access log groups. */
  readonly logRemovalPolicy: RemovalPolicy;
  readonly tableDeletionProtection: boolean;
  readonly logRetention: logs.RetentionDays;
  readonly accessLogRetention: logs.RetentionDays;
}

/**
 * `prod` (the default, so a deployment that forgets the context is the safe one): every
 * data-holding resource is retained when removed from the stack or when the stack is
 * destroyed, tables refuse DeleteTable, logs are kept. `dev`: tables, key and logs go with
 * the stack; the bucket is retained in both (CloudFormation cannot delete a bucket that
 * still holds images, and emptying it would take a custom-resource Lambda).
 */
const stages: Record<StageName, StageSettings> = {
  prod: {
    name: 'prod',
    dataRemovalPolicy: RemovalPolicy.RETAIN,
    keyRemovalPolicy: RemovalPolicy.RETAIN,
    keyPendingWindowDays: 30,
    logRemovalPolicy: RemovalPolicy.RETAIN,
    tableDeletionProtection: true,
    logRetention: logs.RetentionDays.THREE_MONTHS,
    accessLogRetention: logs.RetentionDays.ONE_YEAR,
  },
  dev: {
    name: 'dev',
    dataRemovalPolicy: RemovalPolicy.DESTROY,
    keyRemovalPolicy: RemovalPolicy.DESTROY,
    keyPendingWindowDays: 7,
    logRemovalPolicy: RemovalPolicy.DESTROY,
    tableDeletionProtection: false,
    logRetention: logs.RetentionDays.ONE_WEEK,
    accessLogRetention: logs.RetentionDays.ONE_WEEK,
  },
};

/** The stage of `scope`'s context, with the retention overrides applied. */
export function stageSettings(scope: Construct): StageSettings {
  const raw = scope.node.tryGetContext(contextKeys.stage) ?? 'prod';
  if (raw !== 'dev' && raw !== 'prod') {
    throw new Error(`context ${contextKeys.stage} must be "dev" or "prod", not ${JSON.stringify(raw)}`);
  }
  for (const key of wafContextKeys) {
    if (scope.node.tryGetContext(key) !== undefined) {
      throw new Error(
        `context ${key}: AWS WAF cannot be associated with API Gateway HTTP or WebSocket APIs; ` +
          'see docs/deploy.md, "WAF"',
      );
    }
  }
  const settings = stages[raw as StageName];
  return {
    ...settings,
    logRetention: retentionContext(scope, contextKeys.logRetentionDays) ?? settings.logRetention,
    accessLogRetention:
      retentionContext(scope, contextKeys.accessLogRetentionDays) ?? settings.accessLogRetention,
  };
}

function retentionContext(scope: Construct, key: string): logs.RetentionDays | undefined {
  const raw = scope.node.tryGetContext(key);
  if (raw === undefined) return undefined;
  const days = Number(raw);
  if (!(Object.values(logs.RetentionDays) as unknown[]).includes(days)) {
    throw new Error(`context ${key}: ${JSON.stringify(raw)} is not a CloudWatch Logs retention (days)`);
  }
  return days as logs.RetentionDays;
}

export interface CustomDomain {
  readonly domainName: string;
  readonly certificateArn: string;
}

/**
 * The HTTP API's custom domain, when both context values are given (the certificate is a
 * regional ACM certificate, in the stack's region, covering `domainName`); one without the
 * other is an error.
 */
export function customDomain(scope: Construct): CustomDomain | undefined {
  const domainName = scope.node.tryGetContext(contextKeys.domainName);
  const certificateArn = scope.node.tryGetContext(contextKeys.certificateArn);
  if (domainName === undefined && certificateArn === undefined) return undefined;
  if (
    typeof domainName !== 'string' ||
    typeof certificateArn !== 'string' ||
    !domainName ||
    !certificateArn
  ) {
    throw new Error(`context ${contextKeys.domainName} and ${contextKeys.certificateArn} go together`);
  }
  if (!/^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/.test(certificateArn)) {
    throw new Error(`context ${contextKeys.certificateArn}: not an ACM certificate ARN: ${certificateArn}`);
  }
  return { domainName, certificateArn };
}

/**
 * Whether the stack sets the region's API Gateway CloudWatch Logs role (`AWS::ApiGateway::Account`),
 * which WebSocket API access logging needs. One per account and region: set the context to
 * `false` when another stack (or the console) already manages it.
 */
export function manageApiGatewayAccount(scope: Construct): boolean {
  const raw = scope.node.tryGetContext(contextKeys.apiGatewayCloudWatchRole);
  return !(raw === false || raw === 'false');
}

/** HTTP API access log: one JSON object a request (no bodies, no headers: no credentials). */
export const httpAccessLogFormat = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    requestTime: '$context.requestTimeEpoch',
    sourceIp: '$context.identity.sourceIp',
    userAgent: '$context.identity.userAgent',
    method: '$context.httpMethod',
    path: '$context.path',
    routeKey: '$context.routeKey',
    protocol: '$context.protocol',
    status: '$context.status',
    responseLength: '$context.responseLength',
    latency: '$context.responseLatency',
    integrationLatency: '$context.integrationLatency',
    integrationError: '$context.integrationErrorMessage',
    error: '$context.error.message',
  }),
);

/** Agents' WebSocket API access log: one JSON object a connect, disconnect or message. */
export const webSocketAccessLogFormat = AccessLogFormat.custom(
  JSON.stringify({
    requestId: '$context.requestId',
    requestTime: '$context.requestTimeEpoch',
    sourceIp: '$context.identity.sourceIp',
    eventType: '$context.eventType',
    routeKey: '$context.routeKey',
    connectionId: '$context.connectionId',
    status: '$context.status',
    latency: '$context.integrationLatency',
    integrationError: '$context.integration.error',
    error: '$context.error.message',
  }),
);

/**
 * Tag keys of what the stack cannot hold in its template: the per-site command queues
 * (`<stack>-SiteCommands-<site>.fifo`), created by the sites API at run time. The stack
 * tags everything it creates with `siteTagKeys.stack`; the sites API should tag each site
 * queue with both (docs/deploy.md, "Per-site queues"), and the stack's resource group
 * (`<stack>-queues`) lists every queue of the deployment by that tag.
 */
export { siteTagKeys } from './resources.ts';

/** A reason with the rule it answers, as cdk-nag wants it. */
interface Suppression {
  readonly id: string;
  readonly reason: string;
  readonly appliesTo?: (string | { regex: string })[];
}

/**
 * The findings the stack does not fix, each with its reason, on the constructs they are
 * about (never stack-wide, so a new resource's finding is not hidden).
 */
export function suppressNagFindings(parts: {
  readonly functions: readonly IConstruct[];
  readonly deadLetterQueues: readonly IConstruct[];
  readonly bucket: IConstruct;
  readonly httpApi: IConstruct;
  readonly webSocketApi: IConstruct;
  readonly apiGatewayCloudWatchRole?: IConstruct;
}): void {
  const functionSuppressions: Suppression[] = [
    {
      id: 'AwsSolutions-IAM4',
      reason:
        "AWSLambdaBasicExecutionRole: CloudWatch Logs writes only (CreateLogGroup, CreateLogStream, PutLogEvents); each function logs to its own stack-managed log group, and AWS maintains the policy's action list.",
      appliesTo: ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole'],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        'Site command queues (<stack>-SiteCommands-*.fifo) are created by the sites API at run time, one per site, so their ARNs are not known at deploy time; the wildcard stays under the stack-name prefix and the .fifo suffix (docs/deploy.md, "Per-site queues").',
      appliesTo: [
        {
          regex:
            '/^Resource::arn:<AWS::Partition>:sqs:<AWS::Region>:<AWS::AccountId>:.*-SiteCommands-\\*\\.fifo$/',
        },
      ],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "Image objects: presigned GET/PUT, verification and deletion of images/<uuid>/<role>, whose keys are created at run time; the wildcard is limited to the images/ prefix of the stack's own bucket (docs/images.md).",
      appliesTo: [{ regex: '/^Resource::<Images[A-Za-z0-9]*\\.Arn>/images/\\*$/' }],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "DynamoDB index ARNs (<table>/index/*): every table's GSIs are queried (listings without scans, DESIGN.md 'State'); the grant is CDK's Table.grant, per table of this stack only.",
      appliesTo: [{ regex: '/^Resource::<[A-Za-z0-9]+\\.Arn>/index/\\*$/' }],
    },
    {
      id: 'AwsSolutions-IAM5',
      reason:
        "execute-api:ManageConnections on <agents API>/agents/*/@connections/*: connection ids are assigned by API Gateway when an agent connects; the grant is CDK's WebSocketStage.grantManagementApiAccess, for this API's stage only.",
      appliesTo: [
        {
          regex:
            '/^Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<AgentsWebSocketApi[A-Za-z0-9]*>/agents/\\*/@connections/\\*$/',
        },
      ],
    },
  ];
  NagSuppressions.addResourceSuppressions([...parts.functions], functionSuppressions, true);

  NagSuppressions.addResourceSuppressions(
    [...parts.deadLetterQueues],
    [
      {
        id: 'AwsSolutions-SQS3',
        reason:
          'This queue is itself a dead-letter queue (site command queues and the image-verify queue redrive into it); a dead-letter queue of a dead-letter queue would only move the same messages again. Its depth is what the operator watches.',
      },
    ],
  );

  NagSuppressions.addResourceSuppressions(parts.bucket, [
    {
      id: 'AwsSolutions-S1',
      reason:
        'Server access logs need a second bucket per deployment, which the template does not create (the local stack builds the same single bucket, test/integration/resources-parity.test.ts). Objects are only reached through presigned URLs the api and agents Lambdas sign after authenticating the caller, and every such request is in the API access log; use CloudTrail S3 data events on this bucket where an object-level trail is required (docs/deploy.md).',
    },
  ]);

  NagSuppressions.addResourceSuppressions(
    [parts.httpApi, parts.webSocketApi],
    [
      {
        id: 'AwsSolutions-APIG4',
        reason:
          'No API Gateway authorizer by design: the api Lambda authenticates every route itself (HTTP Basic against the users table, bearer tokens, per-credential rate limits and lockout; docs/security.md), and agents authenticate on the WebSocket with their mpa_ credential (Authorization: Bearer), checked by the agents Lambda at $connect and again on every message (docs/agent.md).',
      },
    ],
    true,
  );

  if (parts.apiGatewayCloudWatchRole) {
    NagSuppressions.addResourceSuppressions(parts.apiGatewayCloudWatchRole, [
      {
        id: 'AwsSolutions-IAM4',
        reason:
          "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-managed policy API Gateway's account-level logging role is documented with; the role is assumable by apigateway.amazonaws.com only.",
        appliesTo: [
          'Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs',
        ],
      },
    ]);
  }
}

/** A CloudWatch Logs log group for an API stage's access log. */
export function accessLogGroup(scope: Construct, id: string, settings: StageSettings): logs.LogGroup {
  return new logs.LogGroup(scope, id, {
    retention: settings.accessLogRetention,
    removalPolicy: settings.logRemovalPolicy,
  });
}
