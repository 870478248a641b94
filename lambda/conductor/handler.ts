/**
 * The conductor Lambda: the periodic tick (EventBridge, once a minute on AWS; the local
 * stack calls `tick` on an interval). For now it expires the commands whose deadline has
 * passed without a result: each becomes `expired`, and its node's `last_error` says so
 * (`CommandQueue.expire`, conditional writes on the command's status and the node's
 * version). Later issues add the provision state machine's own timeouts here.
 */
import { type AgentRuntime, agentRuntimeFromEnv } from '../agents/channel.ts';

export interface TickReport {
  /** Commands expired by this tick. */
  readonly expired: number;
  readonly durationMs: number;
}

/** Commands looked at per tick and shard; a backlog larger than that is taken by the next ticks. */
const PER_TICK = 200;

export async function tick(runtime: AgentRuntime = agentRuntimeFromEnv()): Promise<TickReport> {
  const started = Date.now();
  const expired = await runtime.queue.expireOverdue(PER_TICK);
  const report = { expired, durationMs: Date.now() - started };
  if (expired > 0) runtime.logger.info('conductor tick', { ...report });
  return report;
}

export async function handler(): Promise<TickReport> {
  return tick();
}
