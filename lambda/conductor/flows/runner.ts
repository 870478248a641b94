/**
 * What every provision flow shares: a flow is a chain of agent commands on one conductor
 * task (`FlowState` on the node's task). `FlowRunner` fires the machine's events with
 * their history events, shows the running step, runs the next applicable command when
 * one finishes, and finishes or fails the flow. What differs per flow (the failure
 * message, the step field shown, what its end changes) is its `FlowHooks`, given by the
 * flow's module (`deploy.ts`, `undeploy.ts`, `clean.ts`, `inspect.ts`, `adopt.ts`).
 */
import { actionSpec, isPowerState } from '../../../protocol/actions.ts';
import { historyCreateOp } from '../../adapters/dynamo/history-repository.ts';
import type { WriteOp } from '../../adapters/dynamo/inventory-store.ts';
import type { CommandRecord } from '../../domain/commands/command.ts';
import { errorRecord, transitionRecord } from '../../domain/history/history.ts';
import type { JsonObject, Node, NodeTask } from '../../domain/nodes/node.ts';
import { advance, type ProvisionPosition } from '../../domain/provisioning/machine.ts';
import type { ProvisionEvent, ProvisionState, StableState } from '../../domain/provisioning/states.ts';
import type { Conductor, TaskPreparer, TaskResult, TaskStep } from '../conductor.ts';
import { type FlowState, type StepName, stepCommand, stepInterface } from './steps.ts';

/** A node change and its writes in the same transaction (history events). */
export interface Changed {
  readonly node: Node;
  readonly ops: WriteOp[];
}

/** A planned flow and what the node gets when it starts (beside its state). */
export interface Plan {
  readonly flow: FlowState;
  readonly onStart?: (at: string) => Partial<Node>;
}

/** What one flow (by `FlowState.flow`) adds to the shared machinery. */
export interface FlowHooks {
  /** The start of `last_error` when `step` fails. */
  failure(step: string): string;
  /** The node field showing the running step, if any. */
  readonly shows?: 'deploy_step' | 'clean_step';
  /** After the flow's `finish` events: what else its end changes (may fire more events). */
  finished?(node: Node, flow: FlowState, at: string, run: FlowRunner): Changed;
  /** The actions whose results `prepare` reads for (before the node's conditional write). */
  readonly prepareFor?: readonly string[];
  /** Reads what `stepSucceeded` needs beyond the node (the node's ports ...), asynchronously. */
  prepare?(node: Node, flow: FlowState, step: StepName | undefined, command: CommandRecord): Promise<unknown>;
  /**
   * A step succeeded: what its result changes (undefined: nothing; a string: the flow
   * fails with it). `prepared` is what `prepare` answered, or the Error it threw.
   */
  stepSucceeded?(
    node: Node,
    flow: FlowState,
    step: StepName | undefined,
    command: CommandRecord,
    prepared: unknown,
    at: string,
  ): Changed | string | undefined;
}

export class FlowRunner {
  readonly conductor: Conductor;
  readonly #newId: () => string;
  readonly #hooks: Readonly<Record<string, FlowHooks>>;
  /** Orders events written in one transaction (same timestamp); wraps harmlessly. */
  #sequence = 0;

  constructor(conductor: Conductor, newId: () => string, hooks: Readonly<Record<string, FlowHooks>>) {
    this.conductor = conductor;
    this.#newId = newId;
    this.#hooks = hooks;
  }

  /** The conductor's (injected) clock. */
  now(): Date {
    return this.conductor.now();
  }

  nextSequence(): number {
    this.#sequence = (this.#sequence + 1) % 10_000;
    return this.#sequence;
  }

  /** The history event of a request's first transition (`position`: where it leads). */
  entered(node: Node, event: ProvisionEvent, position: ProvisionPosition, at: string, user: string | null) {
    const history = transitionRecord({
      uuid: this.#newId(),
      now: at,
      nodeUuid: node.uuid,
      from: node.provision_state as ProvisionState,
      event,
      to: position.provision_state,
      target: position.target_provision_state,
      user,
    });
    return historyCreateOp(node, history, this.nextSequence());
  }

  /** One machine event: the new position and its history event. */
  fire(
    node: Node,
    event: ProvisionEvent,
    at: string,
    user: string | null,
    options: { target?: StableState },
  ): Changed {
    const from = node.provision_state as ProvisionState;
    const position = advance(
      { provision_state: from, target_provision_state: node.target_provision_state as StableState | null },
      event,
      options,
    );
    const record = transitionRecord({
      uuid: this.#newId(),
      now: at,
      nodeUuid: node.uuid,
      from,
      event,
      to: position.provision_state,
      target: position.target_provision_state,
      user,
    });
    return {
      node: { ...node, ...position, provision_updated_at: at },
      ops: [historyCreateOp(node, record, this.nextSequence())],
    };
  }

  /** The flow fails (`event`, Ironic's `fail` by default) with `message` as `last_error`. */
  fail(node: Node, message: string, at: string, event: ProvisionEvent = 'fail'): Changed {
    const recorded = errorRecord({
      uuid: this.#newId(),
      now: at,
      nodeUuid: node.uuid,
      event: message,
      eventType: null,
    });
    const fired = this.fire(node, event, at, null, {});
    return {
      node: { ...fired.node, last_error: recorded.lastError, deploy_step: {}, clean_step: {} },
      ops: [historyCreateOp(node, recorded.event, this.nextSequence()), ...fired.ops],
    };
  }

  /** The node at `position`, showing the flow's running step (or the image it waits for). */
  enterState(
    node: Node,
    position: ProvisionPosition,
    at: string,
    flow: FlowState,
    step: StepName | undefined,
  ): Node {
    // The deploy step Ironic would show (resolved with its priority), else the step itself.
    const ironicStep = step ? flow.shown?.[flow.index] : undefined;
    const shown: JsonObject =
      ironicStep ?? (step ? { interface: stepInterface(step), step, args: {}, priority: 0 } : {});
    const waiting: JsonObject | undefined = flow.waitingImage
      ? { interface: 'deploy', step: 'wait_for_image', args: { image: flow.waitingImage.uuid }, priority: 0 }
      : undefined;
    const field = this.#hooks[flow.flow]?.shows;
    return {
      ...node,
      ...position,
      provision_updated_at: at,
      ...(field === 'clean_step' ? { clean_step: shown } : {}),
      ...(field === 'deploy_step' ? { deploy_step: waiting ?? shown } : {}),
    };
  }

  /** The first applicable command from `flow.index` on (steps that do nothing are skipped). */
  nextCommand(node: Node, flow: FlowState): { step: TaskStep; flow: FlowState } | undefined {
    for (let index = Math.max(flow.index, 0); index < flow.steps.length; index++) {
      const at = { ...flow, index };
      const step = stepCommand(node, at, flow.steps[index] as StepName);
      if (step)
        return { step: { ...step, taskArgs: { ...at } as unknown as Record<string, unknown> }, flow: at };
    }
    return undefined;
  }

  /** The conductor's preparer of finished steps: the flow's `prepare`, for the actions it names. */
  preparer(): TaskPreparer {
    const actions = new Set(Object.values(this.#hooks).flatMap((hooks) => hooks.prepareFor ?? []));
    return {
      wants: (command) => command.status === 'succeeded' && actions.has(command.action),
      prepare: async (node, task, command) => {
        const flow = task.args as unknown as FlowState;
        const hooks = this.#hooks[flow.flow];
        if (!hooks?.prepare || !hooks.prepareFor?.includes(command.action)) return undefined;
        return hooks.prepare(node, flow, flow.steps[flow.index], command);
      },
    };
  }

  /** The conductor's handler of a finished step: the flow goes on, or fails. */
  stepFinished(
    node: Node,
    task: NodeTask,
    command: CommandRecord,
    at: string,
    prepared?: unknown,
  ): TaskResult {
    const flow = task.args as unknown as FlowState;
    let current = node;
    if (actionSpec(command.action)?.family === 'power') {
      const state = command.result?.power_state;
      if (isPowerState(state)) current = { ...current, power_state: state };
    }
    if (command.status !== 'succeeded') {
      const shown = flow.shown?.[flow.index];
      const step = shown ? `${shown.interface}.${shown.step}` : (flow.steps[flow.index] ?? command.action);
      const error = command.error ?? `command ${command.status}`;
      if (flow.failing)
        return this.fail(current, `${flow.failing} (cleaning up, ${step} failed too: ${error})`, at);
      const failure = this.#hooks[flow.flow]?.failure(step) ?? `${flow.flow}: ${step} failed`;
      return this.failOrCleanUp(current, flow, `${failure}: ${error}`, at);
    }
    const hooks = this.#hooks[flow.flow];
    const step = flow.steps[flow.index];
    const applied = flow.failing
      ? undefined
      : hooks?.stepSucceeded?.(current, flow, step, command, prepared, at);
    if (typeof applied === 'string') {
      const failure = hooks?.failure(step ?? command.action) ?? `${flow.flow}: ${step} failed`;
      return this.failOrCleanUp(current, flow, `${failure}: ${applied}`, at);
    }
    const next = this.continue(applied?.node ?? current, { ...flow, index: flow.index + 1 }, at);
    return applied ? { ...next, ops: [...applied.ops, ...(next.ops ?? [])] } : next;
  }

  /**
   * A step failed: the flow's cleanup steps run first (the node stays in its working
   * state, locked), then it fails with `message`; without cleanup it fails at once.
   */
  failOrCleanUp(node: Node, flow: FlowState, message: string, at: string): TaskResult {
    if (!flow.cleanup?.length || flow.failing) return this.fail(node, message, at);
    const cleaning: FlowState = {
      ...flow,
      steps: flow.cleanup,
      index: 0,
      failing: message,
      cleanup: [],
      shown: [],
      stepArgs: [],
    };
    const { fireAt: _none, ...rest } = cleaning;
    return this.continue(node, rest, at);
  }

  /** Runs the flow from `flow.index`: the next command, or the finish. */
  continue(node: Node, flow: FlowState, at: string): TaskResult {
    const next = this.nextCommand(node, flow);
    // A machine event due before a step (undeploy: deleting → cleaning), when the flow reaches it.
    const due = flow.fireAt;
    if (due && flow.index <= due.index && (next ? next.flow.index >= due.index : true)) {
      const fired = this.fire(node, due.event, at, flow.user, {});
      const { fireAt: _fired, ...rest } = flow;
      const after = this.continue(fired.node, rest, at);
      return { ...after, ops: [...fired.ops, ...(after.ops ?? [])] };
    }
    if (next) {
      return {
        node: this.enterState(
          node,
          {
            provision_state: node.provision_state as ProvisionState,
            target_provision_state: node.target_provision_state as StableState | null,
          },
          at,
          next.flow,
          next.flow.steps[next.flow.index],
        ),
        next: next.step,
      };
    }
    return this.finish(node, flow, at, []);
  }

  /** The last step succeeded: the flow's `finish` events, then what its end changes. */
  finish(node: Node, flow: FlowState, at: string, ops: readonly WriteOp[]): Changed {
    if (flow.failing) {
      // The cleanup after a failure is done: now the flow fails.
      const failed = this.fail(node, flow.failing, at);
      return { node: failed.node, ops: [...ops, ...failed.ops] };
    }
    let current: Node = { ...node, deploy_step: {}, clean_step: {} };
    const allOps = [...ops];
    for (const event of flow.finish) {
      const fired = this.fire(current, event, at, flow.user, flow.target ? { target: flow.target } : {});
      current = fired.node;
      allOps.push(...fired.ops);
    }
    const finished = this.#hooks[flow.flow]?.finished?.(current, flow, at, this);
    if (finished) {
      current = finished.node;
      allOps.push(...finished.ops);
    }
    return { node: current, ops: allOps };
  }
}
