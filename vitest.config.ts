import { defineConfig } from 'vitest/config';
import LongestFirst from './test/support/sequencer.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One moto server for the whole run (each test file isolates itself by resource names),
    // and the second AWS engines the adapters' contract also runs on (ElasticMQ, dynalite).
    globalSetup: ['test/support/engines.ts'],
    // Handlers log JSON lines through Powertools; tests that read logs turn them on.
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT' },
    // Files run four at a time. Most of a file's wall time is waiting (agents, BMCs, VMs
    // booting, TFTP/HTTP peers), so on the 2 cores of CI four workers take the suite from
    // ~25 to ~13 min; vitest's default (cores - 1) would be one. Test files are isolated from
    // each other by resource names, free ports and their own temp dirs, and the shared
    // build caches publish atomically (scripts/cache-entry.ts). docs/performance.md.
    maxWorkers: 4,
    // The longest files first, even on a cold cache (test/support/sequencer.ts).
    sequence: { sequencer: LongestFirst },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/totals-reporter.ts'],
  },
});
