/**
 * cdk-nag's AwsSolutions rule pack over the stack, in each stage and with the optional
 * custom domain: no unsuppressed error or warning. What the stack does not fix is
 * suppressed in `infra/security.ts` (`suppressNagFindings`), each with its written reason,
 * so the suppressions are part of every synth, not of this test.
 */
import { Aspects } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MetalplaneStack } from '../../infra/stack.ts';
import { removeTestApps, testApp } from '../support/cdk.ts';

afterAll(removeTestApps);

const certificateArn = 'arn:aws:acm:eu-west-1:123456789012:certificate/0f6c2a64-1b7e-4c55-9a3b-2f1e9c7d8a10';

function nagged(context: Record<string, unknown>): { stack: MetalplaneStack; annotations: Annotations } {
  const stack = new MetalplaneStack(testApp(context), 'Metalplane', { stackName: 'Metalplane' });
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
  return { stack, annotations: Annotations.fromStack(stack) };
}

/** `path: rule id: message` of each finding, so a failure names what to fix. */
function findings(annotations: Annotations, level: 'error' | 'warning'): string[] {
  const found =
    level === 'error'
      ? annotations.findError('*', Match.stringLikeRegexp('AwsSolutions-.*'))
      : annotations.findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  return found.map((finding) => `${finding.id}: ${String(finding.entry.data).split('\n')[0]}`);
}

describe.each([
  ['prod (default)', {}],
  ['dev', { 'metalplane:stage': 'dev' }],
  [
    'prod with a custom domain, WebSocket logging role managed elsewhere',
    {
      'metalplane:stage': 'prod',
      'metalplane:domainName': 'metalplane.example.com',
      'metalplane:certificateArn': certificateArn,
      'metalplane:apiGatewayCloudWatchRole': 'false',
    },
  ],
])('cdk-nag AwsSolutions: %s', (_, context) => {
  let annotations: Annotations;
  beforeAll(() => {
    annotations = nagged(context).annotations;
  }, 120_000);

  it('has no unsuppressed error', () => {
    expect(findings(annotations, 'error')).toStrictEqual([]);
  });

  it('has no unsuppressed warning', () => {
    expect(findings(annotations, 'warning')).toStrictEqual([]);
  });
});

describe('suppressions', () => {
  type Suppression = { id: string; reason: string; applies_to?: unknown[] };
  let cached: Suppression[] = [];
  beforeAll(() => {
    cached = collect();
  }, 120_000);
  const suppressions = () => cached;

  /** cdk-nag's suppressions, as written into each resource's metadata. */
  function collect(): Suppression[] {
    const template = Template.fromStack(
      new MetalplaneStack(testApp(), 'Metalplane', { stackName: 'Metalplane' }),
    ).toJSON() as {
      Resources: Record<string, { Metadata?: { cdk_nag?: { rules_to_suppress: never[] } } }>;
    };
    return Object.values(template.Resources).flatMap(
      (resource) => resource.Metadata?.cdk_nag?.rules_to_suppress ?? [],
    );
  }

  it('each has a written reason of at least a sentence', () => {
    const all = suppressions();
    expect(all.length).toBeGreaterThan(0);
    for (const suppression of all) {
      expect(suppression.reason.length, suppression.id).toBeGreaterThanOrEqual(60);
    }
  });

  it('suppresses only the rules the stack cannot fix (the list docs/deploy.md explains)', () => {
    expect([...new Set(suppressions().map((s) => s.id))].sort()).toStrictEqual(
      [
        'AwsSolutions-APIG4',
        'AwsSolutions-IAM4',
        'AwsSolutions-IAM5',
        'AwsSolutions-S1',
        'AwsSolutions-SQS3',
      ].sort(),
    );
  });

  it('suppresses IAM5 wildcards only for the named patterns, never a bare *', () => {
    const iam5 = suppressions().filter((s) => s.id === 'AwsSolutions-IAM5');
    expect(iam5.length).toBeGreaterThan(0);
    for (const suppression of iam5) {
      expect(suppression.applies_to, suppression.reason).toBeDefined();
      expect(suppression.applies_to).not.toContain('Resource::*');
    }
  });
});
