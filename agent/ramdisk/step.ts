/**
 * One ramdisk step run for an agent action (`ramdisk.run_step` and the deploy's writes):
 * queued on the node's live session, its outcome turned into the action's result or an
 * ActionFailure with a clear message.
 */
import type { RamdiskStepArgs, RamdiskStepName } from '../../protocol/ramdisk.ts';
import { type ActionContext, ActionFailure } from '../drivers/types.ts';
import { RamdiskSessionError, type RamdiskSessions } from './sessions.ts';

/** Turns what the sessions throw into the command's error; the abort reason passes through. */
export function stepFailure(error: unknown, signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  if (error instanceof RamdiskSessionError) return new ActionFailure(error.message);
  return error;
}

/**
 * Why the node's ramdisk cannot take a step now (no session, or not live), in the words
 * `RamdiskSessions.runStep` would use; undefined when it can. Checked before preparing
 * anything costly for the step (a config drive, a grant).
 */
export function sessionProblem(sessions: RamdiskSessions, node: string): string | undefined {
  const info = sessions.describe(node);
  if (!info) return `no ramdisk session for node ${node}: has it booted?`;
  if (info.state !== 'live') return `the ramdisk session for node ${node} is ${info.state}: ${info.reason}`;
  return undefined;
}

/** Runs `name` on the node's ramdisk (the command's id is the step's): its result, or a failure. */
export async function runRamdiskStep<N extends RamdiskStepName>(
  sessions: RamdiskSessions,
  ctx: Pick<ActionContext, 'command' | 'signal' | 'log'>,
  node: string,
  name: N,
  args: RamdiskStepArgs[N],
): Promise<Record<string, unknown>> {
  let outcome: Awaited<ReturnType<RamdiskSessions['runStep']>>;
  try {
    outcome = await sessions.runStep(node, { id: ctx.command.id, name, args }, ctx.signal);
  } catch (error) {
    throw stepFailure(error, ctx.signal);
  }
  if (outcome.status === 'failed') {
    ctx.log.warn('ramdisk step failed', { node, step: name, error: outcome.error });
    throw new ActionFailure(`ramdisk step ${name} failed on node ${node}: ${outcome.error}`);
  }
  return outcome.result;
}
