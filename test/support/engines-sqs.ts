/**
 * Setup file of `vitest.engines.config.ts`: routes this test file's SQS calls to the
 * second SQS engine (ElasticMQ), leaving DynamoDB and S3 on moto. The AWS SDK reads the
 * per-service `AWS_ENDPOINT_URL_SQS` before `AWS_ENDPOINT_URL`, which `test/support/aws.ts`
 * sets to moto; clients built with an explicit endpoint are not affected.
 */
import { inject } from 'vitest';

const sqs = inject('engines')?.sqs;
if (sqs) process.env.AWS_ENDPOINT_URL_SQS = sqs.endpoint;
