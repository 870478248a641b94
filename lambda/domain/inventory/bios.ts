/**
 * BIOS settings of a node (API 1.40+), as the node's agent reports them (Ironic 21.4's
 * `api/controllers/v1/bios.py`). Read-only through the API. Pure.
 */
import { links } from './common.ts';

export const BIOS_SINCE = 40;
/** `detail`, `fields` and the registry fields came with 1.74. */
export const BIOS_REGISTRY_SINCE = 74;

export interface BiosSetting {
  name: string;
  value: string | null;
  created_at: string;
  updated_at: string | null;
  attribute_type: string | null;
  allowable_values: string[] | null;
  lower_bound: number | null;
  max_length: number | null;
  min_length: number | null;
  read_only: boolean | null;
  reset_required: boolean | null;
  unique: boolean | null;
  upper_bound: number | null;
}

export const BIOS_DEFAULT_FIELDS = ['name', 'value'] as const;
export const BIOS_REGISTRY_FIELDS = [
  'name',
  'value',
  'attribute_type',
  'allowable_values',
  'lower_bound',
  'max_length',
  'min_length',
  'read_only',
  'reset_required',
  'unique',
  'upper_bound',
] as const;

/**
 * Ironic's `convert_with_links`: created_at, updated_at, the fields asked for, links.
 * `nodeIdent` is how the links name the node (Ironic uses the identifier the client
 * gave when listing, the UUID when showing one setting).
 */
export function renderBiosSetting(
  setting: BiosSetting,
  options: { baseUrl: string; nodeIdent: string; fields: readonly string[] },
): Record<string, unknown> {
  const source = setting as unknown as Record<string, unknown>;
  const view: Record<string, unknown> = { created_at: setting.created_at, updated_at: setting.updated_at };
  for (const field of BIOS_REGISTRY_FIELDS) {
    if (options.fields.includes(field)) view[field] = source[field] ?? null;
  }
  view.links = links(options.baseUrl, `nodes/${options.nodeIdent}/bios/${setting.name}`);
  return view;
}
