// The whole-disk deploy end to end in a BIOS VM: see disk-deploy-vm.ts.
import { diskDeployTests } from './disk-deploy-vm.ts';

diskDeployTests('bios');
