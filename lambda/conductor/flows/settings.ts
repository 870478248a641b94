/**
 * The provision flows' timeouts and cleaning settings: parsed and validated with the rest
 * of the configuration (`lambda/config.ts`), passed to the flows by the composition root.
 */
import {
  DEPLOY_CALLBACK_TIMEOUT_SECONDS,
  type Environment,
  environmentConfig,
  IMAGE_WAIT_TIMEOUT_SECONDS,
  type ProvisionSettings,
  readProvisionSettings,
} from '../../config.ts';

export { DEPLOY_CALLBACK_TIMEOUT_SECONDS, IMAGE_WAIT_TIMEOUT_SECONDS, type ProvisionSettings };

/**
 * The settings from `METALPLANE_DEPLOY_CALLBACK_TIMEOUT`, `METALPLANE_IMAGE_WAIT_TIMEOUT`
 * and `METALPLANE_RAMDISK_WAIT_TIMEOUT` (seconds, > 0), `METALPLANE_AUTOMATED_CLEAN`
 * (default true) and `METALPLANE_CLEAN_ERASE_DEVICES` (default false) of `env`, or of the
 * configuration now (`environmentConfig`).
 */
export function provisionSettingsFromEnv(env?: Environment): ProvisionSettings {
  return env ? readProvisionSettings(env) : environmentConfig().provisioning;
}
