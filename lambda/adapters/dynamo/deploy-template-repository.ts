/**
 * Deploy templates in the inventory table: one item per template (kind
 * `deploy_template`), the name unique (claimed in the same transaction), listed by
 * `byKind` (creation order) or `byName`.
 */
import { conflict, notFound } from '../../domain/errors.ts';
import type { DeployTemplate } from '../../domain/inventory/deploy-template.ts';
import type { InventoryStore } from './inventory-store.ts';
import { type Page, VersionedRecords } from './versioned-repository.ts';

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

export class DeployTemplateRepository {
  private readonly records: VersionedRecords<DeployTemplate>;

  constructor(store: InventoryStore) {
    this.records = new VersionedRecords(store, {
      kind: DEPLOY_TEMPLATE_KIND,
      id: (template) => template.uuid,
      indexes: (template) => ({ kindPk: DEPLOY_TEMPLATE_KIND, nameSk: `${template.name}#${template.uuid}` }),
      uniques: [
        {
          scope: NAME_SCOPE,
          value: (template) => template.name,
          taken: (name) => conflict(`A deploy template with name ${name} already exists.`),
        },
      ],
      exists: (uuid) => conflict(`A deploy template with UUID ${uuid} already exists.`),
      changed: (uuid) =>
        conflict(
          `Deploy template ${uuid} was changed by another request at the same time; retry with the current template.`,
        ),
      missing: (uuid) => notFound(`Deploy template ${uuid} could not be found.`),
    });
  }

  async get(uuid: string): Promise<VersionedDeployTemplate | undefined> {
    return this.records.getAs(uuid, 'template');
  }

  async uuidForName(name: string): Promise<string | undefined> {
    return this.records.idFor(NAME_SCOPE, name);
  }

  async create(template: DeployTemplate): Promise<void> {
    await this.records.create(template);
  }

  async update(before: DeployTemplate, after: DeployTemplate, version: number): Promise<void> {
    await this.records.update(before, after, version);
  }

  async delete(template: DeployTemplate, version: number): Promise<void> {
    await this.records.delete(template, version);
  }

  async list(query: DeployTemplateListQuery): Promise<Page<DeployTemplate>> {
    const { sortKey, ...rest } = query;
    return this.records.list({ ...rest, order: sortKey === 'name' ? 'name' : 'created' });
  }
}
