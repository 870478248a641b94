/**
 * The webhooks' composition: the repository on the Webhooks table and the worker on the
 * webhook queues, their names derived from the configuration's resource prefix
 * (`infra/resources.ts`), the secrets opened with the control plane's sealer.
 */
import { randomUUID } from 'node:crypto';
import type { SQSClient } from '@aws-sdk/client-sqs';
import {
  queueName,
  resourcePrefixEnvVar,
  tableName,
  webhookDeadLetterQueue,
  webhookDeliveriesQueue,
  webhooksTable,
} from '../../infra/resources.ts';
import { newSqsClient, type Sender } from '../adapters/aws-sdk.ts';
import { documentClient } from '../adapters/dynamo/client.ts';
import { NamedQueues, WebhookRepository } from '../adapters/events-webhooks.ts';
import { sealerFromEnv } from '../adapters/kms/envelope-sealer.ts';
import { type ConfigSource, environmentConfig, required } from '../config.ts';
import type { SecretSealer } from '../domain/auth/sealing.ts';
import { WebhookWorker, type WebhookWorkerOptions } from './worker.ts';

const prefixOf = (config: ConfigSource) => required(config().resourcePrefix, resourcePrefixEnvVar);

export function webhookRepositoryFor(config: ConfigSource = environmentConfig): WebhookRepository {
  return new WebhookRepository(documentClient(), () => tableName(prefixOf(config), webhooksTable));
}

export interface WebhookWorkerSettings
  extends Partial<Pick<WebhookWorkerOptions, 'maxAttempts' | 'backoffBaseSeconds' | 'fetch' | 'timeoutMs'>> {
  readonly config?: ConfigSource;
  readonly sealer?: SecretSealer;
  readonly sqs?: Sender<SQSClient>;
  readonly logger?: WebhookWorkerOptions['logger'];
}

export function webhookWorkerFor(settings: WebhookWorkerSettings = {}): WebhookWorker {
  const config = settings.config ?? environmentConfig;
  const sqs = settings.sqs ?? newSqsClient();
  const { config: _config, sealer, sqs: _sqs, logger, ...tuning } = settings;
  return new WebhookWorker({
    webhooks: webhookRepositoryFor(config),
    queues: new NamedQueues(() => sqs),
    deliveriesQueue: () => queueName(prefixOf(config), webhookDeliveriesQueue),
    deadLetterQueue: () => queueName(prefixOf(config), webhookDeadLetterQueue),
    sealer: sealer ?? sealerFromEnv(config),
    newId: () => randomUUID(),
    now: () => new Date(),
    logger: logger ?? { warn: () => undefined },
    ...tuning,
  });
}
