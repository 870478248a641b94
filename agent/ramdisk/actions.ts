/**
 * The agent actions over the Metalplane ramdisk's sessions (`sessions.ts`):
 *
 * - `ramdisk.run_step {node_uuid, step, step_args}`: queues the step on the node's live
 *   session (the ramdisk gets it with its next heartbeat) and succeeds with the step's
 *   result as the ramdisk reports it; fails when the node has no live session, when it is
 *   lost meanwhile, when the ramdisk reports the step failed, and at the deadline.
 * - `ramdisk.wait {node_uuid}`: succeeds once the node's ramdisk has said hello (at once
 *   when it already has), bounded by the command's deadline.
 *
 * - `ramdisk.write_image`, `ramdisk.write_configdrive`: the deploy's writes (`writes.ts`).
 *
 * All are common actions (every agent has them, whatever the node's hardware type): the
 * ramdisk talks to the agent, not to a BMC.
 *
 * And `withRamdiskBoot`: `boot.prepare {metalplane_ramdisk: true}` mints the node's
 * one-time token and appends `mp.url=<agent>/ramdisk/v1 mp.token=<token>` to the kernel
 * command line; the token is kept out of the result and the logs.
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { ACTIONS } from '../../protocol/actions.ts';
import { errorsText, lazyValidator } from '../../protocol/lazy-validator.ts';
import {
  RAMDISK_KERNEL_PARAMS,
  RAMDISK_STEP_ARGS_SCHEMAS,
  RAMDISK_STEPS,
  type RamdiskStepName,
} from '../../protocol/ramdisk.ts';
import { type Action, ActionFailure, type CatalogAction } from '../drivers/types.ts';
import { errorMessage } from '../log.ts';
import { DEFAULT_TOKEN_TTL_MS, type RamdiskSessions } from './sessions.ts';
import { runRamdiskStep, stepFailure } from './step.ts';
import { type RamdiskWritesOptions, writeActions } from './writes.ts';

/** The path of the protocol's endpoint on the agent's HTTP boot server. */
export const RAMDISK_PATH = '/ramdisk/v1';

const STEP_ARGS: Record<RamdiskStepName, ValidateFunction> = Object.fromEntries(
  RAMDISK_STEPS.map((name) => [
    name,
    lazyValidator(`ramdisk.step-args.${name}`, { strict: false }, RAMDISK_STEP_ARGS_SCHEMAS[name]),
  ]),
) as Record<RamdiskStepName, ValidateFunction>;

function validateRunStep(args: Record<string, unknown>): string | undefined {
  const shape = ACTIONS['ramdisk.run_step'].validate(args);
  if (shape) return shape;
  const check = STEP_ARGS[args.step as RamdiskStepName];
  if (!check(args.step_args)) {
    return `ramdisk.run_step: args.step_args for ${String(args.step)}: ${errorsText(check.errors, { dataVar: 'step_args' })}`;
  }
  return undefined;
}

/**
 * The ramdisk's actions; `writes` gives the deploy's writes (`writes.ts`) what they serve
 * files with (without it they fail: the agent serves no files to the ramdisk).
 */
export function ramdiskActions(
  sessions: RamdiskSessions,
  writes: RamdiskWritesOptions = { grants: undefined },
): Action[] {
  const runStep: CatalogAction<'ramdisk.run_step'> = {
    name: 'ramdisk.run_step',
    description: `runs one step on the node's Metalplane ramdisk and succeeds with its result: args node_uuid, step (${RAMDISK_STEPS.join(', ')}), step_args`,
    validate: validateRunStep,
    async run({ command, args, signal, log }) {
      const problem = validateRunStep(args);
      if (problem) throw new ActionFailure(problem);
      const node = (args.node_uuid as string).toLowerCase();
      const name = args.step as RamdiskStepName;
      const result = await runRamdiskStep(
        sessions,
        { command, signal, log },
        node,
        name,
        args.step_args as never,
      );
      return result as Awaited<ReturnType<CatalogAction<'ramdisk.run_step'>['run']>>;
    },
  };

  const wait: CatalogAction<'ramdisk.wait'> = {
    name: 'ramdisk.wait',
    description:
      "waits until the node's Metalplane ramdisk has said hello (bounded by the deadline): args node_uuid",
    validate: ACTIONS['ramdisk.wait'].validate,
    async run({ args, signal }) {
      const problem = ACTIONS['ramdisk.wait'].validate(args);
      if (problem) throw new ActionFailure(problem);
      const node = (args.node_uuid as string).toLowerCase();
      try {
        const info = await sessions.waitForHello(node, signal);
        return { node_uuid: node, version: info.version, boot_mac: info.bootMac };
      } catch (error) {
        throw stepFailure(error, signal);
      }
    },
  };

  return [runStep, wait, ...writeActions(sessions, writes)];
}

export interface RamdiskBootOptions {
  /** The URL nodes reach the agent's HTTP boot server at (`mp.url` is `<it>/ramdisk/v1`). */
  readonly httpBaseUrl: string;
  /** How long a minted token waits for its hello (default 1 h). */
  readonly tokenTtlMs?: number;
  /** When false (the agent's HTTP boot server is off), a ramdisk boot is refused. */
  readonly served?: boolean;
}

const RESERVED = new RegExp(
  `(^|\\s)(${[RAMDISK_KERNEL_PARAMS.url, RAMDISK_KERNEL_PARAMS.token].map((p) => p.replace('.', '\\.')).join('|')})=`,
);
/** Stands for the token while validating (the same length: 32 random bytes in base64url). */
const PLACEHOLDER_TOKEN = 'x'.repeat(43);

/**
 * `boot.prepare` with `metalplane_ramdisk: true`: mints the node's one-time token (which
 * ends the node's older token and session) and appends the ramdisk's parameters to
 * `kernel_append_params`, as `withCallbackUrls` turns `callback_token` into a URL.
 * `boot.clean` forgets a token not used yet. Other actions pass through.
 */
export function withRamdiskBoot(
  actions: readonly Action[],
  sessions: RamdiskSessions,
  options: RamdiskBootOptions,
): Action[] {
  const url = `${options.httpBaseUrl.replace(/\/+$/, '')}${RAMDISK_PATH}`;
  const ttl = options.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
  const translate = (args: Record<string, unknown>, token: string): Record<string, unknown> | string => {
    const { metalplane_ramdisk: flag, ...rest } = args;
    if (flag === undefined || flag === false) return rest;
    if (flag !== true) return 'boot.prepare: args.metalplane_ramdisk must be true or false';
    if (options.served === false) {
      return 'boot.prepare: metalplane_ramdisk needs the agent’s HTTP boot server (http.enabled), which serves /ramdisk/v1';
    }
    if (rest.iso !== undefined) {
      return 'boot.prepare: metalplane_ramdisk boots a kernel + ramdisk, not an iso (no kernel command line)';
    }
    const append = rest.kernel_append_params;
    if (typeof append === 'string' && RESERVED.test(append)) {
      return `boot.prepare: kernel_append_params must not set ${RAMDISK_KERNEL_PARAMS.url}= or ${RAMDISK_KERNEL_PARAMS.token}= (metalplane_ramdisk sets them)`;
    }
    const params = `${RAMDISK_KERNEL_PARAMS.url}=${url} ${RAMDISK_KERNEL_PARAMS.token}=${token}`;
    return {
      ...rest,
      kernel_append_params: typeof append === 'string' && append.trim() ? `${append} ${params}` : params,
    };
  };
  return actions.map((action): Action => {
    if (action.name === 'boot.clean') {
      return {
        ...action,
        run: async (ctx) => {
          const result = await action.run(ctx);
          sessions.forgetToken(String(ctx.args.node_uuid).toLowerCase());
          return result;
        },
      };
    }
    if (action.name !== 'boot.prepare') return action;
    return {
      ...action,
      validate: (args) => {
        const translated = translate(args, PLACEHOLDER_TOKEN);
        return typeof translated === 'string' ? translated : action.validate?.(translated);
      },
      run: async (ctx) => {
        if (ctx.args.metalplane_ramdisk !== true) {
          const translated = translate(ctx.args, PLACEHOLDER_TOKEN);
          if (typeof translated === 'string') throw new ActionFailure(translated);
          return action.run({ ...ctx, args: translated });
        }
        const checked = translate(ctx.args, PLACEHOLDER_TOKEN);
        if (typeof checked === 'string') throw new ActionFailure(checked);
        const node = String(ctx.args.node_uuid).toLowerCase();
        let token: string;
        try {
          token = sessions.mint(node, ttl);
        } catch (error) {
          throw new ActionFailure(`boot.prepare: ${errorMessage(error)}`);
        }
        try {
          const result = await action.run({
            ...ctx,
            args: translate(ctx.args, token) as Record<string, unknown>,
          });
          ctx.log.info('ramdisk boot prepared: its token is on the kernel command line', { node, url });
          // The token stays in the boot files: never in the result (stored by the control plane).
          return JSON.parse(JSON.stringify(result).split(token).join('[redacted]')) as typeof result;
        } catch (error) {
          sessions.revoke(node, token);
          throw error;
        }
      },
    };
  });
}
