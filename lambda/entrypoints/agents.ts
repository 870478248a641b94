/**
 * The agents Lambda (`AgentsFunction`): the agents' WebSocket routes (`$connect`,
 * `$disconnect`, `$default`), handled by `lambda/agents/handler.ts` on the control plane
 * of `lambda/runtime.ts`, built on the configuration read once at the first event.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyResultV2 } from 'aws-lambda';
import { type AgentsEvent, createAgentsHandler } from '../agents/handler.ts';
import { readConfig } from '../config.ts';
import { controlPlaneFromEnv } from '../runtime.ts';
import { entrypoint, once } from './stack.ts';

const service = 'metalplane-agents';
const logger = new Logger({ serviceName: service });
const agents = once(() => {
  const config = readConfig();
  return createAgentsHandler(controlPlaneFromEnv({ config: () => config, logger }));
});

export const handler = entrypoint<AgentsEvent, APIGatewayProxyResultV2>(
  logger,
  (event) => agents()(event),
  service,
);
