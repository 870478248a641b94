/**
 * The fleet's agents as gauges, each conductor tick (`lambda/entrypoints/conductor.ts`):
 * `AgentsConnected` (alive: a heartbeat within 60 s, as Ironic's conductors) and
 * `AgentsSilent` (a heartbeat once, none for the silence threshold), per site when a site
 * has any, and 0 for the fleet otherwise, so that the alarm sees data. An agent that never
 * sent a heartbeat (enrolled, never started) is not silent: it never spoke.
 */
import { type AgentRecord, isAlive } from '../domain/conductors.ts';
import { type MetricsRecorder, metrics as sharedMetrics } from './metrics.ts';

/** Default silence threshold: five missed minutes (agents heartbeat every few seconds). */
export const DEFAULT_AGENT_SILENT_MINUTES = 5;

export function recordAgentGauges(
  agents: readonly AgentRecord[],
  now: Date,
  silentMinutes: number = DEFAULT_AGENT_SILENT_MINUTES,
  recorder: MetricsRecorder = sharedMetrics,
): { connected: number; silent: number } {
  const connected = agents.filter((agent) => isAlive(agent, now)).length;
  const silentBySite = new Map<string, number>();
  for (const agent of agents) {
    if (!agent.last_heartbeat) continue;
    if (now.getTime() - Date.parse(agent.last_heartbeat) > silentMinutes * 60_000) {
      silentBySite.set(agent.site, (silentBySite.get(agent.site) ?? 0) + 1);
    }
  }
  recorder.record('AgentsConnected', connected);
  for (const [site, count] of silentBySite) recorder.record('AgentsSilent', count, { site });
  if (silentBySite.size === 0) recorder.record('AgentsSilent', 0);
  return { connected, silent: [...silentBySite.values()].reduce((sum, count) => sum + count, 0) };
}

/**
 * Reads the agents and records the gauges; only when metrics are on (one Query of the
 * agents a minute), and never failing the tick: a failure is logged.
 */
export async function observeAgents(
  list: () => Promise<readonly AgentRecord[]>,
  options: {
    readonly now: Date;
    readonly silentMinutes?: number;
    readonly log: { warn(message: string, extra: Record<string, unknown>): void };
    readonly recorder?: MetricsRecorder;
  },
): Promise<void> {
  const recorder = options.recorder ?? sharedMetrics;
  if (!recorder.enabled) return;
  try {
    recordAgentGauges(await list(), options.now, options.silentMinutes, recorder);
  } catch (error) {
    options.log.warn('agent gauges not recorded', { error: (error as Error).message });
  }
}
