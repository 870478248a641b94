/**
 * The verify Lambda's core (its entry point: `lambda/entrypoints/verify.ts`, which gives
 * it the control plane's image catalog): reads an uploaded image file back from S3 and compares its size and
 * SHA-256 with the registration (`catalog.ts`, `verify`). Fed by the image-verify SQS
 * queue (`infra/resources.ts`), one message `{"image": uuid, "role": role}` per completed
 * upload too large to verify within the API's 29 s. A failure (S3 unreachable ...) is
 * reported back so SQS redelivers that message; three failures dead-letter it, and the
 * image stays `verifying` where an operator sees it.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { FILE_ROLES, type FileRole } from '../domain/images/image.ts';
import type { ImageCatalog } from './catalog.ts';

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
