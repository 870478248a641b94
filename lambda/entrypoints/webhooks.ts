/**
 * The webhooks Lambda (`WebhooksFunction`, infra/events.ts), fed by two SQS queues: the
 * events queue (every Metalplane event, from the EventBridge rule) and the deliveries
 * queue (one message per event and webhook): `WebhookWorker` (lambda/webhooks/worker.ts).
 * `METALPLANE_WEBHOOK_MAX_ATTEMPTS` and `METALPLANE_WEBHOOK_BACKOFF_SECONDS` tune the retries.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { readConfig } from '../config.ts';
import { webhookWorkerFor } from '../webhooks/runtime.ts';
import { DEFAULT_BACKOFF_BASE_SECONDS, DEFAULT_MAX_ATTEMPTS } from '../webhooks/worker.ts';
import { entrypoint, once } from './stack.ts';

const logger = new Logger({ serviceName: 'metalplane-webhooks' });

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

const worker = once(() => {
  const config = readConfig();
  return webhookWorkerFor({
    config: () => config,
    logger,
    maxAttempts: positive('METALPLANE_WEBHOOK_MAX_ATTEMPTS', DEFAULT_MAX_ATTEMPTS),
    backoffBaseSeconds: positive('METALPLANE_WEBHOOK_BACKOFF_SECONDS', DEFAULT_BACKOFF_BASE_SECONDS),
  });
});

export const handler = entrypoint<SQSEvent, SQSBatchResponse>(logger, (event) => worker().handle(event));
