/**
 * Deploy templates in the inventory table: one item per template (kind
 * `deploy_template`), the name unique (claimed in the same transaction), listed by
 * `byKind` (creation order) or `byName`.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { DeployTemplate } from '../../domain/inventory/deploy-template.ts';
import type { Page } from './chassis-repository.ts';
import type { InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';

export const DEPLOY_TEMPLATE_KIND = 'deploy_template';
const NAME_SCOPE = 'deploy-template-name';

export interface VersionedDeployTemplate {
  readonly template: DeployTemplate;
  readonly version: number;
}

export interface DeployTemplateListQuery {
  readonly limit: number;
  readonly markerUuid?: string | undefined;
  readonly sortKey: 'created_at' | 'name';
  readonly descending: boolean;
}

const nameSortKey = (template: DeployTemplate) => `${template.name}#${template.uuid}`;
const listSortKey = (template: DeployTemplate) => `${template.created_at}#${template.uuid}`;

const nameTaken = (name: string) => conflict(`A deploy template with name ${name} already exists.`);
const concurrentChange = (uuid: string) =>
  conflict(
    `Deploy template ${uuid} was changed by another request at the same time; retry with the current template.`,
  );

function templateWrite(template: DeployTemplate): ItemWrite<DeployTemplate> {
  return {
    kind: DEPLOY_TEMPLATE_KIND,
    id: template.uuid,
    doc: template,
    listSk: listSortKey(template),
    indexes: { kindPk: DEPLOY_TEMPLATE_KIND, nameSk: nameSortKey(template) },
    uniques: [{ scope: NAME_SCOPE, value: template.name }],
  };
}

function claimName(template: DeployTemplate): WriteOp {
  return {
    type: 'claim',
    scope: NAME_SCOPE,
    value: template.name,
    ownerId: template.uuid,
    onConflict: nameTaken(template.name),
  };
}

export class DeployTemplateRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(uuid: string): Promise<VersionedDeployTemplate | undefined> {
    const item = await this.store.get<DeployTemplate>(DEPLOY_TEMPLATE_KIND, uuid);
    return item && { template: item.doc, version: item.version };
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.store.lookupUnique(NAME_SCOPE, name);
  }

  async create(template: DeployTemplate): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: templateWrite(template),
        onConflict: conflict(`A deploy template with UUID ${template.uuid} already exists.`),
      },
      claimName(template),
    ]);
  }

  async update(before: DeployTemplate, after: DeployTemplate, version: number): Promise<void> {
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: templateWrite(after),
        expectedVersion: version,
        onConflict: concurrentChange(after.uuid),
      },
    ];
    if (before.name !== after.name) {
      ops.push(claimName(after), {
        type: 'release',
        scope: NAME_SCOPE,
        value: before.name,
        ownerId: before.uuid,
      });
    }
    await this.store.write(ops);
  }

  async delete(template: DeployTemplate, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'delete',
        kind: DEPLOY_TEMPLATE_KIND,
        id: template.uuid,
        expectedVersion: version,
        onConflict: concurrentChange(template.uuid),
      },
      { type: 'release', scope: NAME_SCOPE, value: template.name, ownerId: template.uuid },
    ]);
  }

  async list(query: DeployTemplateListQuery): Promise<Page<DeployTemplate>> {
    const byName = query.sortKey === 'name';
    let after: string | undefined;
    if (query.markerUuid) {
      const marker = await this.get(query.markerUuid);
      if (!marker) throw notFound(`Deploy template ${query.markerUuid} could not be found.`);
      after = byName ? nameSortKey(marker.template) : listSortKey(marker.template);
    }
    const page = await this.store.query<DeployTemplate>({
      index: byName ? 'byName' : 'byKind',
      partitionAttribute: 'kindPk',
      partitionValue: DEPLOY_TEMPLATE_KIND,
      sortAttribute: byName ? 'nameSk' : 'listSk',
      after,
      descending: query.descending,
      limit: query.limit,
    });
    return { items: page.items.map((item) => item.doc), more: page.more };
  }
}
