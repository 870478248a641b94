/**
 * Who is asking. `http_basic` users and bearer API tokens (both stored only as hashes)
 * in every deployment; `noauth` only where the local stack explicitly turned it on.
 */
import { Unauthorized } from '../http/errors.ts';
import type { Authenticator } from '../http/middlewares.ts';
import type { Principal } from './access.ts';

export const AUTH_STRATEGY_ENV = 'METALPLANE_AUTH_STRATEGY';
/** Set only by the local stack (loopback): the one place `noauth` may be honoured. */
export const LOCAL_STACK_ENV = 'METALPLANE_LOCAL_STACK';

const NOAUTH_PRINCIPAL: Principal = { kind: 'noauth', name: 'noauth', role: 'admin' };

export function authenticatorFromEnv(): Authenticator {
  if (process.env[AUTH_STRATEGY_ENV] === 'noauth') {
    if (process.env[LOCAL_STACK_ENV] !== 'true') {
      throw new Error('noauth is only allowed in the local stack on loopback');
    }
    return async () => NOAUTH_PRINCIPAL;
  }
  return async () => {
    throw new Unauthorized();
  };
}
