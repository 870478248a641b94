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
 * and the lock goes, in one conditional write: `commandFinished`. The command queue (an
 * adapter) reports every finished command through the `CommandCompletions` port, which
 * the conductor implements (`finished`), from whichever Lambda received the result or
 * ran the tick; a command no task awaited that did not succeed leaves its node's
 * `last_error`. The conductor is the only one that writes nodes for commands.
 *
 * Handlers are registered per action, so later features (provisioning) add theirs
 * without touching this file's callers.
 */
import type { CommandQueue } from '../adapters/command-queue.ts';
import type { AgentRepository } from '../adapters/dynamo/agent-repository.ts';
import type { CommandRepository } from '../adapters/dynamo/command-repository.ts';
import type { WriteOp } from '../adapters/dynamo/inventory-store.ts';
import {
  NODE_WRITE_ATTEMPTS,
  type NodeChange,
  type NodeRepository,
  type VersionedNode,
} from '../adapters/dynamo/node-repository.ts';
import {
  type CommandRecord,
  isFinished,
  MAX_TASK_ARGS_BYTES,
  NOT_QUEUED,
  unawaitedError,
} from '../domain/commands/command.ts';
import type { CommandCompletions } from '../domain/commands/completions.ts';
import { isAlive } from '../domain/conductors.ts';
import { DomainError } from '../domain/errors.ts';
import type { Node, NodeTask } from '../domain/nodes/node.ts';
import { checkNotLocked } from '../domain/power/power.ts';
import { ironicTimestamp } from '../domain/time.ts';

export interface ConductorLogger {
  info(message: string, extra: Record<string, unknown>): void;
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface ConductorDeps {
  readonly nodes: NodeRepository;
  /** Where the conductor queues its commands (it is told of their end through `finished`). */
  readonly queue: Pick<CommandQueue, 'prepare' | 'dispatch' | 'abandon'>;
  readonly agents: AgentRepository;
  readonly commands: CommandRepository;
  readonly logger: ConductorLogger;
  readonly newId: () => string;
  readonly now: () => Date;
}

/** What a finished command leads to. */
export interface TaskResult {
  /** The node with the outcome applied (the conductor sets or clears the lock itself). */
  readonly node: Node;
  /** Another command of the same task: the node stays locked, the task moves on. */
  readonly next?: TaskStep;
  /** Keep the lock with no command (the task waits for something else, e.g. an image). */
  readonly hold?: Record<string, unknown>;
  /** Writes in the same transaction (history events). */
  readonly ops?: readonly WriteOp[];
}

/**
 * How a finished command of a task changes its node. A plain Node means: done, release
 * the lock. `task.kind` (or, without one, the action) selects the handler.
 */
export type TaskOutcomeHandler = (
  node: Node,
  task: NodeTask,
  command: CommandRecord,
  at: string,
  prepared?: unknown,
) => Node | TaskResult;

/**
 * What a handler needs read before its node's conditional write (the handler itself is
 * synchronous, run again at each retry of that write): `wants` says, from the command
 * alone, whether there is anything to read; `prepare` reads it for the node and task as
 * they were before the write, and its value (or the Error it threw) is the handler's
 * `prepared`.
 */
export interface TaskPreparer {
  wants(command: CommandRecord): boolean;
  prepare(node: Node, task: NodeTask, command: CommandRecord): Promise<unknown>;
}

/** One agent command of a task. */
export interface TaskStep {
  readonly action: string;
  /** What the agent needs (driver, driver_info, target ...). Never logged. */
  readonly commandArgs: Record<string, unknown>;
  /** What the conductor keeps on the node to finish the task. */
  readonly taskArgs?: Record<string, unknown>;
  readonly deadlineSeconds: number;
  /** The handler that finishes it (default: the action's). */
  readonly kind?: string;
}

export interface TaskSpec extends TaskStep {
  readonly requestedBy: string | null;
  /** Changes made with the lock (e.g. `target_power_state`, `last_error: null`). */
  readonly apply?: (node: Node) => Node;
  /** Writes in the same transaction as the lock (history events). */
  readonly ops?: readonly WriteOp[];
}

/** Who asks for a task's next command. */
const STEP_REQUESTER = 'conductor';

/** A task's next command: recorded with the task's write, or why it could not be. */
interface PreparedStep {
  readonly id: string;
  readonly action: string;
  readonly command?: CommandRecord;
  readonly write?: WriteOp;
  readonly unrecorded?: string;
}

const isResult = (value: Node | TaskResult): value is TaskResult =>
  'node' in value && typeof (value as TaskResult).node === 'object';

function taskOf(command: string, step: TaskStep, at: string): NodeTask {
  return {
    command,
    action: step.action,
    ...(step.kind ? { kind: step.kind } : {}),
    started_at: at,
    args: step.taskArgs ?? {},
  };
}

/** A command that never reached its queue, as its task's handler sees it: failed, with why. */
function unqueued(
  command: { id: string; node: Node; action: string; requestedBy: string | null },
  reason: string,
  at: string,
): CommandRecord {
  return {
    id: command.id,
    node: command.node.uuid,
    site: command.node.conductor_group,
    action: command.action,
    args: {},
    status: 'failed',
    attempts: 0,
    deadline: at,
    created_at: at,
    updated_at: at,
    result: null,
    error: `${NOT_QUEUED} ${reason}`,
    finished_at: at,
    requested_by: command.requestedBy,
  };
}

/** How old a task awaiting an unrecorded command must be to be ended (see `#endOrphanedTask`). */
const ORPHAN_AFTER_MS = 60_000;

/** How long the reservation host of a site is reused before the agents are looked up again. */
const HOST_CACHE_MS = 30_000;

export class Conductor implements CommandCompletions {
  readonly #deps: ConductorDeps;
  readonly #handlers = new Map<string, TaskOutcomeHandler>();
  readonly #preparers = new Map<string, TaskPreparer>();
  /** Site → the host shown in `reservation`, for a short while (a query less per action). */
  readonly #hosts = new Map<string, { host: string; until: number }>();

  constructor(deps: ConductorDeps) {
    this.#deps = deps;
  }

  get nodes(): NodeRepository {
    return this.#deps.nodes;
  }

  /** The conductor's clock (injected): what the flows time their changes with. */
  now(): Date {
    return this.#deps.now();
  }

  /**
   * Writes a node change that runs no command (a provision transition alone, a flow with
   * no step for the node): one conditional write of the node read at `found.version`.
   */
  async writeNode(found: VersionedNode, next: Node, ops: readonly WriteOp[] = []): Promise<void> {
    await this.#deps.nodes.update(found.node, next, found.version, ops);
  }

  /** Changes a node outside a task (a deploy's callback, its timeout): read, change, conditional write. */
  async changeNode(
    uuid: string,
    change: (node: Node) => Node | NodeChange | undefined,
  ): Promise<Node | undefined> {
    return this.#deps.nodes.modify(uuid, change);
  }

  onTaskFinished(action: string, handler: TaskOutcomeHandler, preparer?: TaskPreparer): this {
    this.#handlers.set(action, handler);
    if (preparer) this.#preparers.set(action, preparer);
    else this.#preparers.delete(action);
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
      task: taskOf(commandId, spec, at),
      updated_at: at,
    };
    // The record in the lock's transaction: a lock never names a missing record, and a
    // refused lock leaves no record. Once written, the open record is what the tick ends
    // the task by (at its deadline) should anything below fail.
    const { command, write } = await this.#deps.queue.prepare({
      id: commandId,
      node: node.uuid,
      site: node.conductor_group,
      action: spec.action,
      args: spec.commandArgs,
      deadlineSeconds: spec.deadlineSeconds,
      requestedBy: spec.requestedBy,
      maxArgsBytes: MAX_TASK_ARGS_BYTES,
    });
    try {
      await this.#deps.nodes.update(node, locked, version, [...(spec.ops ?? []), write]);
    } catch (error) {
      // A refused condition wrote nothing. Any other failure may have been applied (an
      // answer lost after DynamoDB took the write): the record, if it is there, ends
      // failed and stays in the tick's index, which then ends the task its lock names.
      if (!(error instanceof DomainError)) {
        await this.#deps.queue
          .abandon(command, `the node's lock was not taken: ${(error as Error).message}`)
          .catch(() => undefined);
      }
      throw error;
    }
    try {
      await this.#deps.queue.dispatch(command);
      return { node: locked, command };
    } catch (error) {
      // Not queued: undo the lock (and what came with it) so the node is not stuck. Should
      // that fail too, the failed record stays in the tick's index and ends the task later.
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
   * Locks the node for a task that waits before its first command (or has none yet):
   * `hold` is kept on the task for whoever resumes it (`resumeHeld`).
   */
  async holdTask(
    found: VersionedNode,
    kind: string,
    hold: Record<string, unknown>,
    apply: (node: Node) => Node,
    ops: readonly WriteOp[] = [],
  ): Promise<Node> {
    checkNotLocked(found.node);
    const at = ironicTimestamp(this.#deps.now());
    const host = await this.#reservationHost(found.node.conductor_group, found.node.driver);
    const locked: Node = {
      ...apply(found.node),
      reservation: host,
      task: { command: '', action: 'hold', kind, started_at: at, args: hold },
      updated_at: at,
    };
    await this.#deps.nodes.update(found.node, locked, found.version, ops);
    return locked;
  }

  /**
   * `CommandCompletions`: a command finished (its result stored, expired, dead-lettered).
   * The task its node awaits goes on (`commandFinished`); a command no task awaited (an
   * admin's raw command) that did not succeed leaves its node's `last_error`. (A task's
   * command that the tick reports again after a crash between the task's write and
   * `settle` lands there too, and writes its raw error over the task's message: rare, and
   * left so.)
   */
  async finished(command: CommandRecord): Promise<void> {
    if (await this.commandFinished(command)) return;
    if (await this.#endOrphanedTask(command)) return;
    const message = unawaitedError(command);
    if (!message) return;
    await this.#deps.nodes.modify(command.node, (node) => ({
      ...node,
      last_error: message,
      updated_at: ironicTimestamp(this.#deps.now()),
    }));
  }

  /**
   * The node of a finished command awaits a command that was never recorded: the
   * conductor moved the task on to its next command and failed before recording it (the
   * window between the node's write and the record in `#advance`). The finished command
   * stayed unsettled, so the tick's recheck comes here: the task ends as if that next
   * command had failed. Only past ORPHAN_AFTER_MS, so that a conductor still between
   * the two writes is never overtaken.
   */
  async #endOrphanedTask(command: CommandRecord): Promise<boolean> {
    const found = await this.#deps.nodes.get(command.node);
    const task = found?.node.task;
    if (!found || !task || task.command === '' || task.command === command.id) return false;
    const age = this.#deps.now().getTime() - Date.parse(task.started_at);
    if (!(age > ORPHAN_AFTER_MS)) return false;
    if (await this.#deps.commands.get(task.command)) return false;
    const at = ironicTimestamp(this.#deps.now());
    this.#deps.logger.error('a task awaited a command never recorded: the task ends', {
      node: command.node,
      task,
    });
    return this.commandFinished(
      unqueued(
        { id: task.command, node: found.node, action: task.action, requestedBy: 'conductor' },
        'the conductor stopped before recording it',
        at,
      ),
    );
  }

  /**
   * A command finished (result stored, or expired). If it is the task its node awaits,
   * the handler applies the outcome: the lock goes, or the task moves on to its next
   * command. Answers whether it was the node's task.
   */
  async commandFinished(command: CommandRecord): Promise<boolean> {
    const prepared = await this.#prepare(command);
    const advance = (value: unknown) =>
      this.#advance(
        command.node,
        (task) => task.command === command.id,
        (node, task, at) => {
          const handler = this.#handlers.get(task.kind ?? task.action);
          if (!handler) {
            this.#deps.logger.error('no handler for a finished task: lock released', {
              node: node.uuid,
              task,
            });
            return { node };
          }
          return handler(node, task, command, at, value);
        },
      );
    try {
      return await advance(prepared);
    } catch (error) {
      // What was prepared could not be written with the node (a MAC claimed meanwhile, a
      // record changed): the handler sees the error instead, so the task ends, not the lock.
      if (prepared === undefined || prepared instanceof Error) throw error;
      this.#deps.logger.warn('writing a prepared task outcome failed', {
        node: command.node,
        command: command.id,
        error: (error as Error).message,
      });
      return advance(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Runs the awaiting task's preparer, if it wants this command (before the node's write). */
  async #prepare(command: CommandRecord): Promise<unknown> {
    if (![...this.#preparers.values()].some((preparer) => preparer.wants(command))) return undefined;
    const found = await this.#deps.nodes.get(command.node);
    const task = found?.node.task;
    if (!found || !task || task.command !== command.id) return undefined;
    const preparer = this.#preparers.get(task.kind ?? task.action);
    if (!preparer?.wants(command)) return undefined;
    try {
      return await preparer.prepare(found.node, task, command);
    } catch (error) {
      this.#deps.logger.warn('preparing a finished task failed', {
        node: command.node,
        command: command.id,
        error: (error as Error).message,
      });
      return error instanceof Error ? error : new Error(String(error));
    }
  }

  /**
   * Resumes a held task (`holdTask`, or a handler's `hold`): `decide` sees the node and
   * the hold and answers what happens now (undefined: keep waiting, change nothing).
   */
  async resumeHeld(
    uuid: string,
    decide: (node: Node, task: NodeTask, at: string) => Node | TaskResult | undefined,
  ): Promise<boolean> {
    return this.#advance(uuid, (task) => task.command === '', decide);
  }

  async #advance(
    uuid: string,
    matches: (task: NodeTask) => boolean,
    decide: (node: Node, task: NodeTask, at: string) => Node | TaskResult | undefined,
  ): Promise<boolean> {
    const at = ironicTimestamp(this.#deps.now());
    for (let attempt = 1; ; attempt++) {
      const found = await this.#deps.nodes.get(uuid);
      const task = found?.node.task;
      if (!found || !task || !matches(task)) return false;
      const decided = decide(found.node, task, at);
      if (decided === undefined) return false;
      const change = this.#taskChange(task, isResult(decided) ? decided : { node: decided }, at);
      // The next command's record goes in the write of the task that names it. Should the
      // record not be made (no queue for the site, arguments too large), the task is
      // written without it and then fails as if the command had.
      const next = change.next && (await this.#prepareStep(change.node, change.next));
      const ops = next?.write ? [...change.ops, next.write] : change.ops;
      try {
        await this.#deps.nodes.update(found.node, change.node, found.version, ops);
      } catch (error) {
        if (next?.command && !(error instanceof DomainError)) {
          // Perhaps applied (an answer lost): a record written unqueued ends failed, and the
          // tick then ends the task that names it.
          await this.#deps.queue
            .abandon(next.command, `the task's write failed: ${(error as Error).message}`)
            .catch(() => undefined);
        }
        if (attempt >= NODE_WRITE_ATTEMPTS || (error as DomainError).kind !== 'conflict') throw error;
        continue;
      }
      if (next) await this.#dispatchStep(change.node, next);
      return true;
    }
  }

  /** What a decided outcome writes: the node with its task moved on, held or ended. */
  #taskChange(
    task: NodeTask,
    result: TaskResult,
    at: string,
  ): { node: Node; ops: readonly WriteOp[]; next?: { id: string; step: TaskStep } } {
    const ops = result.ops ?? [];
    if (result.next) {
      const id = this.#deps.newId();
      return {
        node: { ...result.node, task: taskOf(id, result.next, at), updated_at: at },
        ops,
        next: { id, step: result.next },
      };
    }
    if (result.hold) {
      const held: NodeTask = {
        command: '',
        action: 'hold',
        kind: task.kind ?? task.action,
        started_at: at,
        args: result.hold,
      };
      return { node: { ...result.node, task: held, updated_at: at }, ops };
    }
    return { node: { ...result.node, reservation: null, task: null, updated_at: at }, ops };
  }

  /** A task's next command, recorded in the task's write; or why it could not be. */
  async #prepareStep(node: Node, next: { id: string; step: TaskStep }): Promise<PreparedStep> {
    const { id, step } = next;
    try {
      const { command, write } = await this.#deps.queue.prepare({
        id,
        node: node.uuid,
        site: node.conductor_group,
        action: step.action,
        args: step.commandArgs,
        deadlineSeconds: step.deadlineSeconds,
        requestedBy: STEP_REQUESTER,
        maxArgsBytes: MAX_TASK_ARGS_BYTES,
      });
      return { id, action: step.action, command, write };
    } catch (error) {
      return { id, action: step.action, unrecorded: (error as Error).message };
    }
  }

  /** Queues a task's next command; if it cannot be, the task fails as if the command had. */
  async #dispatchStep(node: Node, next: PreparedStep): Promise<void> {
    let reason = next.unrecorded;
    if (next.command) {
      try {
        await this.#deps.queue.dispatch(next.command);
        return;
      } catch (error) {
        reason = (error as Error).message;
      }
    }
    const at = ironicTimestamp(this.#deps.now());
    const failed = unqueued(
      { id: next.id, node, action: next.action, requestedBy: STEP_REQUESTER },
      reason ?? 'not queued',
      at,
    );
    await this.commandFinished(failed);
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
