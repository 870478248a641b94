/**
 * Rescue and unrescue: no driver of Metalplane has a rescue interface, so both are
 * refused (400) before anything changes, as Ironic does for a driver without one.
 */
import { invalid } from '../../domain/errors.ts';
import type { Node } from '../../domain/nodes/node.ts';

export function refuseRescue(node: Node): never {
  throw invalid(`Driver ${node.driver} does not support rescue (disabled or not implemented).`);
}
