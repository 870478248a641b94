/**
 * The conductor Lambda (`ConductorFunction`): the periodic tick (EventBridge, once a
 * minute), `lambda/conductor/tick.ts` on the control plane of `lambda/runtime.ts`, built
 * on the configuration read once at the first tick.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { type TickReport, tick } from '../conductor/tick.ts';
import { readConfig } from '../config.ts';
import { DEFAULT_AGENT_SILENT_MINUTES, observeAgents } from '../observability/agents.ts';
import { controlPlaneFromEnv } from '../runtime.ts';
import { entrypoint, once } from './stack.ts';

const service = 'metalplane-conductor';
const logger = new Logger({ serviceName: service });
/** After how long without a heartbeat an agent counts as silent (`AgentsSilent`; set by infra/observability.ts). */
const silentMinutes = Number(process.env.METALPLANE_AGENT_SILENT_MINUTES) || DEFAULT_AGENT_SILENT_MINUTES;
const runtime = once(() => {
  const config = readConfig();
  return controlPlaneFromEnv({ config: () => config, logger });
});

export const handler = entrypoint<unknown, TickReport>(
  logger,
  async () => {
    const report = await tick(runtime());
    // The fleet's agents as gauges (AgentsConnected, AgentsSilent): metrics on only.
    await observeAgents(() => runtime().credentials.agents.all(), {
      now: new Date(),
      silentMinutes,
      log: logger,
    });
    return report;
  },
  service,
);
