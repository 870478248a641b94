/** The audit trail's pure logic: what is audited, which resource, the change summary (no secret values). */
import { describe, expect, it } from 'vitest';
import {
  actorOf,
  auditIdBounds,
  buildAuditRecord,
  DEFAULT_RETENTION_DAYS,
  expiresAt,
  isAudited,
  newAuditId,
  type RecordInput,
  resourceOf,
  retentionDays,
  summarizeChange,
} from '../../lambda/domain/audit/audit.ts';

const bytes = (fill: number) => new Uint8Array(10).fill(fill);
const UUID = 'a8098c1a-f86e-11da-bd1a-00112444be1e';

describe('isAudited', () => {
  it('records successful changes only', () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'post'])
      expect(isAudited(method, '/v1/nodes', 201)).toBe(true);
    for (const method of ['GET', 'HEAD', 'OPTIONS']) expect(isAudited(method, '/v1/nodes', 200)).toBe(false);
    expect(isAudited('POST', '/v1/nodes', 399)).toBe(true);
    expect(isAudited('POST', '/v1/nodes', 400)).toBe(false);
    expect(isAudited('DELETE', '/v1/nodes/x', 404)).toBe(false);
    expect(isAudited('PATCH', '/v1/nodes/x', 500)).toBe(false);
  });

  it("leaves out the agents' own channel, not their enrollment or credentials", () => {
    expect(isAudited('POST', '/v1/agent/messages', 200)).toBe(false);
    expect(isAudited('POST', '/v1/agent/commands', 200)).toBe(false);
    expect(isAudited('POST', '/v1/agent', 200)).toBe(false);
    expect(isAudited('POST', '/v1/agents/enroll', 201)).toBe(true);
    expect(isAudited('POST', '/v1/agents/host-1/credentials', 201)).toBe(true);
    expect(isAudited('DELETE', '/v1/agents/host-1', 204)).toBe(true);
  });
});

describe('resourceOf', () => {
  it('names the object the pattern addresses last', () => {
    expect(resourceOf('/v1/nodes/{node}', { node: UUID.toUpperCase() }, undefined)).toEqual({
      type: 'node',
      id: UUID,
      name: null,
    });
    expect(resourceOf('/v1/nodes/{node}/states/power', { node: 'n1' }, undefined)).toEqual({
      type: 'node',
      id: 'n1',
      name: 'n1',
    });
    expect(
      resourceOf('/v1/nodes/{node}/traits/{trait}', { node: UUID, trait: 'CUSTOM_X' }, undefined),
    ).toEqual({
      type: 'node',
      id: UUID,
      name: null,
    });
    expect(resourceOf('/v1/users/{user}/tokens/{token}', { user: 'alice', token: 'abc' }, undefined)).toEqual(
      {
        type: 'token',
        id: 'abc',
        name: 'abc',
      },
    );
    expect(resourceOf('/v1/volume/connectors/{connector}', { connector: UUID }, undefined).type).toBe(
      'volume_connector',
    );
    expect(
      resourceOf('/v1/agents/{hostname}/credentials', { hostname: 'h1' }, { hostname: 'other' }),
    ).toEqual({
      type: 'agent',
      id: 'h1',
      name: 'h1',
    });
  });

  it('takes the uuid from the answer when the request named the object by name (PATCH)', () => {
    expect(resourceOf('/v1/nodes/{node}', { node: 'n1' }, { uuid: UUID, name: 'n1' })).toEqual({
      type: 'node',
      id: UUID,
      name: 'n1',
    });
  });

  it('does not take an id from an answer about something else', () => {
    const upload = resourceOf(
      '/v1/images/{image}/files/{role}/upload',
      { image: UUID, role: 'iso' },
      { uuid: 'x' },
    );
    expect(upload).toEqual({ type: 'image', id: UUID, name: null });
  });

  it('names a created object from the answer', () => {
    expect(resourceOf('/v1/nodes', {}, { uuid: UUID, name: 'n1', driver_info: {} })).toEqual({
      type: 'node',
      id: UUID,
      name: 'n1',
    });
    expect(resourceOf('/v1/users', {}, { name: 'bob' })).toEqual({ type: 'user', id: 'bob', name: 'bob' });
    expect(
      resourceOf('/v1/users/{user}/tokens', { user: 'bob' }, { id: 'tok1', token: 'mpt_secret' }),
    ).toEqual({
      type: 'token',
      id: 'tok1',
      name: 'tok1',
    });
    expect(resourceOf('/v1/agents/enroll', {}, { hostname: 'h1', credential: 'mpa_secret' })).toEqual({
      type: 'agent',
      id: 'h1',
      name: 'h1',
    });
  });

  it('falls back to the parent when the answer names no object (an enrollment token)', () => {
    expect(
      resourceOf('/v1/sites/{site}/agents', { site: 'dc1' }, { token: 'mpe_secret', site: 'dc1' }),
    ).toEqual({
      type: 'site',
      id: 'dc1',
      name: 'dc1',
    });
  });

  it('answers nothing for a pattern without a known collection', () => {
    expect(resourceOf('/v1', {}, undefined)).toEqual({ type: null, id: null, name: null });
  });
});

describe('summarizeChange', () => {
  it('keeps the paths of a JSON Patch, never its values', () => {
    const change = summarizeChange('PATCH', [
      { op: 'replace', path: '/driver_info/ipmi_password', value: 'hunter2' },
      { op: 'add', path: '/extra/k', value: { nested: 'hunter2' } },
    ]);
    expect(change).toEqual({
      patch: [
        { op: 'replace', path: '/driver_info/ipmi_password' },
        { op: 'add', path: '/extra/k' },
      ],
    });
    expect(JSON.stringify(change)).not.toContain('hunter2');
  });

  it('keeps the top-level field names of an object body, never their values', () => {
    const change = summarizeChange('POST', {
      name: 'n1',
      driver: 'ipmi',
      driver_info: { ipmi_password: 'hunter2', ipmi_address: '10.0.0.1' },
      password: 'hunter2',
    });
    expect(change).toEqual({ fields: ['name', 'driver', 'driver_info', 'password'] });
    expect(JSON.stringify(change)).not.toContain('hunter2');
  });

  it('keeps the allow-listed scalar values, masked', () => {
    expect(summarizeChange('PUT', { target: 'deploy', configdrive: 'secret-config' })).toEqual({
      fields: ['target', 'configdrive'],
      values: { target: 'deploy' },
    });
    expect(summarizeChange('PATCH', { role: 'member', project: 'p1', password: 'x' })).toEqual({
      fields: ['role', 'project', 'password'],
      values: { role: 'member', project: 'p1' },
    });
    // A secret smuggled into an allow-listed value is masked as Ironic masks text.
    const smuggled = summarizeChange('PUT', { target: 'password=hunter2' });
    expect(JSON.stringify(smuggled)).not.toContain('hunter2');
    // Objects under an allow-listed name are not values.
    expect(summarizeChange('PUT', { target: { password: 'hunter2' } })).toEqual({ fields: ['target'] });
  });

  it('is bounded whatever the body', () => {
    const wide = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i]));
    const change = summarizeChange('POST', wide);
    expect(change.fields).toHaveLength(50);
    expect(change.truncated).toBe(true);
    const ops = Array.from({ length: 100 }, () => ({ op: 'add', path: `/${'x'.repeat(1000)}` }));
    const patch = summarizeChange('PATCH', ops);
    expect(patch.patch).toHaveLength(50);
    expect(patch.patch?.[0]?.path.length).toBeLessThanOrEqual(257);
    expect(patch.truncated).toBe(true);
  });

  it('keeps nothing of bodies that are neither', () => {
    expect(summarizeChange('POST', undefined)).toEqual({});
    expect(summarizeChange('POST', 'text')).toEqual({});
    expect(summarizeChange('POST', [1, 2])).toEqual({});
    expect(summarizeChange('PATCH', [1, { op: 5 }])).toEqual({ patch: [{ op: '?', path: '?' }] });
  });
});

describe('ids, time bounds and retention', () => {
  it('makes UUIDv7 ids that sort as their time', () => {
    const early = newAuditId(new Date('2026-01-01T00:00:00.000Z'), bytes(0xff));
    const late = newAuditId(new Date('2026-01-01T00:00:00.001Z'), bytes(0x00));
    expect(early).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(late).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(early < late).toBe(true);
    const at = new Date('2026-03-04T05:06:07.089Z');
    const { lowest, highest } = auditIdBounds(at);
    for (const fill of [0x00, 0x7f, 0xff]) {
      const id = newAuditId(at, bytes(fill));
      expect(id >= lowest && id <= highest).toBe(true);
    }
    expect(highest < auditIdBounds(new Date(at.getTime() + 1)).lowest).toBe(true);
  });

  it('reads the retention, default 365 days', () => {
    expect(retentionDays(undefined)).toBe(DEFAULT_RETENTION_DAYS);
    expect(retentionDays('')).toBe(365);
    expect(retentionDays('30')).toBe(30);
    for (const wrong of ['0', '-1', '1.5', 'forever']) expect(() => retentionDays(wrong)).toThrow();
    expect(expiresAt('2026-01-01T00:00:00.000Z', 2)).toBe(Date.parse('2026-01-03T00:00:00Z') / 1000);
  });
});

describe('buildAuditRecord', () => {
  const input: RecordInput = {
    id: newAuditId(new Date('2026-01-01T00:00:00Z'), bytes(1)),
    createdAt: '2026-01-01T00:00:00.000Z',
    principal: { kind: 'token', name: 'alice', role: 'member', project: 'p1' },
    sourceIp: '203.0.113.7',
    userAgent: 'openstacksdk',
    requestId: 'req-1',
    gatewayRequestId: 'gw-1',
    method: 'post',
    route: '/v1/nodes',
    path: '/v1/nodes',
    params: {},
    status: 201,
    requestBody: JSON.stringify({ name: 'n1', driver_info: { ipmi_password: 'hunter2' } }),
    responseBody: JSON.stringify({ uuid: UUID, name: 'n1', driver_info: { ipmi_password: '******' } }),
  };

  it('holds who, what, when, where from, and never a secret value', () => {
    const record = buildAuditRecord(input);
    expect(record).toEqual({
      id: input.id,
      created_at: '2026-01-01T00:00:00.000Z',
      actor: { kind: 'token', name: 'alice', role: 'member', project: 'p1' },
      source_ip: '203.0.113.7',
      user_agent: 'openstacksdk',
      request_id: 'req-1',
      gateway_request_id: 'gw-1',
      method: 'POST',
      route: '/v1/nodes',
      path: '/v1/nodes',
      status: 201,
      resource_type: 'node',
      resource: UUID,
      resource_name: 'n1',
      change: { fields: ['name', 'driver_info'] },
    });
    expect(JSON.stringify(record)).not.toContain('hunter2');
  });

  it('survives bodies that are not JSON, and names anonymous and agent actors', () => {
    const record = buildAuditRecord({ ...input, requestBody: '{', responseBody: 'x', principal: undefined });
    expect(record.change).toEqual({});
    expect(record.resource).toBeNull();
    expect(record.actor).toEqual({ kind: 'anonymous', name: null, role: null, project: null });
    expect(actorOf({ kind: 'agent', name: 'h1', role: 'reader', site: 'dc1' })).toEqual({
      kind: 'agent',
      name: 'h1',
      role: 'reader',
      project: null,
      site: 'dc1',
    });
  });
});
