/**
 * The image-verify Lambda (`ImageVerifyFunction`), fed by the image-verify SQS queue:
 * `createVerifyHandler` of `lambda/images/verify-handler.ts`, on the image catalog of the
 * control plane (`lambda/runtime.ts`), built on the configuration read once at the first
 * batch.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { readConfig } from '../config.ts';
import { createVerifyHandler } from '../images/verify-handler.ts';
import { controlPlaneFromEnv } from '../runtime.ts';
import { entrypoint, once } from './stack.ts';

const service = 'metalplane-image-verify';
const logger = new Logger({ serviceName: service });
const catalog = once(() => {
  const config = readConfig();
  return controlPlaneFromEnv({ config: () => config, logger }).images;
});
const verify = createVerifyHandler(catalog, logger);

export const handler = entrypoint<SQSEvent, SQSBatchResponse>(logger, (event) => verify(event), service);
