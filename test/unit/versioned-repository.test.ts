/**
 * VersionedRecords on a recording store: the items it builds, the ops it writes and
 * their order (the first failed op's error is the transaction's), the queries it reads.
 */
import { describe, expect, it } from 'vitest';
import type {
  IndexQuery,
  InventoryStore,
  StoredItem,
  WriteOp,
} from '../../lambda/adapters/dynamo/inventory-store.ts';
import { VersionedRecords } from '../../lambda/adapters/dynamo/versioned-repository.ts';
import { conflict, notFound } from '../../lambda/domain/errors.ts';

interface Thing {
  readonly uuid: string;
  readonly created_at: string;
  readonly node_uuid: string;
  readonly name: string | null;
  readonly address: string;
}

function recordingStore(stored: Record<string, StoredItem<Thing>> = {}) {
  const writes: WriteOp[][] = [];
  const queries: IndexQuery[] = [];
  const store = {
    get: async (kind: string, id: string) => stored[`${kind}#${id}`],
    lookupUnique: async (scope: string, value: string) => `${scope}=${value}`,
    write: async (ops: readonly WriteOp[]) => {
      writes.push([...ops]);
    },
    query: async (query: IndexQuery) => {
      queries.push(query);
      return { items: Object.values(stored), more: false };
    },
  } as unknown as InventoryStore;
  return { store, writes, queries };
}

function things(store: InventoryStore) {
  return new VersionedRecords<Thing>(store, {
    kind: 'thing',
    id: (thing) => thing.uuid,
    indexes: (thing) => ({ kindPk: 'thing', nameSk: `${thing.name ?? ''}#${thing.uuid}` }),
    node: (thing) => thing.node_uuid,
    uniques: [
      {
        scope: 'thing-name',
        value: (thing) => thing.name || undefined,
        taken: (name) => conflict(`name ${name}`),
      },
      {
        scope: 'thing-address',
        value: (thing) => thing.address,
        taken: (address) => conflict(`mac ${address}`),
      },
    ],
    exists: (uuid) => conflict(`exists ${uuid}`),
    changed: (uuid) => conflict(`changed ${uuid}`),
    missing: (uuid) => notFound(`missing ${uuid}`),
  });
}

const thing: Thing = {
  uuid: 'u1',
  created_at: '2026-01-01T00:00:00Z',
  node_uuid: 'n1',
  name: 'a',
  address: 'm1',
};
const check: WriteOp = { type: 'exists', kind: 'other', id: 'o', onConflict: conflict('other') };
/** An op without its error object, for comparison. */
const shape = (op: WriteOp) => {
  const { onConflict, onMissing, onClosed, ...rest } = op as WriteOp & Record<string, unknown>;
  return { ...rest, error: ((onConflict ?? onMissing) as Error | undefined)?.message };
};

describe('VersionedRecords', () => {
  it('builds the item: creation-order listSk, the node parent, the unique values held', () => {
    const { store } = recordingStore();
    expect(things(store).item(thing)).toStrictEqual({
      kind: 'thing',
      id: 'u1',
      doc: thing,
      listSk: '2026-01-01T00:00:00Z#u1',
      indexes: { kindPk: 'thing', nameSk: 'a#u1', parentPk: 'thing@node#n1' },
      uniques: [
        { scope: 'thing-name', value: 'a' },
        { scope: 'thing-address', value: 'm1' },
      ],
    });
    expect(things(store).item({ ...thing, name: null }).uniques).toStrictEqual([
      { scope: 'thing-address', value: 'm1' },
    ]);
  });

  it('creates: the record, its claims, its node ledger, then the extra ops', async () => {
    const { store, writes } = recordingStore();
    await things(store).create(thing, [check]);
    expect(writes[0]?.map(shape)).toStrictEqual([
      { type: 'create', item: things(store).item(thing), error: 'exists u1' },
      { type: 'claim', scope: 'thing-name', value: 'a', ownerId: 'u1', error: 'name a' },
      { type: 'claim', scope: 'thing-address', value: 'm1', ownerId: 'u1', error: 'mac m1' },
      {
        type: 'join',
        ledger: { kind: 'node', id: 'n1', name: 'children' },
        member: 'thing#u1',
        error: 'Node n1 could not be found.',
      },
      { type: 'exists', kind: 'other', id: 'o', error: 'other' },
    ]);
  });

  it('replaces at the version read: the extra ops, the node move, then each unique moved', async () => {
    const { store, writes } = recordingStore();
    const after: Thing = { ...thing, node_uuid: 'n2', name: null, address: 'm2' };
    await things(store).update(thing, after, 7, [check]);
    expect(writes[0]?.map(shape)).toStrictEqual([
      { type: 'replace', item: things(store).item(after), expectedVersion: 7, error: 'changed u1' },
      { type: 'exists', kind: 'other', id: 'o', error: 'other' },
      {
        type: 'join',
        ledger: { kind: 'node', id: 'n2', name: 'children' },
        member: 'thing#u1',
        error: 'Node n2 could not be found.',
      },
      {
        type: 'leave',
        ledger: { kind: 'node', id: 'n1', name: 'children' },
        members: ['thing#u1'],
        error: undefined,
      },
      { type: 'release', scope: 'thing-name', value: 'a', ownerId: 'u1', error: undefined },
      { type: 'claim', scope: 'thing-address', value: 'm2', ownerId: 'u1', error: 'mac m2' },
      { type: 'release', scope: 'thing-address', value: 'm1', ownerId: 'u1', error: undefined },
    ]);
  });

  it('replaces unchanged unique values and node without claims or moves', () => {
    const { store } = recordingStore();
    expect(
      things(store)
        .replaceOps(thing, { ...thing }, 3)
        .map((op) => op.type),
    ).toStrictEqual(['replace']);
  });

  it('deletes at the version read, releasing what it holds and leaving its node', async () => {
    const { store, writes } = recordingStore();
    await things(store).delete({ ...thing, name: '' }, 4);
    expect(writes[0]?.map(shape)).toStrictEqual([
      { type: 'delete', kind: 'thing', id: 'u1', expectedVersion: 4, error: 'changed u1' },
      { type: 'release', scope: 'thing-address', value: 'm1', ownerId: 'u1', error: undefined },
      {
        type: 'leave',
        ledger: { kind: 'node', id: 'n1', name: 'children' },
        members: ['thing#u1'],
        error: undefined,
      },
    ]);
    expect(shape(things(store).deleteOp('u1', undefined, notFound('gone')))).toStrictEqual({
      type: 'delete',
      kind: 'thing',
      id: 'u1',
      error: 'gone',
    });
  });

  it('reads with the version, under the repository name too', async () => {
    const item = { kind: 'thing', id: 'u1', version: 2, doc: thing, listSk: 'L' };
    const { store } = recordingStore({ 'thing#u1': item });
    expect(await things(store).get('u1')).toStrictEqual({ doc: thing, version: 2 });
    expect(await things(store).getAs('u1', 'thing')).toStrictEqual({ thing, version: 2 });
    expect(await things(store).get('u2')).toBeUndefined();
    expect(await things(store).idFor('thing-name', 'a')).toBe('thing-name=a');
  });

  it('lists from a marker: its listSk, or its nameSk by name; the kind, or one node', async () => {
    const item = { kind: 'thing', id: 'u1', version: 2, doc: thing, listSk: 'L' };
    const { store, queries } = recordingStore({ 'thing#u1': item });
    const page = await things(store).list({ limit: 5, markerUuid: 'u1', descending: true });
    expect(page).toStrictEqual({ items: [thing], more: false });
    await things(store).list({ limit: 5, markerUuid: 'u1', order: 'name' });
    await things(store).list({ limit: 5, nodeUuid: 'n1' });
    expect(queries).toStrictEqual([
      {
        index: 'byKind',
        partitionAttribute: 'kindPk',
        partitionValue: 'thing',
        sortAttribute: 'listSk',
        after: 'L',
        descending: true,
        limit: 5,
        filters: undefined,
      },
      {
        index: 'byName',
        partitionAttribute: 'kindPk',
        partitionValue: 'thing',
        sortAttribute: 'nameSk',
        after: 'a#u1',
        descending: undefined,
        limit: 5,
        filters: undefined,
      },
      {
        index: 'byParent',
        partitionAttribute: 'parentPk',
        partitionValue: 'thing@node#n1',
        sortAttribute: 'listSk',
        after: undefined,
        descending: undefined,
        limit: 5,
        filters: undefined,
      },
    ]);
    await expect(things(store).list({ limit: 5, markerUuid: 'u9' })).rejects.toThrow('missing u9');
  });
});
