/**
 * A fleet selector: `site=fra1,provision_state=available,trait=CUSTOM_GPU`. Terms are
 * joined by commas and all must hold; `key=value` or `key!=value`, and `a|b` matches
 * either. What the node list API filters (Ironic's query parameters) is asked of the API;
 * the rest (traits, names, power state, negations) is matched here on the listed fields.
 */
import { UsageError } from '../os-config.ts';

/** The node fields a rollout reads: the selector's keys and the states it watches. */
export const NODE_FIELDS = [
  'uuid',
  'name',
  'conductor_group',
  'provision_state',
  'target_provision_state',
  'power_state',
  'target_power_state',
  'maintenance',
  'traits',
  'driver',
  'resource_class',
  'owner',
  'lessee',
  'fault',
  'last_error',
  'provision_updated_at',
] as const;

export type NodeView = {
  uuid: string;
  name: string | null;
  conductor_group: string;
  provision_state: string;
  target_provision_state: string | null;
  power_state: string | null;
  target_power_state: string | null;
  maintenance: boolean;
  traits: string[] | null;
  last_error: string | null;
  provision_updated_at: string | null;
} & Record<string, unknown>;

/** Selector keys → the node field they read, and whether the API's list can filter on it. */
const KEYS: Record<string, { field: string; apiFilter?: string }> = {
  site: { field: 'conductor_group', apiFilter: 'conductor_group' },
  conductor_group: { field: 'conductor_group', apiFilter: 'conductor_group' },
  provision_state: { field: 'provision_state', apiFilter: 'provision_state' },
  driver: { field: 'driver', apiFilter: 'driver' },
  resource_class: { field: 'resource_class', apiFilter: 'resource_class' },
  owner: { field: 'owner', apiFilter: 'owner' },
  lessee: { field: 'lessee', apiFilter: 'lessee' },
  fault: { field: 'fault', apiFilter: 'fault' },
  maintenance: { field: 'maintenance', apiFilter: 'maintenance' },
  power_state: { field: 'power_state' },
  trait: { field: 'traits' },
  name: { field: 'name' },
  uuid: { field: 'uuid' },
};

export interface Term {
  readonly key: string;
  readonly negated: boolean;
  readonly values: readonly string[];
}

export interface Selector {
  readonly text: string;
  readonly terms: readonly Term[];
}

const TERM = /^([a-z_]+)\s*(!=|=)\s*(.+)$/;

export function parseSelector(text: string): Selector {
  const parts = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  if (parts.length === 0)
    throw new UsageError('--selector is empty: give terms such as site=fra1,provision_state=available');
  const terms = parts.map((part) => {
    const match = TERM.exec(part);
    if (!match) throw new UsageError(`--selector: "${part}" is not KEY=VALUE or KEY!=VALUE`);
    const [, key = '', operator, raw = ''] = match;
    if (!(key in KEYS)) {
      throw new UsageError(`--selector: unknown key "${key}" (known: ${Object.keys(KEYS).join(', ')})`);
    }
    const values = raw.split('|').map((value) => value.trim());
    if (values.some((value) => value === ''))
      throw new UsageError(`--selector: "${part}" has an empty value`);
    if (key === 'maintenance' && values.some((value) => value !== 'true' && value !== 'false')) {
      throw new UsageError(`--selector: maintenance is true or false, not "${raw}"`);
    }
    return { key, negated: operator === '!=', values };
  });
  return { text: parts.join(','), terms };
}

/** The query parameters the API filters on: single-valued, positive terms of filterable keys. */
export function apiFilters(selector: Selector): Record<string, string> {
  const filters: Record<string, string> = {};
  for (const term of selector.terms) {
    const filter = KEYS[term.key]?.apiFilter;
    if (!filter || term.negated || term.values.length !== 1 || filter in filters) continue;
    if ((term.values[0] ?? '').includes('*')) continue;
    filters[filter] =
      term.key === 'conductor_group' || term.key === 'site'
        ? (term.values[0] ?? '').toLowerCase()
        : (term.values[0] ?? '');
  }
  return filters;
}

/** `*` matches any run of characters; everything else literally. */
function glob(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

function termHolds(term: Term, node: NodeView): boolean {
  const field = KEYS[term.key]?.field ?? term.key;
  const value = node[field];
  const matchesOne = (wanted: string): boolean => {
    if (term.key === 'trait')
      return Array.isArray(value) && value.some((trait) => glob(wanted).test(String(trait)));
    if (term.key === 'site' || term.key === 'conductor_group') {
      return glob(wanted.toLowerCase()).test(String(value ?? '').toLowerCase());
    }
    return glob(wanted).test(value === null || value === undefined ? '' : String(value));
  };
  const matched = term.values.some(matchesOne);
  return term.negated ? !matched : matched;
}

export function matches(selector: Selector, node: NodeView): boolean {
  return selector.terms.every((term) => termHolds(term, node));
}
