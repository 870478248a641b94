/**
 * The conductor as a library (DESIGN.md, "Conductor"): what Ironic's conductor does with
 * a task, done with conditional writes instead of a process holding a lock.
 *
 * An action on a node (a power change, a boot device, later a provision step) is a
 * **task**: the node is locked (`reservation` = the site's agent, `task` = the command
 * awaited) in the same conditional write that records what the action changes
 * (`target_power_state` ...), then the command is queued for the site's agent. A second
 * action meanwhile gets Ironic's NodeLocked (409). When the command finishes — a result
 * from the agent, or expiry at its deadline — the task's handler applies the outcome
 * and the lock goes, in one conditional write: `commandFinished`, called by the command
 * queue from whichever Lambda received the result or ran the tick.
 *
 * Handlers are registered per action, so later features (provisioning) add theirs
 * without touching this file's callers.
 */
import type { CommandQueue } from '../adapters/command-queue.ts';
import type { AgentRepository } from '../adapters/dynamo/agent-repository.ts';
import type { CommandRepository } from '../adapters/dynamo/command-repository.ts';
import type { NodeRepository, VersionedNode } from '../adapters/dynamo/node-repository.ts';
import { ironicTimestamp } from '../api/dependencies.ts';
import { type CommandRecord, isFinished } from '../domain/commands/command.ts';
import { isAlive } from '../domain/conductors.ts';
import type { Node, NodeTask } from '../domain/nodes/node.ts';
import { checkNotLocked } from '../domain/power/power.ts';

export interface ConductorLogger {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface ConductorDeps {
  readonly nodes: NodeRepository;
  readonly queue: CommandQueue;
  readonly agents: AgentRepository;
  readonly commands: CommandRepository;
  readonly logger: ConductorLogger;
  readonly newId: () => string;
  readonly now: () => Date;
}

/** How a finished command of a task changes its node (the lock is released by the caller). */
export type TaskOutcomeHandler = (node: Node, task: NodeTask, command: CommandRecord, at: string) => Node;

export interface TaskSpec {
  readonly action: string;
  /** What the agent needs (driver, driver_info, target ...). Never logged. */
  readonly commandArgs: Record<string, unknown>;
  /** What the conductor keeps on the node to finish the task. */
  readonly taskArgs?: Record<string, unknown>;
  readonly deadlineSeconds: number;
  readonly requestedBy: string | null;
  /** Changes made with the lock (e.g. `target_power_state`, `last_error: null`). */
  readonly apply?: (node: Node) => Node;
}

/** How long the reservation host of a site is reused before the agents are looked up again. */
const HOST_CACHE_MS = 30_000;

export class Conductor {
  readonly #deps: ConductorDeps;
  readonly #handlers = new Map<string, TaskOutcomeHandler>();
  /** Site → the host shown in `reservation`, for a short while (a query less per action). */
  readonly #hosts = new Map<string, { host: string; until: number }>();

  constructor(deps: ConductorDeps) {
    this.#deps = deps;
  }

  get nodes(): NodeRepository {
    return this.#deps.nodes;
  }

  onTaskFinished(action: string, handler: TaskOutcomeHandler): this {
    this.#handlers.set(action, handler);
    return this;
  }

  /**
   * Locks the node read at `found.version` and queues the task's command. A concurrent
   * change of the node, or a lock taken meanwhile, is a 409 and nothing is queued.
   */
  async startTask(found: VersionedNode, spec: TaskSpec): Promise<{ node: Node; command: CommandRecord }> {
    const { node, version } = found;
    checkNotLocked(node);
    const commandId = this.#deps.newId();
    const at = ironicTimestamp(this.#deps.now());
    const host = await this.#reservationHost(node.conductor_group, node.driver);
    const base = spec.apply ? spec.apply(node) : node;
    const locked: Node = {
      ...base,
      reservation: host,
      task: { command: commandId, action: spec.action, started_at: at, args: spec.taskArgs ?? {} },
      updated_at: at,
    };
    await this.#deps.nodes.update(node, locked, version);
    try {
      const command = await this.#deps.queue.enqueue({
        id: commandId,
        node: node.uuid,
        site: node.conductor_group,
        action: spec.action,
        args: spec.commandArgs,
        deadlineSeconds: spec.deadlineSeconds,
        requestedBy: spec.requestedBy,
      });
      return { node: locked, command };
    } catch (error) {
      // Not queued: undo the lock (and what came with it) so the node is not stuck.
      await this.#deps.nodes
        .modify(node.uuid, (current) =>
          current.task?.command === commandId
            ? { ...current, reservation: null, task: null, target_power_state: node.target_power_state }
            : undefined,
        )
        .catch(() => undefined);
      throw error;
    }
  }

  /**
   * A command finished (result stored, or expired). If it is the task its node awaits,
   * the handler applies the outcome and the lock goes; answers whether it was.
   */
  async commandFinished(command: CommandRecord): Promise<boolean> {
    const handler = this.#handlers.get(command.action);
    if (!handler) return false;
    const at = ironicTimestamp(this.#deps.now());
    const written = await this.#deps.nodes.modify(command.node, (node) => {
      const task = node.task;
      if (!task || task.command !== command.id) return undefined;
      const changed = handler(node, task, command, at);
      return { ...changed, reservation: null, task: null, updated_at: at };
    });
    if (written) {
      this.#deps.logger.info('task finished', {
        node: command.node,
        action: command.action,
        commandId: command.id,
        status: command.status,
      });
    }
    return written !== undefined;
  }

  /**
   * Waits for a task's command to finish and its node's lock to go (for the few actions
   * Ironic answers synchronously, such as the boot device): polls both records, at most
   * `timeoutMs`. The finished command, or undefined on timeout.
   */
  async waitForTask(
    command: Pick<CommandRecord, 'id' | 'node'>,
    timeoutMs: number,
  ): Promise<CommandRecord | undefined> {
    const until = Date.now() + timeoutMs;
    let delay = 10;
    for (let round = 0; round < 10_000; round++) {
      const found = await this.#deps.commands.get(command.id);
      if (found && isFinished(found.command.status)) {
        const node = await this.#deps.nodes.get(command.node);
        if (!node || node.node.task?.command !== command.id) return found.command;
      }
      const left = until - Date.now();
      if (left <= 0) return undefined;
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
      delay = Math.min(delay * 2, 250);
    }
    return undefined;
  }

  log(level: 'info' | 'warn' | 'error', message: string, extra: Record<string, unknown>): void {
    this.#deps.logger[level](message, extra);
  }

  /** Ironic shows the conductor holding the lock: the site's alive agent, else the site. */
  async #reservationHost(site: string, driver: string): Promise<string> {
    const key = `${site}\n${driver}`;
    const cached = this.#hosts.get(key);
    if (cached && cached.until > Date.now()) return cached.host;
    let host = site;
    try {
      const now = this.#deps.now();
      const agents = await this.#deps.agents.ofSite(site);
      const alive = agents.filter((agent) => isAlive(agent, now));
      host = (alive.find((agent) => agent.drivers.includes(driver)) ?? alive[0])?.hostname ?? site;
    } catch {
      // The lock does not depend on the name shown: the site will do.
    }
    this.#hosts.set(key, { host, until: Date.now() + HOST_CACHE_MS });
    return host;
  }
}
