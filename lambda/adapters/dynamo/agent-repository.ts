/**
 * Agent records in the inventory table (kind `agent`, id = hostname), listed through
 * the byKind index. Enrollment and heartbeats write them (the agents issue); the API
 * reads them as conductors.
 */
import type { AgentRecord } from '../../domain/conductors.ts';
import type { InventoryStore } from './inventory-store.ts';

const KIND = 'agent';

export class AgentRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(hostname: string): Promise<AgentRecord | undefined> {
    return (await this.store.get<AgentRecord>(KIND, hostname))?.doc;
  }

  /** Every agent (fleets have one per site: hundreds, not millions), bounded pages. */
  async all(): Promise<AgentRecord[]> {
    const agents: AgentRecord[] = [];
    let after: string | undefined;
    for (let page = 0; page < 20; page++) {
      const result = await this.store.query<AgentRecord>({
        index: 'byKind',
        partitionAttribute: 'kindPk',
        partitionValue: KIND,
        sortAttribute: 'listSk',
        ...(after ? { after } : {}),
        limit: 1000,
      });
      agents.push(...result.items.map((item) => item.doc));
      if (!result.more) break;
      after = result.items.at(-1)?.listSk;
    }
    return agents;
  }
}
