/**
 * Public AWS prices the cost bench (`bench/cost.ts`) turns its request counts into
 * dollars with: us-east-1, on-demand, list prices of the first volume tier, free tiers
 * ignored. Written down from the services' public pricing pages as published in 2025
 * (DynamoDB's on-demand prices are the ones in effect since the cut of 2024-11-01); not
 * fetched at run time. Update the figure and the date together when a page changes.
 */

export const PRICES_AS_OF = '2025 (us-east-1 list prices, first tier, no free tier)';

export interface Price {
  /** Dollars per one unit. */
  readonly usd: number;
  readonly unit: string;
  readonly source: string;
}

const per = (usd: number, count: number, unit: string, source: string): Price => ({
  usd: usd / count,
  unit,
  source,
});

export const PRICES = {
  /** On-demand: one read request unit = one strongly consistent read of ≤ 4 KB (two eventually consistent). */
  dynamoReadRequestUnit: per(
    0.125,
    1e6,
    'RRU',
    'aws.amazon.com/dynamodb/pricing/on-demand/ ($0.125 per million read request units)',
  ),
  /** On-demand: one write request unit = one write of ≤ 1 KB (a transactional write takes two). */
  dynamoWriteRequestUnit: per(
    0.625,
    1e6,
    'WRU',
    'aws.amazon.com/dynamodb/pricing/on-demand/ ($0.625 per million write request units)',
  ),
  /** Every 64 KB chunk of a request's payload is one request. */
  sqsStandardRequest: per(
    0.4,
    1e6,
    'request',
    'aws.amazon.com/sqs/pricing/ (standard: $0.40 per million requests)',
  ),
  sqsFifoRequest: per(0.5, 1e6, 'request', 'aws.amazon.com/sqs/pricing/ (FIFO: $0.50 per million requests)'),
  lambdaRequest: per(0.2, 1e6, 'invocation', 'aws.amazon.com/lambda/pricing/ ($0.20 per million requests)'),
  /** Arm (Graviton), first 7.5 billion GB-s a month; duration billed per 1 ms. */
  lambdaArmGbSecond: per(
    0.0000133334,
    1,
    'GB-s',
    'aws.amazon.com/lambda/pricing/ (Arm: $0.0000133334 per GB-second)',
  ),
  /** HTTP API, first 300 million a month; metered in 512 KB increments. */
  httpApiRequest: per(
    1.0,
    1e6,
    'request',
    'aws.amazon.com/api-gateway/pricing/ (HTTP APIs: $1.00 per million requests)',
  ),
  /** WebSocket API messages sent and received, metered in 32 KB increments, first billion a month. */
  webSocketMessage: per(
    1.0,
    1e6,
    'message',
    'aws.amazon.com/api-gateway/pricing/ (WebSocket APIs: $1.00 per million messages)',
  ),
  webSocketConnectionMinute: per(
    0.25,
    1e6,
    'connection-minute',
    'aws.amazon.com/api-gateway/pricing/ (WebSocket APIs: $0.25 per million connection minutes)',
  ),
  /** S3 Standard PUT, COPY, POST, LIST. */
  s3Tier1Request: per(
    0.005,
    1000,
    'request',
    'aws.amazon.com/s3/pricing/ (S3 Standard: $0.005 per 1,000 PUT, COPY, POST, LIST requests)',
  ),
  /** S3 Standard GET, SELECT and all other requests (DELETE is free). */
  s3Tier2Request: per(
    0.0004,
    1000,
    'request',
    'aws.amazon.com/s3/pricing/ (S3 Standard: $0.0004 per 1,000 GET, SELECT and all other requests)',
  ),
  /** Data transfer out of AWS to the internet, first 10 TB a month (after the first 100 GB free). */
  dataTransferOutGb: per(
    0.09,
    1,
    'GB',
    'aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer ($0.09 per GB out to the internet)',
  ),
  /** CloudWatch Logs, Standard log class, ingestion (what Lambda's log lines cost). */
  logsIngestedGb: per(
    0.5,
    1,
    'GB',
    'aws.amazon.com/cloudwatch/pricing/ (Logs, Standard: $0.50 per GB ingested)',
  ),
  /** Custom events on an event bus, 64 KB chunks (scheduled rules' own invocations are free). */
  eventBridgeEvent: per(
    1.0,
    1e6,
    'event',
    'aws.amazon.com/eventbridge/pricing/ ($1.00 per million custom events published)',
  ),
  kmsRequest: per(0.03, 10_000, 'request', 'aws.amazon.com/kms/pricing/ ($0.03 per 10,000 requests)'),
  /** PutMetricData and other CloudWatch API requests (EMF metrics in logs are priced as logs). */
  cloudWatchApiRequest: per(
    0.01,
    1000,
    'request',
    'aws.amazon.com/cloudwatch/pricing/ ($0.01 per 1,000 metric API requests)',
  ),
} as const satisfies Record<string, Price>;

export type PriceName = keyof typeof PRICES;
