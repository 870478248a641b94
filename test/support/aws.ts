/**
 * Points the AWS SDK of this test file at the run's moto server and creates a private
 * set of resources (unique name prefix), so test files never see each other's data.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { bootstrapResources, resourceEnvironment } from '../../local/bootstrap.ts';
import { emulatorEnvironment } from '../../local/moto.ts';

export async function isolatedResources(): Promise<{ prefix: string; env: Record<string, string> }> {
  const prefix = `t-${randomBytes(4).toString('hex')}`;
  const env = { ...emulatorEnvironment(inject('awsEndpoint')), ...resourceEnvironment(prefix) };
  Object.assign(process.env, env);
  await bootstrapResources(prefix);
  return { prefix, env };
}
