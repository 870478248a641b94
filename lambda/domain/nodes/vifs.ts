/**
 * A node's VIFs (virtual network interfaces, 1.28+) as Ironic 21.4 handles them with the
 * `noop` network interface, the only one Metalplane's hardware types enable.
 *
 * Ironic's `NodeVIFController` (`api/controllers/v1/node.py`) validates the request, then
 * the conductor (`ConductorManager.vif_list` / `vif_attach` / `vif_detach`) takes the
 * node's lock (shared to list, exclusive to attach or detach: a node already locked is a
 * 409 NodeLocked) and asks the node's network interface. `NoopNetwork`
 * (`drivers/modules/network/noop.py`) lists nothing, and its `vif_attach` / `vif_detach`
 * do nothing: it does not take `VIFPortIDMixin`, so no port or port group gets an
 * `internal_info.tenant_vif_port_id`, no free port is needed (no NoFreePhysicalPorts) and
 * detaching a VIF never attached is not an error (no VifNotAttached). Only the checks
 * before the interface is reached refuse anything; and nothing is ever stored.
 */
import { conflict, invalid } from '../errors.ts';
import { isUuidLike, isValidLogicalName } from '../identifiers.ts';
import { validator } from '../schema.ts';
import type { Node } from './node.ts';

/** The node VIF sub-resource came with 1.28. */
export const VIFS_SINCE = 28;
/** `port_uuid` / `portgroup_uuid` in an attach body were given a meaning in 1.67. */
export const VIF_ATTACH_PORT_SINCE = 67;

/** Ironic's VIF_VALIDATOR schema: an object with a string `id`, anything else allowed. */
export const VIF_ATTACH_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'string' } },
  required: ['id'],
  additionalProperties: true,
} as const;

export type VifAttachBody = { id: string } & Record<string, unknown>;

const validateVifSchema = validator<VifAttachBody>('vif', VIF_ATTACH_SCHEMA);

/** Ironic's `args.uuid_or_name`: a UUID, or RFC 3986 unreserved characters (1 to 255). */
function isUuidOrName(value: string): boolean {
  return isUuidLike(value) || isValidLogicalName(value);
}

/**
 * `POST /v1/nodes/{node}/vifs`'s body, as `@args.validate(vif=VIF_VALIDATOR)` checks it
 * (before the node is looked up). An empty body is `{}` there (`method.body`), so it lacks
 * `id` like any other.
 */
export function checkVifAttachBody(body: unknown): VifAttachBody {
  const vif = validateVifSchema(body);
  if (!isUuidOrName(vif.id)) throw invalid(`Expected UUID or name for id: ${vif.id}`);
  return vif;
}

/** The attach checks made once the node is known (`NodeVIFController.post`, 1.67+). */
export function checkVifAttachTarget(vif: VifAttachBody, minor: number): void {
  if (minor >= VIF_ATTACH_PORT_SINCE && 'port_uuid' in vif && 'portgroup_uuid' in vif)
    throw invalid('Cannot specify both port_uuid and portgroup_uuid');
}

/** `DELETE /v1/nodes/{node}/vifs/{vif_id}`: `@args.validate(vif_id=args.uuid_or_name)`. */
export function checkVifId(vifId: string): string {
  if (!isUuidOrName(vifId)) throw invalid(`Expected UUID or name for vif_id: ${vifId}`);
  return vifId;
}

/** The conductor's exclusive lock for attach and detach: Ironic's NodeLocked (409). */
export function checkVifLock(node: Node): void {
  if (node.reservation) {
    throw conflict(
      `Node ${node.uuid} is locked by host ${node.reservation}, please retry after the current operation is completed.`,
    );
  }
}

/** The network interfaces Metalplane's hardware types enable. */
export const NOOP_NETWORK = 'noop';

/**
 * A node whose network interface is not enabled (only a direct write to the store can give
 * it one): Ironic cannot build its driver for the conductor's task, and answers
 * InterfaceNotFoundInEntrypoint (400) before anything is attached or detached.
 */
export function checkVifNetworkInterface(node: Node): void {
  if (node.network_interface !== NOOP_NETWORK) {
    throw invalid(
      `Could not find the following interface in the 'ironic.hardware.interfaces.network' entrypoint: ${node.network_interface}. Valid interfaces are ['${NOOP_NETWORK}'].`,
    );
  }
}
