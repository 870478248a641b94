/**
 * The verify Lambda: reads an uploaded image file back from S3 and compares its size and
 * SHA-256 with the registration (`catalog.ts`, `verify`). Fed by the image-verify SQS
 * queue (`infra/resources.ts`), one message `{"image": uuid, "role": role}` per completed
 * upload too large to verify within the API's 29 s. A failure (S3 unreachable ...) is
 * reported back so SQS redelivers that message; three failures dead-letter it, and the
 * image stays `verifying` where an operator sees it.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { connectionsTable, inventoryTable } from '../../infra/resources.ts';
import { ConnectionNotifier } from '../adapters/connection-notifier.ts';
import { documentClient, tableFromEnv } from '../adapters/dynamo/client.ts';
import { ConnectionRepository } from '../adapters/dynamo/connection-repository.ts';
import { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import { SiteRepository } from '../adapters/dynamo/site-repository.ts';
import { ImageObjects } from '../adapters/s3/image-objects.ts';
import { FILE_ROLES, type FileRole } from '../domain/images/image.ts';
import { ironicTimestamp } from '../domain/time.ts';
import { ImageCatalog } from './catalog.ts';

export function createVerifyHandler(catalog: () => ImageCatalog, logger: Pick<Logger, 'warn' | 'error'>) {
  return async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      let request: { image?: unknown; role?: unknown };
      try {
        request = JSON.parse(record.body) as typeof request;
      } catch {
        logger.warn('verify message is not JSON: dropped', { messageId: record.messageId });
        continue;
      }
      if (typeof request.image !== 'string' || !FILE_ROLES.includes(request.role as FileRole)) {
        logger.warn('verify message without image and role: dropped', { messageId: record.messageId });
        continue;
      }
      try {
        await catalog().verify(request.image, request.role as FileRole);
      } catch (error) {
        logger.error('image verification failed; SQS will redeliver', {
          image: request.image,
          role: request.role,
          error: String(error),
        });
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures };
  };
}

let shared: ImageCatalog | undefined;

function catalogFromEnv(logger: Logger): ImageCatalog {
  if (!shared) {
    const db = documentClient();
    const store = new InventoryStore(db, () => tableFromEnv(inventoryTable.envVar));
    shared = new ImageCatalog({
      store,
      objects: new ImageObjects(),
      sites: new SiteRepository(store),
      connections: new ConnectionRepository(db, () => tableFromEnv(connectionsTable.envVar)),
      notifier: new ConnectionNotifier(),
      logger: {
        info: (message, extra) => logger.info(message, extra),
        warn: (message, extra) => logger.warn(message, extra),
        error: (message, extra) => logger.error(message, extra),
      },
      now: () => ironicTimestamp(),
    });
  }
  return shared;
}

const logger = new Logger({ serviceName: 'metalplane-image-verify' });
export const handler = createVerifyHandler(() => catalogFromEnv(logger), logger);
