/**
 * The api Lambda (`ApiFunction`): Ironic's v1 REST API behind API Gateway's HTTP API. The
 * configuration is read once, at the first request; the API itself (router, errors,
 * version headers, audit trail) is `createApi` of `lambda/api/app.ts`.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { Context } from 'aws-lambda';
import { createApi } from '../api/app.ts';
import { readConfig } from '../config.ts';
import type { ApiContext, ApiEvent, ApiResult } from '../http/middlewares.ts';
import { entrypoint, once } from './stack.ts';

const service = 'metalplane-api';
const logger = new Logger({ serviceName: service });
const api = once(() => {
  const config = readConfig();
  return createApi(() => config, logger);
});

export const handler = entrypoint<ApiEvent, ApiResult>(
  logger,
  (event, context: Context) => api()(event, context as ApiContext),
  service,
);
