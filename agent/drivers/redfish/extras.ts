/**
 * The rest of Ironic's redfish management interface (`redfish/management.py`,
 * `redfish/boot.py`): boot mode, secure boot, indicators (LEDs) and virtual media.
 *
 * - Boot mode: the system's `Boot.BootSourceOverrideMode` (UEFI ↔ uefi, Legacy ↔ bios),
 *   PATCHed with the current override target kept (some BMCs, sushy-tools among them,
 *   refuse a Boot PATCH that names no target).
 * - Secure boot: the system's `SecureBoot` resource, `SecureBootEnable`.
 * - Indicators: `IndicatorLED` (Lit / Blinking / Off) of the system and of the chassis it
 *   links to, each named by its UUID (else its Id), as Ironic names them.
 * - Virtual media: the first member of the system's (else its manager's) VirtualMedia
 *   collection that takes a CD or DVD; an image already there is ejected first, then
 *   `VirtualMedia.InsertMedia {Image, Inserted, WriteProtected}` (Ironic's `_insert_vmedia`).
 */
import type {
  BootMode,
  IndicatorComponent,
  IndicatorState,
  SupportedIndicators,
} from '../../../protocol/actions.ts';
import { ActionFailure } from '../types.ts';
import type { CallOptions, JsonObject, RedfishClient } from './client.ts';
import type { RedfishTarget } from './driver-info.ts';

const objectOf = (value: unknown): JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as JsonObject) : {};
const linkOf = (value: unknown): string | undefined => {
  const id = objectOf(value)['@odata.id'];
  return typeof id === 'string' ? id : undefined;
};

// --- boot mode ----------------------------------------------------------------------

const MODE_OF: Readonly<Record<string, BootMode>> = { UEFI: 'uefi', Legacy: 'bios' };
const REDFISH_MODE: Readonly<Record<BootMode, string>> = { uefi: 'UEFI', bios: 'Legacy' };

export async function getBootMode(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  const mode = objectOf((await client.system(target, call)).Boot).BootSourceOverrideMode;
  return (typeof mode === 'string' && MODE_OF[mode]) || null;
}

export async function setBootMode(
  client: RedfishClient,
  target: RedfishTarget,
  mode: BootMode,
  call: CallOptions,
): Promise<void> {
  const boot = objectOf((await client.system(target, call)).Boot);
  const path = await client.systemPath(target, call);
  const keep = typeof boot.BootSourceOverrideTarget === 'string' ? boot.BootSourceOverrideTarget : undefined;
  await client.patch(
    target,
    path,
    {
      Boot: {
        BootSourceOverrideMode: REDFISH_MODE[mode],
        ...(keep ? { BootSourceOverrideTarget: keep } : {}),
      },
    },
    call,
  );
}

// --- secure boot --------------------------------------------------------------------

async function secureBootPath(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  const path = linkOf((await client.system(target, call)).SecureBoot);
  if (!path) throw new ActionFailure('the BMC offers no secure boot resource for this system');
  return path;
}

export async function getSecureBoot(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  const enabled = (await client.get(target, await secureBootPath(client, target, call), call))
    .SecureBootEnable;
  return typeof enabled === 'boolean' ? enabled : null;
}

export async function setSecureBoot(
  client: RedfishClient,
  target: RedfishTarget,
  enabled: boolean,
  call: CallOptions,
): Promise<void> {
  await client.patch(target, await secureBootPath(client, target, call), { SecureBootEnable: enabled }, call);
}

// --- indicators ---------------------------------------------------------------------

const STATE_OF: Readonly<Record<string, IndicatorState>> = { Lit: 'on', Blinking: 'blinking', Off: 'off' };
const REDFISH_LED: Readonly<Record<string, string>> = { on: 'Lit', blinking: 'Blinking', off: 'Off' };
const LED_STATES: IndicatorState[] = ['blinking', 'off', 'on'];

/** The system and its chassis that have an `IndicatorLED`: component → id → path. */
async function leds(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  const system = await client.system(target, call);
  const found: Array<{ component: IndicatorComponent; id: string; path: string; doc: JsonObject }> = [];
  const idOf = (doc: JsonObject) => String(doc.UUID ?? doc.Id ?? '');
  if ('IndicatorLED' in system) {
    found.push({
      component: 'system',
      id: idOf(system),
      path: await client.systemPath(target, call),
      doc: system,
    });
  }
  const chassis = objectOf(system.Links).Chassis;
  for (const member of (Array.isArray(chassis) ? chassis : []).slice(0, 8)) {
    const path = linkOf(member);
    if (!path) continue;
    const doc = await client.get(target, path, call);
    if ('IndicatorLED' in doc) found.push({ component: 'chassis', id: idOf(doc), path, doc });
  }
  return found;
}

export async function getIndicators(
  client: RedfishClient,
  target: RedfishTarget,
  call: CallOptions,
): Promise<SupportedIndicators> {
  const supported: SupportedIndicators = {};
  for (const led of await leds(client, target, call)) {
    supported[led.component] = {
      ...(supported[led.component] ?? {}),
      [led.id]: { readonly: false, states: LED_STATES },
    };
  }
  return supported;
}

async function findLed(
  client: RedfishClient,
  target: RedfishTarget,
  component: IndicatorComponent,
  indicator: string,
  call: CallOptions,
) {
  const all = await leds(client, target, call);
  if (!all.some((led) => led.component === component)) {
    throw new ActionFailure(`Invalid component ${component} specified.`);
  }
  const led = all.find((l) => l.component === component && l.id === indicator);
  if (!led) throw new ActionFailure(`Invalid indicator ${indicator} specified.`);
  return led;
}

export async function getIndicatorState(
  client: RedfishClient,
  target: RedfishTarget,
  component: IndicatorComponent,
  indicator: string,
  call: CallOptions,
): Promise<IndicatorState> {
  const led = await findLed(client, target, component, indicator, call);
  const state = led.doc.IndicatorLED;
  return (typeof state === 'string' && STATE_OF[state]) || 'unknown';
}

export async function setIndicatorState(
  client: RedfishClient,
  target: RedfishTarget,
  component: IndicatorComponent,
  indicator: string,
  state: IndicatorState,
  call: CallOptions,
): Promise<void> {
  const led = await findLed(client, target, component, indicator, call);
  const value = REDFISH_LED[state];
  if (!value) throw new ActionFailure(`Invalid indicator state ${state} specified.`);
  await client.patch(target, led.path, { IndicatorLED: value }, call);
}

// --- virtual media ------------------------------------------------------------------

/** The CD/DVD virtual media device of the system (or of its manager). */
async function cdDevice(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  const system = await client.system(target, call);
  const collections: string[] = [];
  const own = linkOf(system.VirtualMedia);
  if (own) collections.push(own);
  const managers = objectOf(system.Links).ManagedBy;
  for (const manager of (Array.isArray(managers) ? managers : []).slice(0, 4)) {
    const path = linkOf(manager);
    if (!path) continue;
    const media = linkOf((await client.get(target, path, call)).VirtualMedia);
    if (media) collections.push(media);
  }
  for (const collection of collections) {
    const members = (await client.get(target, collection, call)).Members;
    for (const member of (Array.isArray(members) ? members : []).slice(0, 16)) {
      const path = linkOf(member);
      if (!path) continue;
      const doc = await client.get(target, path, call);
      const types = Array.isArray(doc.MediaTypes) ? doc.MediaTypes : [];
      if (types.includes('CD') || types.includes('DVD')) return { path, doc };
    }
  }
  throw new ActionFailure('the BMC offers no virtual CD or DVD drive for this system');
}

function actionTarget(doc: JsonObject, action: string, path: string): string {
  const declared = objectOf(objectOf(doc.Actions)[`#VirtualMedia.${action}`]).target;
  return typeof declared === 'string' ? declared : `${path}/Actions/VirtualMedia.${action}`;
}

export async function insertVirtualMedia(
  client: RedfishClient,
  target: RedfishTarget,
  url: string,
  call: CallOptions,
): Promise<void> {
  const { path, doc } = await cdDevice(client, target, call);
  if (doc.Inserted === true) await client.post(target, actionTarget(doc, 'EjectMedia', path), {}, call);
  await client.post(
    target,
    actionTarget(doc, 'InsertMedia', path),
    { Image: url, Inserted: true, WriteProtected: true },
    call,
  );
}

export async function ejectVirtualMedia(client: RedfishClient, target: RedfishTarget, call: CallOptions) {
  const { path, doc } = await cdDevice(client, target, call);
  if (doc.Inserted === true) await client.post(target, actionTarget(doc, 'EjectMedia', path), {}, call);
}
