/**
 * Images in the inventory table: one item per image (`image#<uuid>`), its name claimed
 * in the same transaction (`unique#image-name#<name>`), listed in creation order
 * (`byKind`), by name (`byName`) and by state (`byState`, `image#<state>`: the active
 * ones are what sites hold). Every write is conditional on the version read.
 *
 * The sync state of an image at a site is one small item per (image, site)
 * (`image-sync#<uuid>@<site>`), a child of the image (`byParent`), written from the
 * site's agent reports. Nodes that name an image in `instance_info.image_source` carry
 * `imagePk` (see `node-repository.ts`), found through the `byImage` index.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { Image, ImageSync } from '../../domain/images/image.ts';
import { publishEvent } from '../events.ts';
import type { InventoryStore, ItemWrite } from './inventory-store.ts';
import { VersionedRecords } from './versioned-repository.ts';

const KIND = 'image';
const SYNC_KIND = 'image-sync';
const NAME_SCOPE = 'image-name';

export interface VersionedImage {
  readonly image: Image;
  readonly version: number;
}

export function imageListSortKey(image: Pick<Image, 'created_at' | 'uuid'>): string {
  return `${image.created_at}#${image.uuid}`;
}

export class ImageRepository {
  private readonly store: InventoryStore;
  private readonly records: VersionedRecords<Image>;

  constructor(store: InventoryStore) {
    this.store = store;
    this.records = new VersionedRecords(store, {
      kind: KIND,
      id: (image) => image.uuid,
      indexes: (image) => ({
        kindPk: KIND,
        nameSk: `${image.name}#${image.uuid}`,
        statePk: `${KIND}#${image.state}`,
      }),
      uniques: [
        {
          scope: NAME_SCOPE,
          value: (image) => image.name,
          taken: (name) => conflict(`An image with name ${name} already exists.`),
        },
      ],
      exists: (uuid) => conflict(`Image ${uuid} already exists.`),
      changed: (uuid) =>
        conflict(
          `Image ${uuid} was changed by another request at the same time; retry with the current image.`,
        ),
      missing: (uuid) => notFound(`Image ${uuid} could not be found.`),
    });
  }

  async get(uuid: string): Promise<VersionedImage | undefined> {
    return this.records.getAs(uuid, 'image');
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.records.idFor(NAME_SCOPE, name);
  }

  /** Creates the image and claims its name, atomically. */
  async create(image: Image): Promise<void> {
    await this.records.create(image);
  }

  /** Replaces `before` (read at `version`) with `after`, moving the name claim if renamed. */
  async update(before: Image, after: Image, version: number): Promise<void> {
    await this.records.update(before, after, version);
  }

  /** Deletes the image and releases its name (its sync records go with `deleteSyncs`). */
  async delete(image: Image, version: number): Promise<void> {
    await this.records.delete(image, version);
  }

  /** Images in creation order (`sort_key=id`/`created_at`) or by name, after a marker's position. */
  async list(options: {
    limit: number;
    after?: string;
    byName: boolean;
    descending: boolean;
    state?: string;
  }): Promise<{ images: Image[]; more: boolean }> {
    const page = await this.records.page({
      order: options.byName ? 'name' : 'created',
      ...(options.state && !options.byName
        ? { partition: { index: 'byState', attribute: 'statePk', value: `${KIND}#${options.state}` } }
        : {}),
      after: options.after,
      descending: options.descending,
      limit: options.limit,
      ...(options.state && options.byName
        ? { filters: [{ path: ['doc', 'state'], op: '=' as const, value: options.state }] }
        : {}),
    });
    return { images: page.items, more: page.more };
  }

  /** Active images in creation order after `after` (a list sort key), `limit` at a time. */
  async active(limit: number, after?: string): Promise<{ images: Image[]; more: boolean }> {
    return this.list({
      limit,
      byName: false,
      descending: false,
      state: 'active',
      ...(after ? { after } : {}),
    });
  }

  /** Does any node name this image (by name or UUID) in `instance_info.image_source`? One node's UUID if so. */
  async referencingNode(image: Pick<Image, 'uuid' | 'name'>): Promise<string | undefined> {
    for (const reference of [image.uuid, image.name]) {
      const page = await this.store.query<{ uuid: string }>({
        index: 'byImage',
        partitionAttribute: 'imagePk',
        partitionValue: `node#${reference}`,
        sortAttribute: 'listSk',
        limit: 1,
      });
      const [first] = page.items;
      if (first) return first.id;
    }
    return undefined;
  }

  async getSync(uuid: string, site: string): Promise<{ sync: ImageSync; version: number } | undefined> {
    const item = await this.store.get<ImageSync>(SYNC_KIND, `${uuid}@${site}`);
    return item && { sync: item.doc, version: item.version };
  }

  /**
   * Stores a report unless a newer one (by `observed_at`) is stored already; a
   * concurrent writer wins and this report is dropped (the agent reports again).
   */
  async putSync(sync: ImageSync, imageCreatedAt: string): Promise<boolean> {
    const current = await this.getSync(sync.image, sync.site);
    if (current && current.sync.observed_at > sync.observed_at) return false;
    const item: ItemWrite<ImageSync> = {
      kind: SYNC_KIND,
      id: `${sync.image}@${sync.site}`,
      doc: sync,
      listSk: `${imageCreatedAt}#${sync.image}`,
      indexes: { parentPk: `${SYNC_KIND}@${KIND}#${sync.image}` },
    };
    const changed = conflict('The sync state changed concurrently.');
    try {
      await this.store.write([
        current
          ? { type: 'replace', item, expectedVersion: current.version, onConflict: changed }
          : { type: 'create', item, onConflict: changed },
      ]);
      if (sync.state === 'ready' && current?.sync.state !== 'ready') {
        await publishEvent('image.ready', sync.site, {
          image_uuid: sync.image,
          reported_by: sync.reported_by,
        });
      }
      return true;
    } catch (error) {
      if (error === changed) return false;
      throw error;
    }
  }

  /** Deletes every sync record of an image (after the image itself), a transaction per 100. */
  async deleteSyncs(uuid: string): Promise<void> {
    // `cascadeDeleteOps` stops a little past 100 ops: take what it found, then ask again.
    for (let round = 0; round < 1000; round++) {
      const ops = await this.store.cascadeDeleteOps([`${SYNC_KIND}@${KIND}#${uuid}`]);
      if (ops.length === 0) return;
      for (let i = 0; i < ops.length; i += 100) {
        await this.store.write(ops.slice(i, i + 100)).catch((error: unknown) => {
          // A record deleted meanwhile is what we wanted.
          if ((error as { kind?: string }).kind !== 'conflict') throw error;
        });
      }
    }
  }

  async require(uuid: string): Promise<VersionedImage> {
    const found = await this.get(uuid);
    if (!found) throw this.records.spec.missing(uuid);
    return found;
  }
}
