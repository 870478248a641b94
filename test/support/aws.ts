/**
 * Points the AWS SDK of this test file at the run's moto server and creates a private
 * set of resources (unique name prefix), so test files never see each other's data.
 */
import { randomBytes } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { inject } from 'vitest';
import { bootstrapResources, resourceEnvironment } from '../../local/bootstrap.ts';
import { emulatorEnvironment, startMoto } from '../../local/moto.ts';

export async function isolatedResources(): Promise<{ prefix: string; env: Record<string, string> }> {
  const prefix = `t-${randomBytes(4).toString('hex')}`;
  const env = { ...emulatorEnvironment(inject('awsEndpoint')), ...resourceEnvironment(prefix) };
  Object.assign(process.env, env);
  await bootstrapResources(prefix);
  return { prefix, env };
}

/**
 * For the shim's conformance tests: a client of the run's moto server (with the shim) and
 * one of a plain `moto_server` started here, to send both the same requests. `stop` ends
 * the plain server and both clients.
 */
export async function shimBesidePlainMoto(): Promise<{
  shim: DynamoDBClient;
  reference: DynamoDBClient;
  stop: () => Promise<void>;
}> {
  Object.assign(process.env, emulatorEnvironment(inject('awsEndpoint')));
  const shim = new DynamoDBClient({ endpoint: inject('awsEndpoint'), maxAttempts: 1 });
  const plain = await startMoto({ plain: true, readyTimeoutMs: 60_000 });
  const reference = new DynamoDBClient({ endpoint: plain.endpoint, maxAttempts: 1 });
  return {
    shim,
    reference,
    stop: async () => {
      shim.destroy();
      reference.destroy();
      await plain.stop();
    },
  };
}
