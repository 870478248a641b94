/** Actions every agent has, whatever its drivers: for health checks and tests. */
import { ACTIONS, MAX_SLEEP_MS } from '../../protocol/actions.ts';
import { type Action, ActionFailure, type CatalogAction } from './types.ts';

export { MAX_SLEEP_MS };

export const noop: CatalogAction<'noop'> = {
  name: 'noop',
  description: 'does nothing and succeeds with {}',
  run: async () => ({}),
};

export const sleep: CatalogAction<'sleep'> = {
  name: 'sleep',
  description: `waits args.ms milliseconds (at most ${MAX_SLEEP_MS}) and succeeds with {slept_ms}`,
  validate: ACTIONS.sleep.validate,
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

export const fail: CatalogAction<'fail'> = {
  name: 'fail',
  description: 'fails with args.message (default "requested failure")',
  validate: ACTIONS.fail.validate,
  run: async ({ args }) => {
    throw new ActionFailure(typeof args.message === 'string' ? args.message : 'requested failure');
  },
};

export const BUILTIN_ACTIONS: readonly Action[] = [noop, sleep, fail];
