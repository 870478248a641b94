/** The port and port group domain, without a store: patch semantics, rendering, validation. */
import { describe, expect, it } from 'vitest';
import {
  checkPortCreate,
  createPort,
  normalizeLocalLink,
  type Port,
  patchPort,
  renderPort,
  strictBoolean,
} from '../../lambda/domain/ports/port.ts';
import { createPortgroup, patchPortgroup, renderPortgroup } from '../../lambda/domain/ports/portgroup.ts';

const NODE = '11111111-1111-1111-1111-111111111111';
const context = { minor: 82, now: '2026-01-01T00:00:00.000000+00:00' };

function port(overrides: Partial<Port> = {}): Port {
  return {
    ...createPort(checkPortCreate({ address: '52:54:00:00:00:01', node_uuid: NODE }, 82), {
      uuid: '22222222-2222-2222-2222-222222222222',
      now: context.now,
      minor: 82,
      nodeUuid: NODE,
      portgroupUuid: null,
    }),
    ...overrides,
  };
}

describe('port values', () => {
  it('parses booleans as oslo strictly does', () => {
    expect(strictBoolean('Yes', 'x')).toBe(true);
    expect(strictBoolean(' off ', 'x')).toBe(false);
    expect(strictBoolean(null, 'x')).toBeNull();
    expect(() => strictBoolean('2', 'pxe_enabled')).toThrow("Invalid pxe_enabled: Unrecognized value '2'");
  });

  it('normalizes switch_id as a MAC or an OpenFlow datapath ID', () => {
    expect(normalizeLocalLink({ port_id: 'p', switch_id: 'AA-BB-CC-DD-EE-FF' }, 82).switch_id).toBe(
      'aa:bb:cc:dd:ee:ff',
    );
    expect(normalizeLocalLink({ port_id: 'p', switch_id: 'ABCDEF0123456789' }, 82).switch_id).toBe(
      'abcdef0123456789',
    );
    expect(normalizeLocalLink(null, 82)).toStrictEqual({});
    expect(() => normalizeLocalLink({ port_id: 'p', switch_id: 'x', extra: 1 }, 82)).toThrow(
      'Schema error for local_link_connection',
    );
    expect(() => normalizeLocalLink({ network_type: 'unmanaged' }, 63)).toThrow('Request not acceptable.');
  });
});

describe('port patch', () => {
  it('resets removed fields to their defaults and keeps the read-only ones', () => {
    const before = port({ pxe_enabled: false, extra: { a: 1 }, physical_network: 'net' });
    const after = patchPort(
      before,
      [
        { op: 'remove', path: '/pxe_enabled' },
        { op: 'remove', path: '/extra' },
        { op: 'remove', path: '/physical_network' },
      ],
      context,
    );
    expect(after).toStrictEqual({
      ...before,
      pxe_enabled: true,
      extra: {},
      physical_network: null,
      updated_at: context.now,
    });
  });

  it('does not change the port it was given', () => {
    const before = port();
    const copy = structuredClone(before);
    patchPort(before, [{ op: 'replace', path: '/address', value: 'AABBCCDDEEFF' }], context);
    expect(before).toStrictEqual(copy);
  });

  it('renders Ironic’s order at 1.82 and only the 1.1 fields at 1.1', () => {
    const shown = renderPort(port(), { minor: 82, baseUrl: 'http://h' });
    expect(Object.keys(shown)).toStrictEqual([
      'uuid',
      'created_at',
      'updated_at',
      'address',
      'extra',
      'internal_info',
      'is_smartnic',
      'local_link_connection',
      'physical_network',
      'pxe_enabled',
      'node_uuid',
      'links',
      'portgroup_uuid',
    ]);
    expect(Object.keys(renderPort(port(), { minor: 1, baseUrl: 'http://h' }))).toStrictEqual([
      'uuid',
      'created_at',
      'updated_at',
      'address',
      'extra',
      'node_uuid',
      'links',
    ]);
  });
});

describe('port group', () => {
  const group = createPortgroup(
    { node_uuid: NODE, name: 'bond0', mode: '' },
    { uuid: '33333333-3333-3333-3333-333333333333', now: context.now, nodeUuid: NODE },
  );

  it('defaults mode, and refuses removing it', () => {
    expect(group.mode).toBe('active-backup');
    expect(() =>
      patchPortgroup(group, [{ op: 'remove', path: '/mode' }], { ...context, ident: 'bond0' }),
    ).toThrow("'mode' is a mandatory attribute and can not be removed");
  });

  it('drops the ports link when fields are selected', () => {
    expect(Object.keys(renderPortgroup(group, { baseUrl: 'http://h', fields: ['name'] }))).toStrictEqual([
      'name',
      'links',
    ]);
    expect(renderPortgroup(group, { baseUrl: 'http://h' }).ports).toStrictEqual([
      { href: `http://h/v1/portgroups/${group.uuid}/ports`, rel: 'self' },
      { href: `http://h/portgroups/${group.uuid}/ports`, rel: 'bookmark' },
    ]);
  });
});
