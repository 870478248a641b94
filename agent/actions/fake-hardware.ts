/**
 * `fake-hardware`: Ironic's development hardware type. Its power, management and boot
 * interfaces (simulated state, no BMC) arrive with the power and boot issues; for now it
 * only names the driver the agent advertises, and the common actions apply.
 */
import type { Driver } from './types.ts';

export const fakeHardware: Driver = {
  name: 'fake-hardware',
  interfaces: {},
};
