/**
 * cfn-lint (PyPI, pinned in scripts/requirements-dev.txt, installed into .venv by
 * scripts/setup-venv.sh, which `npm test` and CI run first) over the synthesized
 * template of each stage and of the custom-domain variant: exit 0, apart from the rules
 * ignored below, each with its reason.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetalplaneStack } from '../../infra/stack.ts';
import { removeTestApps, testApp } from '../support/cdk.ts';

const cfnLint = new URL('../../.venv/bin/cfn-lint', import.meta.url).pathname;
const run = promisify(execFile);

/**
 * Rules not applied, and why. Nothing else is: a new finding fails the test.
 * - W3005 (DependsOn already enforced by a GetAtt): CDK emits an explicit DependsOn on each
 *   Lambda function's role (and its default policy) beside the `Role` GetAtt; the
 *   redundancy is CDK's and harmless.
 */
const ignoredRules = ['W3005'];

const certificateArn = 'arn:aws:acm:eu-west-1:123456789012:certificate/0f6c2a64-1b7e-4c55-9a3b-2f1e9c7d8a10';
const variants: Record<string, Record<string, string>> = {
  prod: {},
  dev: { 'metalplane:stage': 'dev' },
  domain: {
    'metalplane:stage': 'prod',
    'metalplane:domainName': 'metalplane.example.com',
    'metalplane:certificateArn': certificateArn,
  },
};

const templates: string[] = [];

beforeAll(() => {
  for (const [name, context] of Object.entries(variants)) {
    const app = testApp(context);
    const stackName = `Metalplane-${name}`;
    new MetalplaneStack(app, stackName, { stackName });
    const assembly = app.synth();
    templates.push(join(assembly.directory, assembly.getStackByName(stackName).templateFile));
  }
}, 120_000);

afterAll(removeTestApps);

describe('cfn-lint over the synthesized templates', () => {
  it('is installed in .venv (bash scripts/setup-venv.sh installs scripts/requirements-dev.txt)', () => {
    expect(existsSync(cfnLint), `${cfnLint} is missing: run \`npm run setup:venv\``).toBe(true);
  });

  it('passes every template (prod, dev, custom domain)', async () => {
    expect(templates).toHaveLength(Object.keys(variants).length);
    const args = ['--format', 'parseable', '--ignore-checks', ...ignoredRules, '--', ...templates];
    const outcome = await run(cfnLint, args, { maxBuffer: 16 * 1024 * 1024 }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code?: number | string; stdout?: string; stderr?: string; message: string }) => ({
        code: error.code ?? -1,
        stdout: `${error.stdout ?? ''}${error.stderr ?? ''}` || error.message,
      }),
    );
    expect(outcome.stdout.trim(), 'cfn-lint findings').toBe('');
    expect(outcome.code).toBe(0);
  }, 120_000);
});
