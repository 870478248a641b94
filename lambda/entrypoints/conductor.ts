/**
 * The conductor Lambda (`ConductorFunction`): the periodic tick (EventBridge, once a
 * minute), `lambda/conductor/tick.ts` on the control plane of `lambda/runtime.ts`, built
 * on the configuration read once at the first tick.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { type TickReport, tick } from '../conductor/tick.ts';
import { readConfig } from '../config.ts';
import { controlPlaneFromEnv } from '../runtime.ts';
import { entrypoint, once } from './stack.ts';

const logger = new Logger({ serviceName: 'metalplane-conductor' });
const runtime = once(() => {
  const config = readConfig();
  return controlPlaneFromEnv({ config: () => config, logger });
});

export const handler = entrypoint<unknown, TickReport>(logger, () => tick(runtime()));
