/**
 * Sites in the inventory table, and which one is the default: the site a node joins
 * when it is created without `conductor_group` (the local stack makes `local` the
 * default; on AWS an operator chooses). No site is hard-coded.
 */
import { conflict } from '../../domain/errors.ts';
import type { Site } from '../../domain/sites/site.ts';
import type { InventoryStore, WriteOp } from './inventory-store.ts';

const KIND = 'site';
const DEFAULT_SCOPE = 'site-default';

export class SiteRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(name: string): Promise<Site | undefined> {
    return (await this.store.get<Site>(KIND, name))?.doc;
  }

  async create(site: Site, options: { makeDefault?: boolean } = {}): Promise<void> {
    const ops: WriteOp[] = [
      {
        type: 'create',
        item: {
          kind: KIND,
          id: site.name,
          doc: site,
          listSk: `${site.created_at}#${site.name}`,
          indexes: { kindPk: KIND, nameSk: site.name },
        },
        onConflict: conflict(`A site with name ${site.name} already exists.`),
      },
    ];
    await this.store.write(ops);
    if (options.makeDefault) await this.setDefault(site.name);
  }

  /** The default site's name, if one is set. */
  async defaultSite(): Promise<string | undefined> {
    return this.store.lookupUnique(DEFAULT_SCOPE, 'default');
  }

  async setDefault(name: string): Promise<void> {
    const current = await this.defaultSite();
    const ops: WriteOp[] = [
      {
        type: 'claim',
        scope: DEFAULT_SCOPE,
        value: 'default',
        ownerId: name,
        ...(current ? { previousOwnerId: current } : {}),
        onConflict: conflict('The default site changed concurrently; retry.'),
      },
      { type: 'exists', kind: KIND, id: name, onConflict: conflict(`Site ${name} does not exist.`) },
    ];
    await this.store.write(ops);
  }
}
