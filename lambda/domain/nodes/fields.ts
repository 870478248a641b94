/**
 * The fields of a node as Ironic's API shows them, in Ironic's order, with the
 * microversion that introduced each (a field is hidden below it, and refused on input).
 */
export const NODE_FIELDS: ReadonlyArray<readonly [field: string, sinceMinor: number]> = [
  ['uuid', 1],
  ['created_at', 1],
  ['updated_at', 1],
  ['automated_clean', 47],
  ['bios_interface', 40],
  ['boot_interface', 31],
  ['boot_mode', 75],
  ['clean_step', 7],
  ['conductor_group', 46],
  ['console_enabled', 1],
  ['console_interface', 31],
  ['deploy_interface', 31],
  ['deploy_step', 44],
  ['description', 51],
  ['driver', 1],
  ['driver_info', 1],
  ['driver_internal_info', 3],
  ['extra', 1],
  ['fault', 42],
  ['inspection_finished_at', 6],
  ['inspection_started_at', 6],
  ['inspect_interface', 31],
  ['instance_info', 1],
  ['instance_uuid', 1],
  ['last_error', 1],
  ['lessee', 65],
  ['maintenance', 1],
  ['maintenance_reason', 1],
  ['management_interface', 31],
  ['name', 5],
  ['network_data', 66],
  ['network_interface', 20],
  ['owner', 50],
  ['power_interface', 31],
  ['power_state', 1],
  ['properties', 1],
  ['protected', 48],
  ['protected_reason', 48],
  ['provision_state', 1],
  ['provision_updated_at', 1],
  ['raid_config', 12],
  ['raid_interface', 31],
  ['rescue_interface', 38],
  ['reservation', 1],
  ['resource_class', 21],
  ['retired', 61],
  ['retired_reason', 61],
  ['secure_boot', 75],
  ['shard', 82],
  ['storage_interface', 33],
  ['target_power_state', 1],
  ['target_provision_state', 1],
  ['target_raid_config', 12],
  ['traits', 37],
  ['vendor_interface', 31],
  ['links', 1],
  ['conductor', 49],
  ['allocation_uuid', 52],
  ['chassis_uuid', 1],
];

/** Sub-resource links a full node carries, and the version that shows each. */
export const NODE_LINK_FIELDS: ReadonlyArray<readonly [field: string, sinceMinor: number]> = [
  ['ports', 1],
  ['states', 14],
  ['portgroups', 24],
  ['volume', 32],
];

const SINCE = new Map([...NODE_FIELDS, ...NODE_LINK_FIELDS]);

export function fieldSince(field: string): number | undefined {
  return SINCE.get(field);
}

/** Fields a client may name in `?fields=` at a version (Ironic also accepts uuid, traits). */
export function selectableFields(minor: number): string[] {
  return NODE_FIELDS.filter(([field, since]) => since <= minor && field !== 'links').map(([field]) => field);
}

/** What `GET /v1/nodes` shows per node without `detail` (Ironic's default fields). */
export function defaultListFields(minor: number): string[] {
  const fields = ['uuid', 'instance_uuid', 'maintenance', 'power_state', 'provision_state'];
  if (minor >= 5) fields.push('name');
  return fields;
}

/** Root fields a JSON Patch may touch (Ironic 21.4's list; version-gated ones below). */
export const UPDATABLE_FIELDS: readonly string[] = [
  'automated_clean',
  'bios_interface',
  'boot_interface',
  'chassis_uuid',
  'conductor_group',
  'console_interface',
  'deploy_interface',
  'description',
  'driver',
  'driver_info',
  'extra',
  'inspect_interface',
  'instance_info',
  'instance_uuid',
  'lessee',
  'maintenance',
  'management_interface',
  'name',
  'network_data',
  'network_interface',
  'owner',
  'power_interface',
  'properties',
  'protected',
  'protected_reason',
  'raid_interface',
  'rescue_interface',
  'resource_class',
  'retired',
  'retired_reason',
  'shard',
  'storage_interface',
  'vendor_interface',
];

/** Provision states in which a node may be deleted without maintenance (Ironic's list). */
export const DELETE_ALLOWED_STATES = ['manageable', 'enroll', 'adopt failed', 'available'] as const;

/**
 * The faults Ironic puts a node in maintenance for (`ironic/common/faults.py`'s
 * VALID_FAULTS, in its order): the only values of the `fault` list filter it accepts.
 */
export const VALID_FAULTS = ['power failure', 'clean failure', 'rescue abort failure'] as const;
