/** Actions every agent has, whatever its drivers: for health checks and tests. */
import { type Action, ActionFailure } from './types.ts';

export const MAX_SLEEP_MS = 60_000;

export const noop: Action = {
  name: 'noop',
  description: 'does nothing and succeeds with {}',
  run: async () => ({}),
};

export const sleep: Action = {
  name: 'sleep',
  description: `waits args.ms milliseconds (at most ${MAX_SLEEP_MS}) and succeeds with {slept_ms}`,
  validate(args) {
    const ms = args.ms;
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > MAX_SLEEP_MS) {
      return `sleep: args.ms must be an integer from 0 to ${MAX_SLEEP_MS}`;
    }
    return undefined;
  },
  run: ({ args, signal }) =>
    new Promise((resolve, reject) => {
      const ms = args.ms as number;
      const started = performance.now();
      const onAbort = () => {
        clearTimeout(timer);
        reject(new ActionFailure('sleep: aborted'));
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve({ slept_ms: Math.round(performance.now() - started) });
      }, ms);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }),
};

export const fail: Action = {
  name: 'fail',
  description: 'fails with args.message (default "requested failure")',
  validate: (args) =>
    args.message === undefined || typeof args.message === 'string'
      ? undefined
      : 'fail: args.message must be a string',
  run: async ({ args }) => {
    throw new ActionFailure(typeof args.message === 'string' ? args.message : 'requested failure');
  },
};

export const BUILTIN_ACTIONS: readonly Action[] = [noop, sleep, fail];
