/**
 * Starts one moto server for the whole test run and hands its endpoint to every test
 * file (`inject('awsEndpoint')`). Test files isolate themselves with unique resource
 * names (`test/support/aws.ts`), so they can share it and run in parallel.
 */
import type { TestProject } from 'vitest/node';
import { startMoto } from '../../local/moto.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    awsEndpoint: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const moto = await startMoto();
  project.provide('awsEndpoint', moto.endpoint);
  return () => moto.stop();
}
