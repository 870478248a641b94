/**
 * A node as the API shows it at a microversion: Ironic's field order, fields hidden
 * below the version that introduced them, secrets masked, links built from the request.
 */
import { maskDriverInfo, maskDriverInternalInfo, maskInstanceInfo } from '../auth/secrets.ts';
import { NODE_FIELDS, NODE_LINK_FIELDS } from './fields.ts';
import type { Node } from './node.ts';

export interface RenderOptions {
  readonly minor: number;
  readonly baseUrl: string;
  /** Only these fields (plus links); undefined means every field and sub-resource link. */
  readonly fields?: readonly string[];
  /** The agent host serving the node's site (Ironic's `conductor`), if any. */
  readonly conductor?: string | null;
}

const link = (href: string, rel: string) => ({ href, rel });

function links(baseUrl: string, path: string) {
  return [link(`${baseUrl}/v1/${path}`, 'self'), link(`${baseUrl}/${path}`, 'bookmark')];
}

export function renderNode(node: Node, options: RenderOptions): Record<string, unknown> {
  const { minor, baseUrl, fields } = options;
  const source = node as unknown as Record<string, unknown>;
  const wanted = fields ? new Set(fields) : undefined;
  const out: Record<string, unknown> = {};
  for (const [field, since] of NODE_FIELDS) {
    if (since > minor) continue;
    if (wanted && field !== 'links' && !wanted.has(field)) continue;
    out[field] = fieldValue(node, source, field, options);
  }
  if (!wanted) {
    for (const [field, since] of NODE_LINK_FIELDS) {
      if (since <= minor) out[field] = links(baseUrl, `nodes/${node.uuid}/${field}`);
    }
  }
  return out;
}

function fieldValue(
  node: Node,
  source: Record<string, unknown>,
  field: string,
  options: RenderOptions,
): unknown {
  switch (field) {
    case 'links':
      return links(options.baseUrl, `nodes/${node.uuid}`);
    case 'conductor':
      return options.conductor ?? null;
    case 'driver_info':
      return maskDriverInfo(node.driver_info);
    case 'instance_info':
      return maskInstanceInfo(node.instance_info);
    case 'driver_internal_info':
      return maskDriverInternalInfo(node.driver_internal_info);
    case 'provision_state':
      // Before 1.2, "available" was called "None" (NOSTATE).
      return options.minor < 2 && node.provision_state === 'available' ? null : node.provision_state;
    default:
      return source[field] ?? null;
  }
}
