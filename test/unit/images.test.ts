/** The image catalog's pure logic and its infrastructure (IAM scoped to images/, the verify Lambda). */
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageVerifyQueue, queueName } from '../../infra/resources.ts';
import { MetalplaneStack } from '../../infra/stack.ts';
import {
  catalogReference,
  expectedPartSize,
  imageState,
  isSelectedFor,
  MAX_FILE_BYTES,
  MAX_PARTS,
  MIN_PART_BYTES,
  newImage,
  partPlan,
} from '../../lambda/domain/images/image.ts';
import { removeTestApps, testApp } from '../support/cdk.ts';

const MiB = 1024 * 1024;
const sha = 'a'.repeat(64);

describe('part plans', () => {
  it.each([1, 16 * MiB, 16 * MiB + 1, 10 * 1024 * MiB, MAX_FILE_BYTES])(
    'covers %d bytes within S3 limits',
    (size) => {
      const plan = partPlan(size);
      expect(plan.parts).toBeLessThanOrEqual(MAX_PARTS);
      expect(plan.part_size).toBeGreaterThanOrEqual(MIN_PART_BYTES);
      expect(plan.part_size % MiB).toBe(0);
      let total = 0;
      for (let n = 1; n <= plan.parts; n++) {
        const part = expectedPartSize(size, plan, n);
        expect(part).toBeGreaterThan(0);
        total += part;
      }
      expect(total).toBe(size);
    },
  );
});

describe('images', () => {
  it('needs exactly the files of its kind, in the kind order', () => {
    const pair = newImage(
      {
        name: 'ipa',
        kind: 'kernel+ramdisk',
        files: [
          { role: 'ramdisk', size: 2, sha256: sha },
          { role: 'kernel', size: 1, sha256: sha },
        ],
      },
      '11111111-2222-3333-4444-555555555555',
      'now',
    );
    expect(pair.files.map((file) => [file.role, file.key])).toStrictEqual([
      ['kernel', 'images/11111111-2222-3333-4444-555555555555/kernel'],
      ['ramdisk', 'images/11111111-2222-3333-4444-555555555555/ramdisk'],
    ]);
    expect(() =>
      newImage(
        { name: 'x', kind: 'kernel+ramdisk', files: [{ role: 'kernel', size: 1, sha256: sha }] },
        'u',
        'now',
      ),
    ).toThrow(/exactly the files kernel and ramdisk/);
    expect(() =>
      newImage({ name: 'x', kind: 'iso', files: [{ role: 'kernel', size: 1, sha256: sha }] }, 'u', 'now'),
    ).toThrow(/exactly the files iso/);
  });

  it('derives its state from its files: error wins, active only when all are verified', () => {
    const file = {
      role: 'kernel' as const,
      size: 1,
      sha256: sha,
      key: 'k',
      upload: null,
      etag: null,
      verified_at: null,
    };
    const verified = { ...file, state: 'verified' as const, error: null };
    expect(imageState([verified, { ...verified, role: 'ramdisk' }])).toStrictEqual({
      state: 'active',
      last_error: null,
    });
    expect(imageState([verified, { ...file, role: 'ramdisk', state: 'pending', error: null }]).state).toBe(
      'uploading',
    );
    expect(imageState([verified, { ...file, role: 'ramdisk', state: 'verifying', error: null }]).state).toBe(
      'verifying',
    );
    expect(imageState([verified, { ...file, role: 'ramdisk', state: 'error', error: 'bad' }])).toStrictEqual({
      state: 'error',
      last_error: 'ramdisk: bad',
    });
  });

  it('goes to every site, or to the listed ones', () => {
    expect(isSelectedFor({ sites: null }, 'fra1')).toBe(true);
    expect(isSelectedFor({ sites: ['ams1'] }, 'fra1')).toBe(false);
    expect(isSelectedFor({ sites: ['ams1', 'fra1'] }, 'fra1')).toBe(true);
  });

  it('indexes names and UUIDs from image_source, not URLs', () => {
    expect(catalogReference('ubuntu-24.04')).toBe('ubuntu-24.04');
    expect(catalogReference('0B7F3F8E7C534E2E9E3E6F1D2B9A0C11')).toBe('0b7f3f8e-7c53-4e2e-9e3e-6f1d2b9a0c11');
    expect(catalogReference('http://example.com/a.iso')).toBeUndefined();
    expect(catalogReference(42)).toBeUndefined();
  });
});

describe('infrastructure', () => {
  type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
  let template: Template;
  const list = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
  const statementsOf = (prefix: string): Statement[] =>
    Object.entries(template.findResources('AWS::IAM::Policy'))
      .filter(([id]) => id.startsWith(`${prefix}ServiceRoleDefaultPolicy`))
      .flatMap(([, policy]) => (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  const s3Statements = (prefix: string) =>
    statementsOf(prefix).filter((s) => list(s.Action).some((action) => action.startsWith('s3:')));

  beforeAll(() => {
    template = Template.fromStack(new MetalplaneStack(testApp(), 'Metalplane', { stackName: 'Metalplane' }));
  });
  afterAll(removeTestApps);

  it('grants object actions on images/* only; the agents Lambda only reads (to presign GETs)', () => {
    for (const fn of ['ApiFunction', 'AgentsFunction', 'ImageVerifyFunction']) {
      const objectStatements = s3Statements(fn).filter((s) => !list(s.Action).includes('s3:ListBucket'));
      expect(objectStatements.length, fn).toBeGreaterThan(0);
      for (const statement of objectStatements)
        expect(JSON.stringify(statement.Resource)).toMatch(/\/images\/\*"/);
    }
    expect(s3Statements('AgentsFunction').flatMap((s) => list(s.Action))).toStrictEqual(['s3:GetObject']);
    expect(s3Statements('ConductorFunction')).toStrictEqual([]);
  });

  it('runs the verify Lambda for 15 minutes from the verify queue, reporting item failures', () => {
    const [id] = Object.keys(
      template.findResources('AWS::Lambda::Function', { Properties: { Timeout: 900 } }),
    ) as [string];
    expect(id).toMatch(/^ImageVerifyFunction/);
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      FunctionName: { Ref: id },
      BatchSize: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: queueName('Metalplane', imageVerifyQueue),
      VisibilityTimeout: 960,
    });
    const sends = statementsOf('ApiFunction').filter((s) => list(s.Action).includes('sqs:SendMessage'));
    expect(JSON.stringify(sends)).toContain('ImageVerify');
  });
});
