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
 *   the tick catches what they missed) and fails those that waited too long;
 * - prunes node history beyond `node_history_max_entries`, once per
 *   `node_history_cleanup_interval`, a bounded batch per tick (`HistoryRepository.cleanup`,
 *   docs/storage.md). A failure there is logged and never stops the command work above.
 */

import { inventoryTable } from '../../infra/resources.ts';
import type { ChannelLogger, CommandQueue } from '../adapters/command-queue.ts';
import { documentClient, tableFromEnv } from '../adapters/dynamo/client.ts';
import { HistoryRepository } from '../adapters/dynamo/history-repository.ts';
import type { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import type { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import { environmentConfig, type HistorySettings } from '../config.ts';
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
  readonly logger: Pick<ChannelLogger, 'info' | 'warn'>;
  /** The clock (default: the system's). */
  readonly now?: () => Date;
  /**
   * The node history and its limits (default: the inventory table and the settings of
   * the environment's configuration, `METALPLANE_NODE_HISTORY_*`).
   */
  readonly history?: {
    readonly repository: HistoryRepository;
    readonly settings: () => HistorySettings;
  };
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
  /** Node history events deleted beyond `node_history_max_entries`. */
  readonly historyPruned: number;
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
  const historyPruned = await pruneHistory(runtime);
  const report = {
    expired,
    deadLettered,
    callbackTimeouts,
    resumed,
    historyPruned,
    durationMs: Date.now() - started,
  };
  if (expired + deadLettered + callbackTimeouts + resumed + historyPruned > 0)
    runtime.logger.info('conductor tick', { ...report });
  return report;
}

/** The history pruning's share of the tick: how many events it deleted (0 on failure, logged). */
async function pruneHistory(runtime: TickRuntime): Promise<number> {
  try {
    const history = runtime.history ?? historyFromEnvironment();
    const now = runtime.now?.() ?? new Date();
    const report = await history.repository.cleanup(history.settings(), now);
    return report.deleted;
  } catch (error) {
    runtime.logger.warn('conductor tick: node history pruning failed', {
      error: (error as Error).message,
    });
    return 0;
  }
}

function historyFromEnvironment(): NonNullable<TickRuntime['history']> {
  const store = new InventoryStore(documentClient(), () => tableFromEnv(inventoryTable.envVar));
  return { repository: new HistoryRepository(store), settings: () => environmentConfig().history };
}
