import { defineConfig } from 'vitest/config';

/**
 * The adapters' tests on the second AWS emulator engines (docs/local-aws-engines.md):
 * `npx vitest run --config vitest.engines.config.ts`. The global setup starts moto,
 * ElasticMQ (SQS) and dynalite (DynamoDB); the adapter contract runs on each, and the
 * command channel's own test files run with SQS on ElasticMQ (DynamoDB and S3 on moto).
 */
export default defineConfig({
  test: {
    include: [
      'test/integration/engines-adapters.test.ts',
      'test/integration/commands.test.ts',
      'test/integration/commands-dead-letter.test.ts',
      'test/integration/agent-channel.test.ts',
      'test/integration/sites.test.ts',
    ],
    globalSetup: ['test/support/engines.ts'],
    setupFiles: ['test/support/engines-sqs.ts'],
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT' },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/totals-reporter.ts'],
  },
});
