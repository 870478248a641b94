/**
 * BIOS settings in the inventory table: one item per setting of a node (kind
 * `bios_setting`, id `<node uuid>/<name>`), children of the node
 * (`bios_setting@node#<uuid>`, which the node's deletion cascades), listed by name
 * (their `listSk` is the setting's name, Ironic's order). The API only reads them; the
 * node's agent writes them (`biosSettingWrite` builds its items).
 */
import type { BiosSetting } from '../../domain/inventory/bios.ts';
import type { InventoryStore, ItemWrite } from './inventory-store.ts';
import { byParent, collect, nodeChildParent } from './versioned-repository.ts';

export const BIOS_KIND = 'bios_setting';
/** Ironic has no paging here: a node reports at most a few thousand settings. */
const MAX_SETTINGS_PAGE = 1000;

export const biosParent = (nodeUuid: string) => nodeChildParent(BIOS_KIND, nodeUuid);
const settingId = (nodeUuid: string, name: string) => `${nodeUuid}/${name}`;

/** The item of one setting, for the writer (the agent's report). */
export function biosSettingWrite(nodeUuid: string, setting: BiosSetting): ItemWrite<BiosSetting> {
  return {
    kind: BIOS_KIND,
    id: settingId(nodeUuid, setting.name),
    doc: setting,
    listSk: setting.name,
    indexes: { parentPk: biosParent(nodeUuid) },
  };
}

export class BiosRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  /** Every setting of the node, by name. */
  async list(nodeUuid: string): Promise<BiosSetting[]> {
    return collect(this.store, byParent(biosParent(nodeUuid)), MAX_SETTINGS_PAGE);
  }

  async get(nodeUuid: string, name: string): Promise<BiosSetting | undefined> {
    return (await this.store.get<BiosSetting>(BIOS_KIND, settingId(nodeUuid, name)))?.doc;
  }
}
