/**
 * `GET /v1/nodes/{node}/validate`, built from the node's interface implementations'
 * `validate()`, and the checks power and management actions make before a command.
 * No BMC is contacted: like Ironic, validation only says whether the node's
 * configuration is complete and well formed.
 */
import { unsupported } from './generic.ts';
import type { InterfaceName, NodeConfig, ValidationContext } from './interfaces.ts';
import { hardwareTypes } from './registry.ts';

/** Interfaces in the order Ironic reports them (core, then standard). */
const REPORTED_INTERFACES = [
  'boot',
  'deploy',
  'management',
  'network',
  'power',
  'bios',
  'console',
  'inspect',
  'raid',
  'rescue',
  'storage',
] as const satisfies readonly InterfaceName[];

export interface InterfaceValidation {
  readonly result: boolean;
  readonly reason?: string;
}

/** The problem (Ironic's message) with the node's configuration for one interface, if any. */
function interfaceProblem(node: NodeConfig, kind: InterfaceName, ctx: ValidationContext): string | undefined {
  const name = node[`${kind}_interface`] ?? null;
  if (name === null) return unsupported(node, kind);
  const impl = hardwareTypes.implementation(kind, name, node.driver);
  if (impl) return impl.validate?.(node, ctx);
  // An implementation no registered type enables: only a `no-*` one is known to fail.
  return name.startsWith('no-') ? unsupported(node, kind) : undefined;
}

/** What a power or management action checks before its command (the interface's `validate()`). */
export function validateDriverInfo(node: NodeConfig, iface: 'power' | 'management'): string | undefined {
  if ((node[`${iface}_interface`] ?? null) === null) return undefined;
  return interfaceProblem(node, iface, {});
}

/**
 * `GET /v1/nodes/{node}/validate`. `ports` is the number of the node's ports, which the
 * PXE/iPXE boot interfaces need to key boot files by MAC.
 */
export function validateNode(node: NodeConfig, ports: number): Record<string, InterfaceValidation> {
  const report: Record<string, InterfaceValidation> = {};
  for (const kind of REPORTED_INTERFACES) {
    const problem = interfaceProblem(node, kind, { ports });
    report[kind] = problem ? { result: false, reason: problem } : { result: true };
  }
  return report;
}
