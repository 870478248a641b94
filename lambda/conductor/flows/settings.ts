/**
 * The provision flows' timeouts, read from the environment once into a typed object
 * (`provisionSettingsFromEnv`) and passed to the flows.
 */

/** Ironic's `[conductor]deploy_callback_timeout` (seconds); env `METALPLANE_DEPLOY_CALLBACK_TIMEOUT`. */
export const DEPLOY_CALLBACK_TIMEOUT_SECONDS = 1800;
/** How long a deploy waits for its image to be ready at the site; env `METALPLANE_IMAGE_WAIT_TIMEOUT`. */
export const IMAGE_WAIT_TIMEOUT_SECONDS = 3600;

export interface ProvisionSettings {
  /** Seconds a deploy waits in `wait call-back` before it fails. */
  readonly callbackTimeoutSeconds: number;
  /** Seconds a deploy waits for its image to be ready at the node's site before it fails. */
  readonly imageWaitTimeoutSeconds: number;
}

function envSeconds(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  fallback: number,
): number {
  const value = Number(env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

/** The settings from `METALPLANE_DEPLOY_CALLBACK_TIMEOUT` and `METALPLANE_IMAGE_WAIT_TIMEOUT` (seconds, > 0). */
export function provisionSettingsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ProvisionSettings {
  return {
    callbackTimeoutSeconds: envSeconds(
      env,
      'METALPLANE_DEPLOY_CALLBACK_TIMEOUT',
      DEPLOY_CALLBACK_TIMEOUT_SECONDS,
    ),
    imageWaitTimeoutSeconds: envSeconds(env, 'METALPLANE_IMAGE_WAIT_TIMEOUT', IMAGE_WAIT_TIMEOUT_SECONDS),
  };
}
