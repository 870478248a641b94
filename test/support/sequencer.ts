/**
 * The order test files start in: the longest first, so that four workers end together
 * (longest-processing-time scheduling). vitest orders files by their last run's duration
 * when its cache has one. CI clones fresh, so there is no cache there, and vitest falls
 * back to file size: the two halves of the disk-deploy VM test are 4-line files (their body
 * is in disk-deploy-vm.ts), so they started last and ran alone at the end of the run.
 * The files below are the longest by far (docs/performance.md). They start first, in this order.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const LONGEST_FIRST = [
  'test/e2e/disk-deploy-vm-uefi.test.ts',
  'test/e2e/disk-deploy-vm-bios.test.ts',
  'test/integration/hostile-input.test.ts',
  'test/e2e/vmedia-vm.test.ts',
  'test/integration/cli-fleet.test.ts',
  'test/integration/schemathesis.test.ts',
];

const rank = (spec: TestSpecification) => LONGEST_FIRST.findIndex((path) => spec.moduleId.endsWith(path));

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const known = sorted.filter((spec) => rank(spec) >= 0).sort((a, b) => rank(a) - rank(b));
    return [...known, ...sorted.filter((spec) => rank(spec) < 0)];
  }
}
