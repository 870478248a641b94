/**
 * The site's nodes as the power sync needs them, read page by page from the control
 * plane (`GET /v1/agent/nodes`), each entry checked: what comes over the network is
 * validated before the agent acts on it.
 */
import type { Channel } from '../channel.ts';
import type { SyncNode } from './sync.ts';

/** Enough pages for 100,000 nodes at the route's default page size; a loop bound. */
const MAX_PAGES = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const stringOrNull = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function parseSyncNode(raw: unknown): SyncNode | undefined {
  if (!isObject(raw) || typeof raw.uuid !== 'string' || !UUID.test(raw.uuid)) return undefined;
  if (typeof raw.driver !== 'string') return undefined;
  return {
    uuid: raw.uuid,
    driver: raw.driver,
    driver_info: isObject(raw.driver_info) ? raw.driver_info : {},
    power_state: stringOrNull(raw.power_state),
    target_power_state: stringOrNull(raw.target_power_state),
    reservation: stringOrNull(raw.reservation),
    fault: stringOrNull(raw.fault),
    sync: raw.sync === true,
  };
}

export async function listSiteNodes(channel: Pick<Channel, 'getJson'>): Promise<SyncNode[]> {
  const nodes: SyncNode[] = [];
  let path: string | undefined = '/v1/agent/nodes?limit=500';
  for (let page = 0; path && page < MAX_PAGES; page++) {
    const body = await channel.getJson(path);
    if (!isObject(body) || !Array.isArray(body.nodes))
      throw new Error('GET /v1/agent/nodes: unexpected answer');
    for (const raw of body.nodes) {
      const node = parseSyncNode(raw);
      if (node) nodes.push(node);
    }
    path = undefined;
    if (typeof body.next === 'string') {
      const next = new URL(body.next);
      if (next.pathname.endsWith('/v1/agent/nodes')) path = `/v1/agent/nodes${next.search}`;
    }
  }
  return nodes;
}
