/**
 * Seals the secrets already stored in clear (items written before sealing existed), and
 * re-seals every sealed secret under the current key (after `METALPLANE_SECRETS_KEY`
 * names a new KMS key): `metalplane-admin dbsync` and `metalplane-admin dbsync --reseal`.
 *
 * Nodes are read through the byKind index and rewritten only if unchanged since read
 * (their `version`, raised by the rewrite); commands are scanned (the commands table has
 * no index of every record; their arguments never change once written). A node written
 * meanwhile was sealed by its own write.
 */

import {
  holdsSealed,
  holdsSecrets,
  openSecrets,
  type SecretSealer,
  sealSecrets,
} from '../../domain/auth/sealing.ts';
import type { DocumentClient } from './client.ts';
import { allItems, nodeItems, updateIfStill } from './item-pages.ts';

export interface SealingCounts {
  /** Node items rewritten. */
  nodes: number;
  /** Command records rewritten. */
  commands: number;
}

export interface SealingOptions {
  /** Also open and seal again what is sealed already (under the current key). */
  readonly reseal?: boolean;
}

type Info = Record<string, unknown>;

async function sealed(info: unknown, sealer: SecretSealer, node: string, reseal: boolean): Promise<unknown> {
  if (info === null || typeof info !== 'object' || Array.isArray(info)) return info;
  const context = { node };
  const plain =
    reseal && holdsSealed(info) ? await openSecrets(info as Info, sealer, context) : (info as Info);
  return holdsSecrets(plain) ? sealSecrets(plain, sealer, context) : info;
}

/** Seals the secrets of every node item of the inventory table; answers how many changed. */
export async function sealNodeSecrets(
  db: DocumentClient,
  table: string,
  sealer: SecretSealer,
  options: SealingOptions = {},
): Promise<number> {
  let changed = 0;
  for await (const item of nodeItems(db, table)) {
    const doc = item.doc as Info | undefined;
    const uuid = doc?.uuid;
    if (!doc || typeof uuid !== 'string') continue;
    const reseal = options.reseal === true;
    const driverInfo = await sealed(doc.driver_info, sealer, uuid, reseal);
    const instanceInfo = await sealed(doc.instance_info, sealer, uuid, reseal);
    if (driverInfo === doc.driver_info && instanceInfo === doc.instance_info) continue;
    // Written meanwhile: sealed by that write.
    const written = await updateIfStill(db, {
      TableName: table,
      Key: { pk: item.pk, sk: item.sk },
      UpdateExpression: 'SET #doc = :doc, #v = :next',
      ConditionExpression: '#v = :v',
      ExpressionAttributeNames: { '#doc': 'doc', '#v': 'version' },
      ExpressionAttributeValues: {
        ':doc': { ...doc, driver_info: driverInfo, instance_info: instanceInfo },
        ':v': item.version,
        ':next': (item.version as number) + 1,
      },
    });
    if (written) changed++;
  }
  return changed;
}

/** Seals the secrets in the arguments of every command record; answers how many changed. */
export async function sealCommandSecrets(
  db: DocumentClient,
  table: string,
  sealer: SecretSealer,
  options: SealingOptions = {},
): Promise<number> {
  let changed = 0;
  for await (const item of allItems(db, { TableName: table, FilterExpression: 'attribute_exists(args)' })) {
    if (typeof item.node !== 'string') continue;
    const args = await sealed(item.args, sealer, item.node, options.reseal === true);
    if (args === item.args) continue;
    const written = await updateIfStill(db, {
      TableName: table,
      Key: { pk: item.pk, sk: item.sk },
      UpdateExpression: 'SET args = :args',
      // A command's arguments never change after it is written: only its existence matters.
      ConditionExpression: 'attribute_exists(pk)',
      ExpressionAttributeValues: { ':args': args },
    });
    if (written) changed++;
  }
  return changed;
}
