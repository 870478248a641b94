/**
 * The conductor Lambda's core: the periodic tick (EventBridge, once a minute on AWS, through
 * `lambda/entrypoints/conductor.ts`; the local stack calls `tick` on an interval). It
 * - expires the commands whose deadline passed without a result (`CommandQueue.expire`,
 *   which reports them to the conductor: the node's task fails with a clear
 *   `last_error`, its lock goes), and reports again finished commands whose report failed;
 * - fails the commands whose message reached the dead-letter queue (10 deliveries, no
 *   result) at once, rather than at their deadline;
 * - fails deploys whose booted system never called back (Ironic's deploy callback timeout);
 * - resumes deploys held for an image the site now holds (image reports do this at once;
 *   the tick catches what they missed) and fails those that waited too long.
 */
import type { ChannelLogger, CommandQueue } from '../adapters/command-queue.ts';
import type { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import type { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import { resumeWaitingDeploys, timeoutWaitingCallbacks } from './deploy-inputs.ts';
import type { Provisioner } from './provision.ts';

/** What the tick works on: the control plane's (`lambda/runtime.ts`) queue, flows and logger. */
export interface TickRuntime {
  readonly queue: Pick<CommandQueue, 'expireOverdue' | 'failDeadLettered'>;
  readonly provisioning: {
    readonly provisioner: Provisioner;
    readonly nodes: NodeRepository;
    readonly images: ImageRepository;
  };
  readonly logger: Pick<ChannelLogger, 'info'>;
}

export interface TickReport {
  /** Commands expired by this tick. */
  readonly expired: number;
  /** Commands failed because their message reached the dead-letter queue. */
  readonly deadLettered: number;
  /** Deploys failed for want of a callback. */
  readonly callbackTimeouts: number;
  /** Held deploys resumed (or failed at their image wait's timeout). */
  readonly resumed: number;
  readonly durationMs: number;
}

/** Commands looked at per tick and shard; a backlog larger than that is taken by the next ticks. */
const PER_TICK = 200;

export async function tick(runtime: TickRuntime): Promise<TickReport> {
  const started = Date.now();
  const expired = await runtime.queue.expireOverdue(PER_TICK);
  const deadLettered = await runtime.queue.failDeadLettered(PER_TICK);
  const { provisioner } = runtime.provisioning;
  const callbackTimeouts = await timeoutWaitingCallbacks(provisioner, runtime.provisioning.nodes);
  const resumed = await resumeWaitingDeploys(provisioner, runtime.provisioning);
  const report = { expired, deadLettered, callbackTimeouts, resumed, durationMs: Date.now() - started };
  if (expired + deadLettered + callbackTimeouts + resumed > 0)
    runtime.logger.info('conductor tick', { ...report });
  return report;
}
