/**
 * What the routes that wait for the site's agent share (boot device, inject_nmi,
 * indicators): Ironic answers these after its conductor's synchronous call, so the
 * request waits for the agent's command and answers with its result or its failure.
 */
import type { CommandRecord } from '../../domain/commands/command.ts';
import { ApiError } from '../../http/errors.ts';
import type { ApiRequest } from '../../http/request.ts';
import type { Principal } from '../access.ts';

/** How long the API waits for a synchronous agent command (API Gateway's limit is 29 s). */
export const SYNC_WAIT_MS = 20_000;

/** Who asked, as the command records it (`null` without a principal). */
export const requester = (request: ApiRequest): string | null =>
  (request.principal as Principal | undefined)?.name ?? null;

/**
 * The finished command, or Ironic-like errors: the agent's failure (500) or its silence
 * for `waitMs` (503; the command stays on record and finishes or expires).
 */
export function answered(
  waitMs: number,
  { command, done }: { command: CommandRecord; done: CommandRecord | undefined },
): CommandRecord {
  if (!done) {
    throw new ApiError(
      503,
      `The agent of site ${command.site} did not answer within ${Math.round(waitMs / 1000)} seconds; command ${command.id} is still pending.`,
    );
  }
  if (done.status !== 'succeeded') {
    throw new ApiError(500, done.error ?? `Command ${done.action} ${done.status}.`);
  }
  return done;
}
