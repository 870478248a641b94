/** metalplane-admin against moto: dbsync migrations and site creation. */

import { KMSClient } from '@aws-sdk/client-kms';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminProgram } from '../../cli/metalplane-admin.ts';
import { commandsTable, inventoryTable } from '../../infra/resources.ts';
import { documentClient } from '../../lambda/adapters/dynamo/client.ts';
import { InventoryStore } from '../../lambda/adapters/dynamo/inventory-store.ts';
import {
  LATEST_SCHEMA_VERSION,
  type Migration,
  migrate,
  schemaState,
} from '../../lambda/adapters/dynamo/schema-migrations.ts';
import { SiteRepository } from '../../lambda/adapters/dynamo/site-repository.ts';
import { KmsEnvelopeSealer } from '../../lambda/adapters/kms/envelope-sealer.ts';
import { openSecrets } from '../../lambda/domain/auth/sealing.ts';
import { isolatedResources } from '../support/aws.ts';

let prefix: string;
let table: string;
beforeAll(async () => {
  ({ prefix } = await isolatedResources());
  table = process.env[inventoryTable.envVar] as string;
});

async function run(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  await adminProgram((line) => lines.push(line)).parseAsync([
    'node',
    'metalplane-admin',
    '--prefix',
    prefix,
    ...args,
  ]);
  return lines;
}

describe('dbsync', () => {
  it('migrates a fresh table to the latest version once, then reports it up to date', async () => {
    expect(await run('dbsync', '--status')).toStrictEqual([
      `schema version 0 (latest ${LATEST_SCHEMA_VERSION})`,
    ]);
    // A node written before the byImage index: its item lacks imagePk.
    const db = documentClient();
    const image = '2f1c7a3e-8b4d-4e5f-9a6b-7c8d9e0f1a2b';
    await db.send(
      new PutCommand({
        TableName: table,
        Item: {
          pk: 'node#11111111-2222-3333-4444-555555555555',
          sk: 'item',
          version: 3,
          kindPk: 'node',
          listSk: '2026-01-01T00:00:00.000000+00:00#11111111-2222-3333-4444-555555555555',
          doc: {
            uuid: '11111111-2222-3333-4444-555555555555',
            instance_info: { image_source: image.toUpperCase() },
          },
        },
      }),
    );
    expect(await run('dbsync')).toStrictEqual([
      'applied migrations: 1, 2',
      `secrets sealed with alias/${prefix}-Secrets: 0 nodes, 0 commands`,
    ]);
    expect((await run('dbsync'))[0]).toBe('schema is up to date');
    const state = await schemaState(db, table);
    expect(state.version).toBe(LATEST_SCHEMA_VERSION);
    expect(state.applied.map((entry) => entry.version)).toStrictEqual([1, 2]);
    const { Item } = await db.send(
      new GetCommand({
        TableName: table,
        Key: { pk: 'node#11111111-2222-3333-4444-555555555555', sk: 'item' },
      }),
    );
    expect(Item?.imagePk).toBe(`node#${image}`);
    expect(Item?.version).toBe(3);
  });

  it('seals secrets stored in clear in nodes and commands, and re-seals them under the current key', async () => {
    const db = documentClient();
    const uuid = '99999999-2222-3333-4444-555555555555';
    const password = `legacy-bmc-${prefix}`;
    await db.send(
      new PutCommand({
        TableName: table,
        Item: {
          pk: `node#${uuid}`,
          sk: 'item',
          version: 1,
          kindPk: 'node',
          listSk: `2026-01-02T00:00:00.000000+00:00#${uuid}`,
          doc: {
            uuid,
            driver_info: { ipmi_address: '10.0.0.9', ipmi_password: password },
            instance_info: {},
          },
        },
      }),
    );
    const commands = process.env[commandsTable.envVar] as string;
    await db.send(
      new PutCommand({
        TableName: commands,
        Item: {
          pk: 'command#c-legacy',
          sk: 'command',
          id: 'c-legacy',
          node: uuid,
          status: 'succeeded',
          args: { driver: 'ipmi', driver_info: { ipmi_password: password }, callback_token: 'tok-legacy' },
        },
      }),
    );
    const raw = async () =>
      JSON.stringify([
        (await db.send(new GetCommand({ TableName: table, Key: { pk: `node#${uuid}`, sk: 'item' } }))).Item,
        (
          await db.send(
            new GetCommand({ TableName: commands, Key: { pk: 'command#c-legacy', sk: 'command' } }),
          )
        ).Item,
      ]);
    expect(await raw()).toContain(password);

    expect((await run('dbsync'))[1]).toBe(`secrets sealed with alias/${prefix}-Secrets: 1 nodes, 1 commands`);
    const sealedOnce = await raw();
    expect(sealedOnce).not.toContain(password);
    expect(sealedOnce).not.toContain('tok-legacy');
    // Idempotent: nothing left in clear.
    expect((await run('dbsync'))[1]).toBe(`secrets sealed with alias/${prefix}-Secrets: 0 nodes, 0 commands`);

    expect((await run('dbsync', '--reseal'))[1]).toBe(
      `secrets re-sealed with alias/${prefix}-Secrets: 1 nodes, 1 commands`,
    );
    const node = (
      await db.send(new GetCommand({ TableName: table, Key: { pk: `node#${uuid}`, sk: 'item' } }))
    ).Item as { version: number; doc: { driver_info: Record<string, unknown> } };
    expect(node.version).toBe(3);
    const sealer = new KmsEnvelopeSealer(new KMSClient({}), { keyId: () => `alias/${prefix}-Secrets` });
    const opened = await openSecrets(node.doc.driver_info, sealer, { node: uuid });
    expect(opened).toStrictEqual({ ipmi_address: '10.0.0.9', ipmi_password: password });
    expect(await raw()).not.toBe(sealedOnce);
  });

  it('applies later migrations in order and refuses to apply one twice when two runs race', async () => {
    const calls: number[] = [];
    const extra: Migration[] = [3, 2].map((version) => ({
      version,
      description: `test ${version}`,
      up: async () => {
        calls.push(version);
      },
    }));
    const db = documentClient();
    const results = await Promise.allSettled([
      migrate(db, table, [...extra]),
      migrate(db, table, [...extra]),
    ]);
    const fulfilled = results.filter((result) => result.status === 'fulfilled');
    expect(fulfilled.length).toBeGreaterThanOrEqual(1);
    const state = await schemaState(db, table);
    expect(state.version).toBe(3);
    expect(state.applied.map((entry) => entry.version)).toStrictEqual([1, 2, 3]);
    // Version 2 was already applied (the real backfill): only the test's 3 ran, in each racer.
    expect(new Set(calls)).toStrictEqual(new Set([3]));
  });
});

describe('site create', () => {
  it('creates a site and makes it the default', async () => {
    expect(await run('site', 'create', 'fra1', '--default')).toStrictEqual(['site fra1 created (default)']);
    const sites = new SiteRepository(new InventoryStore(documentClient(), table));
    expect((await sites.get('fra1'))?.name).toBe('fra1');
    expect(await sites.defaultSite()).toBe('fra1');
    await run('site', 'create', 'ams2', '--default');
    expect(await sites.defaultSite()).toBe('ams2');
  });

  it('refuses an invalid name and a duplicate, writing nothing', async () => {
    await expect(run('site', 'create', 'Bad Name')).rejects.toThrow(/Invalid site name/);
    await expect(run('site', 'create', 'fra1')).rejects.toThrow(/already exists/);
  });
});

describe('user create', () => {
  it('creates the first admin with a generated password, shown once and stored hashed', async () => {
    const lines = await run('user', 'create', 'root', '--role', 'admin');
    expect(lines[0]).toBe('user root created (admin)');
    const password = lines[1]?.replace('password: ', '') ?? '';
    expect(password.length).toBeGreaterThanOrEqual(20);
    const stored = await new InventoryStore(documentClient(), table).get<{
      password_hash: string;
      role: string;
    }>('user', 'root');
    expect(stored?.doc.role).toBe('admin');
    expect(stored?.doc.password_hash).toMatch(/^scrypt\$/);
    const { verifyPassword } = await import('../../lambda/domain/auth/passwords.ts');
    expect(await verifyPassword(password, stored?.doc.password_hash ?? '')).toBe(true);
  });

  it('refuses a member without a project and a duplicate', async () => {
    await expect(run('user', 'create', 'm1', '--role', 'member')).rejects.toThrow(/needs a project/);
    await expect(run('user', 'create', 'root', '--role', 'admin')).rejects.toThrow(/already exists/);
  });
});
