/**
 * Agents seen as Ironic conductors: an agent is a conductor of its site's
 * `conductor_group`, alive while its heartbeats are recent (Ironic's
 * `[conductor]heartbeat_timeout`, 60 s by default).
 */
export interface AgentRecord {
  /** The agent's hostname, unique fleet-wide (Ironic's conductor hostname). */
  readonly hostname: string;
  readonly site: string;
  readonly drivers: readonly string[];
  readonly created_at: string;
  readonly updated_at: string | null;
  /** ISO time of the last heartbeat, or null before the first. */
  readonly last_heartbeat: string | null;
  /** What the agent said it runs (its `hello`), if it said. */
  readonly agent_version?: string | null;
  /** The protocol its last `hello` announced (absent: 1, or no hello yet); `protocol/versions.ts`. */
  readonly protocol_version?: number | null;
  /** The features its last `hello` announced (absent: its protocol's baseline). */
  readonly features?: readonly string[] | null;
}

export const HEARTBEAT_TIMEOUT_MS = 60_000;

export function isAlive(agent: AgentRecord, now: Date): boolean {
  if (!agent.last_heartbeat) return false;
  return now.getTime() - Date.parse(agent.last_heartbeat) <= HEARTBEAT_TIMEOUT_MS;
}

/** Hostnames of the alive agents serving `driver`, sorted (GET /v1/drivers `hosts`). */
export function hostsFor(driver: string, agents: readonly AgentRecord[], now: Date): string[] {
  return agents
    .filter((agent) => agent.drivers.includes(driver) && isAlive(agent, now))
    .map((agent) => agent.hostname)
    .sort();
}
