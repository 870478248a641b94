/**
 * CDK apps for the tests that synthesize the stack.
 *
 * - cdk.json's context, as `cdk synth` reads it, with the test's context over it.
 * - The Lambdas are not bundled unless asked: template and cdk-nag assertions never read
 *   the code, and esbuild over the five functions is most of a synth (≈ 1.7 s of 2 on the
 *   development machine; the suite synthesizes the stack about 40 times).
 *   `test/unit/infra-stack.test.ts` bundles once and checks what the bundles hold.
 * - Each app writes its cloud assembly (a template, and the bundles when bundled: 6 MB)
 *   into a temp dir of its own, which `removeTestApps` deletes: CDK's default is a fresh
 *   `cdk.out*` under the temp dir per app, never removed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { App } from 'aws-cdk-lib';
import { BUNDLING_STACKS } from 'aws-cdk-lib/cx-api';

/** cdk.json's context. */
const cdkContext = (
  JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;

const outdirs: string[] = [];

export interface TestAppOptions {
  /** Bundle the Lambdas with esbuild, as a deploy does (default: no bundling). */
  readonly bundle?: boolean;
  /** Where the assembly's temp dir goes (default: the OS temp dir). */
  readonly parent?: string;
  /** Start from cdk.json's context (default), or from `context` alone. */
  readonly cdkJson?: boolean;
}

/** An App with cdk.json's context and `context` over it; see the module's comment. */
export function testApp(context: Record<string, unknown> = {}, options: TestAppOptions = {}): App {
  const parent = options.parent ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const outdir = resolve(mkdtempSync(join(parent, 'metalplane-cdk-')));
  outdirs.push(outdir);
  return new App({
    outdir,
    context: {
      ...(options.cdkJson === false ? {} : cdkContext),
      ...(options.bundle ? {} : { [BUNDLING_STACKS]: [] }),
      ...context,
    },
  });
}

/** Deletes the assemblies of every app `testApp` made in this file (run it `afterAll`). */
export function removeTestApps(): void {
  for (const outdir of outdirs.splice(0)) rmSync(outdir, { recursive: true, force: true });
}
