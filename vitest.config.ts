import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One moto server for the whole run (each test file isolates itself by resource names),
    // and the second AWS engines the adapters' contract also runs on (ElasticMQ, dynalite).
    globalSetup: ['test/support/engines.ts'],
    // Handlers log JSON lines through Powertools; tests that read logs turn them on.
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT' },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/totals-reporter.ts'],
  },
});
