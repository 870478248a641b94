/**
 * Redfish boot device, as Ironic's redfish management interface
 * (`ironic/drivers/modules/redfish/management.py`): the ComputerSystem's `Boot` override.
 *
 * Setting PATCHes `{"Boot": {"BootSourceOverrideTarget", "BootSourceOverrideEnabled"}}`,
 * Enabled only when it differs from the current value — as Ironic's `_set_boot_device`,
 * because some BMCs refuse a PATCH that sets Enabled to what it already is. Reading maps
 * back; an override that is `Disabled` is no boot device at all (the BMC's boot order
 * applies), where Ironic would still report the stale target.
 */
import type { BootDevice } from '../../../protocol/actions.ts';
import type { CallOptions, JsonObject, RedfishClient } from './client.ts';
import type { RedfishTarget } from './driver-info.ts';

/** The boot devices Redfish can set (Ironic's BOOT_DEVICE_MAP_REV; no `safe`). */
export type RedfishBootDevice = Exclude<BootDevice, 'safe'>;

/** Ironic's boot device → BootSourceOverrideTarget. */
export const BOOT_TARGETS: Readonly<Record<RedfishBootDevice, string>> = {
  pxe: 'Pxe',
  disk: 'Hdd',
  cdrom: 'Cd',
  bios: 'BiosSetup',
};

const DEVICE_OF: Readonly<Record<string, RedfishBootDevice>> = Object.fromEntries(
  Object.entries(BOOT_TARGETS).map(([device, target]) => [target, device as RedfishBootDevice]),
);

/** Ironic's BOOT_DEVICE_PERSISTENT_MAP, and Disabled: no override. */
const PERSISTENT_OF: Readonly<Record<string, boolean>> = { Continuous: true, Once: false };

const bootOf = (system: JsonObject): JsonObject =>
  typeof system.Boot === 'object' && system.Boot !== null ? (system.Boot as JsonObject) : {};

/** The boot device and persistence a system reports. */
export function bootDeviceOf(system: JsonObject): {
  boot_device: RedfishBootDevice | null;
  persistent: boolean | null;
} {
  const boot = bootOf(system);
  const enabled = boot.BootSourceOverrideEnabled;
  if (enabled === 'Disabled') return { boot_device: null, persistent: null };
  const target = boot.BootSourceOverrideTarget;
  return {
    boot_device: (typeof target === 'string' && DEVICE_OF[target]) || null,
    persistent:
      typeof enabled === 'string' && enabled in PERSISTENT_OF ? (PERSISTENT_OF[enabled] ?? null) : null,
  };
}

/** The PATCH body: the target, and Enabled only when it changes (Ironic's rule). */
export function bootPatch(system: JsonObject, device: RedfishBootDevice, persistent: boolean): JsonObject {
  const enabled = persistent ? 'Continuous' : 'Once';
  return {
    Boot: {
      BootSourceOverrideTarget: BOOT_TARGETS[device],
      ...(bootOf(system).BootSourceOverrideEnabled === enabled ? {} : { BootSourceOverrideEnabled: enabled }),
    },
  };
}

/**
 * The boot devices the system accepts (`BootSourceOverrideTarget@Redfish.AllowableValues`,
 * those Ironic has a name for); all four when the BMC does not say.
 */
export function supportedBootDevicesOf(system: JsonObject): RedfishBootDevice[] {
  const allowed = bootOf(system)['BootSourceOverrideTarget@Redfish.AllowableValues'];
  const all = Object.keys(BOOT_TARGETS) as RedfishBootDevice[];
  if (!Array.isArray(allowed)) return all;
  return all.filter((device) => allowed.includes(BOOT_TARGETS[device]));
}

/** Reads the system (current Enabled), then PATCHes it. */
export async function setBootDevice(
  client: RedfishClient,
  target: RedfishTarget,
  device: RedfishBootDevice,
  persistent: boolean,
  call: CallOptions,
): Promise<void> {
  const system = await client.system(target, call);
  const path = await client.systemPath(target, call);
  await client.patch(target, path, bootPatch(system, device, persistent), call);
}

export async function getBootDevice(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  return bootDeviceOf(await client.system(target, call));
}

export async function supportedBootDevices(
  client: RedfishClient,
  target: RedfishTarget,
  call: CallOptions,
): Promise<RedfishBootDevice[]> {
  return supportedBootDevicesOf(await client.system(target, call));
}
