/**
 * Sites in the inventory table, and which one is the default: the site a node joins
 * when it is created without `conductor_group` (the local stack makes `local` the
 * default; on AWS an operator chooses). No site is hard-coded.
 */
import { conflict, DomainError, notFound } from '../../domain/errors.ts';
import type { Site } from '../../domain/sites/site.ts';
import type { InventoryStore, WriteOp } from './inventory-store.ts';
import { siteNodes } from './node-repository.ts';
import { VersionedRecords } from './versioned-repository.ts';

const KIND = 'site';

export const siteHasNodes = (name: string) =>
  conflict(`Site ${name} still has nodes: move them to another conductor_group or delete them first.`);
const DEFAULT_SCOPE = 'site-default';

/** A create's default site (`defaultForNewNode`) stopped being the default before it was written. */
export class StaleDefaultSite extends DomainError {
  constructor() {
    super('conflict', 'The default site changed while the node was being created; retry.');
  }
}

export class SiteRepository {
  private readonly store: InventoryStore;
  private readonly records: VersionedRecords<Site>;
  /** The default site as last read here (undefined: none, or not read yet). */
  private lastDefault: string | undefined;

  constructor(store: InventoryStore) {
    this.store = store;
    this.records = new VersionedRecords(store, {
      kind: KIND,
      id: (site) => site.name,
      indexes: (site) => ({ kindPk: KIND, nameSk: site.name }),
      exists: (name) => conflict(`A site with name ${name} already exists.`),
      changed: (name) => conflict(`Site ${name} was changed concurrently; retry.`),
      missing: (name) => notFound(`Site ${name} could not be found.`),
    });
  }

  async get(name: string): Promise<Site | undefined> {
    return (await this.records.get(name))?.doc;
  }

  async getVersioned(name: string): Promise<{ site: Site; version: number } | undefined> {
    return this.records.getAs(name, 'site');
  }

  /** Sites by name, `limit` at a time after the `after` name. */
  async list(limit: number, after?: string): Promise<{ sites: Site[]; more: boolean }> {
    const page = await this.records.page({ order: 'name', after, limit });
    return { sites: page.items, more: page.more };
  }

  async update(site: Site, version: number): Promise<void> {
    await this.store.write([this.records.replaceOp(site, version)]);
  }

  /**
   * Deletes the site record (and the default marker if it is the default), only if its
   * node count is zero: read in the same transaction from the base table, so a node
   * created a moment before (not yet in the bySite index) blocks it, and one created
   * after finds no site. Nodes written before sites counted them are the caller's to
   * look for (the index: they are long indexed).
   */
  async delete(name: string, version: number): Promise<void> {
    const ops: WriteOp[] = [
      this.records.deleteOp(
        name,
        version,
        notFound(`Site ${name} could not be found, or changed during the deletion.`),
      ),
      {
        type: 'drop',
        ledger: siteNodes(name),
        onConflict: siteHasNodes(name),
      },
    ];
    if ((await this.defaultSite()) === name) {
      ops.push({ type: 'release', scope: DEFAULT_SCOPE, value: 'default', ownerId: name });
    }
    await this.store.write(ops);
    this.lastDefault = undefined;
  }

  /** Makes no site the default (if `name` is the default now). */
  async clearDefault(name: string): Promise<void> {
    await this.store.write([{ type: 'release', scope: DEFAULT_SCOPE, value: 'default', ownerId: name }]);
    this.lastDefault = undefined;
  }

  async create(site: Site, options: { makeDefault?: boolean } = {}): Promise<void> {
    await this.records.create(site);
    if (options.makeDefault) await this.setDefault(site.name);
  }

  /** The default site's name, if one is set. */
  async defaultSite(): Promise<string | undefined> {
    const name = await this.store.lookupUnique(DEFAULT_SCOPE, 'default');
    this.lastDefault = name;
    return name;
  }

  /**
   * The default site for a node created without `conductor_group`, and the op that checks,
   * in the creating transaction, that it is still the default. The name is the one this
   * container last read unless `fresh`: the default changes rarely, and the check makes a
   * stale name a failed transaction (`StaleDefaultSite`: read again and retry), never a node in
   * a site that stopped being the default. Saves a read per create (issue 18).
   */
  async defaultForNewNode(fresh: boolean): Promise<{ name: string; check: WriteOp } | undefined> {
    const name = fresh || this.lastDefault === undefined ? await this.defaultSite() : this.lastDefault;
    if (name === undefined) return undefined;
    return {
      name,
      check: {
        type: 'owns',
        scope: DEFAULT_SCOPE,
        value: 'default',
        ownerId: name,
        onConflict: new StaleDefaultSite(),
      },
    };
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
    this.lastDefault = name;
  }
}
