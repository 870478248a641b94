/**
 * Agent records in the inventory table (kind `agent`, id = hostname), listed through
 * the byKind index (all) and the bySite index (`agent#<site>`); their credentials (kind
 * `agent_credential`, children of the agent) and the sites' one-time enrollment tokens
 * (kind `enrollment_token`, children of the site). The API reads agents as conductors.
 */
import type { AgentCredential, EnrollmentToken } from '../../domain/agents/agent.ts';
import type { AgentRecord } from '../../domain/conductors.ts';
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import type { InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';

const KIND = 'agent';
const CREDENTIAL = 'agent_credential';
const ENROLLMENT = 'enrollment_token';
const DAY_SECONDS = 86_400;

const credentialParent = (hostname: string) => `${CREDENTIAL}@agent#${hostname}`;
const enrollmentParent = (site: string) => `${ENROLLMENT}@site#${site}`;
const epochSeconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

export interface Versioned<T> {
  readonly doc: T;
  readonly version: number;
}

export function agentWrite(agent: AgentRecord): ItemWrite<AgentRecord> {
  return {
    kind: KIND,
    id: agent.hostname,
    doc: agent,
    listSk: `${agent.created_at}#${agent.hostname}`,
    indexes: { kindPk: KIND, nameSk: agent.hostname, sitePk: `${KIND}#${agent.site}` },
  };
}

function credentialWrite(credential: AgentCredential): ItemWrite<AgentCredential> {
  // Kept a week after revocation or the end of its grace (for the record), then TTL-deleted.
  const end = credential.revoked ? new Date().toISOString() : credential.expires_at;
  return {
    kind: CREDENTIAL,
    id: credential.id,
    doc: credential,
    listSk: `${credential.created_at}#${credential.id}`,
    indexes: { parentPk: credentialParent(credential.agent) },
    ...(end ? { expiresAt: epochSeconds(end) + 7 * DAY_SECONDS } : {}),
  };
}

function enrollmentWrite(token: EnrollmentToken): ItemWrite<EnrollmentToken> {
  return {
    kind: ENROLLMENT,
    id: token.id,
    doc: token,
    listSk: `${token.created_at}#${token.id}`,
    indexes: { parentPk: enrollmentParent(token.site) },
    expiresAt: epochSeconds(token.expires_at) + DAY_SECONDS,
  };
}

const changedConcurrently = (what: string) => conflict(`${what} was changed concurrently; retry.`);

export class AgentRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(hostname: string): Promise<AgentRecord | undefined> {
    return (await this.store.get<AgentRecord>(KIND, hostname))?.doc;
  }

  async getVersioned(hostname: string): Promise<Versioned<AgentRecord> | undefined> {
    const item = await this.store.get<AgentRecord>(KIND, hostname);
    return item && { doc: item.doc, version: item.version };
  }

  /** Every agent (fleets have one per site: hundreds, not millions), bounded pages. */
  async all(): Promise<AgentRecord[]> {
    return this.collect('byKind', 'kindPk', KIND);
  }

  /** The agents of one site. */
  async ofSite(site: string): Promise<AgentRecord[]> {
    return this.collect('bySite', 'sitePk', `${KIND}#${site}`);
  }

  private async collect(index: string, partitionAttribute: string, partitionValue: string) {
    const agents: AgentRecord[] = [];
    let after: string | undefined;
    for (let page = 0; page < 20; page++) {
      const result = await this.store.query<AgentRecord>({
        index,
        partitionAttribute,
        partitionValue,
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

  /**
   * Applies `change` to the agent record with a conditional write, re-reading and
   * retrying when a concurrent write (a heartbeat, a hello) got there first.
   */
  async modify(
    hostname: string,
    change: (agent: AgentRecord) => AgentRecord,
    attempts = 4,
  ): Promise<AgentRecord | undefined> {
    for (let attempt = 1; ; attempt++) {
      const found = await this.getVersioned(hostname);
      if (!found) return undefined;
      const updated = change(found.doc);
      try {
        await this.store.write([
          {
            type: 'replace',
            item: agentWrite(updated),
            expectedVersion: found.version,
            onConflict: changedConcurrently(`Agent ${hostname}`),
          },
        ]);
        return updated;
      } catch (error) {
        if (attempt >= attempts || (error as { kind?: string }).kind !== 'conflict') throw error;
      }
    }
  }

  // --- enrollment tokens ------------------------------------------------------------

  async createEnrollmentToken(token: EnrollmentToken): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: enrollmentWrite(token),
        onConflict: conflict('Enrollment token id collision; retry.'),
      },
      {
        type: 'exists',
        kind: 'site',
        id: token.site,
        onConflict: notFound(`Site ${token.site} could not be found.`),
      },
    ]);
  }

  async getEnrollmentToken(id: string): Promise<Versioned<EnrollmentToken> | undefined> {
    const item = await this.store.get<EnrollmentToken>(ENROLLMENT, id);
    return item && { doc: item.doc, version: item.version };
  }

  /**
   * One transaction: the token is spent (conditional on the version read, so two
   * enrollments with one token cannot both succeed), the agent is created or updated,
   * its new credential created, and its older credentials revoked.
   */
  async enroll(input: {
    readonly token: Versioned<EnrollmentToken>;
    readonly usedAt: string;
    readonly agent: AgentRecord;
    /** The version of the existing record, or undefined to create it. */
    readonly agentVersion: number | undefined;
    readonly credential: AgentCredential;
    readonly revoke: readonly Versioned<AgentCredential>[];
  }): Promise<void> {
    const { token, agent, credential } = input;
    const ops: WriteOp[] = [
      {
        type: 'replace',
        item: enrollmentWrite({ ...token.doc, used_at: input.usedAt, used_by: agent.hostname }),
        expectedVersion: token.version,
        onConflict: invalid('Invalid, expired or already used enrollment token.'),
      },
      input.agentVersion === undefined
        ? {
            type: 'create',
            item: agentWrite(agent),
            onConflict: conflict(`Agent ${agent.hostname} enrolled concurrently; retry.`),
          }
        : {
            type: 'replace',
            item: agentWrite(agent),
            expectedVersion: input.agentVersion,
            onConflict: changedConcurrently(`Agent ${agent.hostname}`),
          },
      {
        type: 'create',
        item: credentialWrite(credential),
        onConflict: conflict('Credential id collision; retry.'),
      },
      {
        type: 'exists',
        kind: 'site',
        id: agent.site,
        onConflict: invalid(`Site ${agent.site} no longer exists.`),
      },
      ...this.revokeOps(input.revoke),
    ];
    await this.store.write(ops);
  }

  // --- credentials ------------------------------------------------------------------

  async getCredential(id: string): Promise<Versioned<AgentCredential> | undefined> {
    const item = await this.store.get<AgentCredential>(CREDENTIAL, id);
    return item && { doc: item.doc, version: item.version };
  }

  async credentialsOf(hostname: string): Promise<Versioned<AgentCredential>[]> {
    const page = await this.store.query<AgentCredential>({
      index: 'byParent',
      partitionAttribute: 'parentPk',
      partitionValue: credentialParent(hostname),
      sortAttribute: 'listSk',
      limit: 1000,
    });
    return page.items.map((item) => ({ doc: item.doc, version: item.version }));
  }

  /** Creates `credential` and rewrites `others` (their grace set) in one transaction. */
  async addCredential(
    credential: AgentCredential,
    others: readonly Versioned<AgentCredential>[],
  ): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: credentialWrite(credential),
        onConflict: conflict('Credential id collision; retry.'),
      },
      {
        type: 'exists',
        kind: KIND,
        id: credential.agent,
        onConflict: notFound(`Agent ${credential.agent} could not be found.`),
      },
      ...others.map(
        (other): WriteOp => ({
          type: 'replace',
          item: credentialWrite(other.doc),
          expectedVersion: other.version,
          onConflict: changedConcurrently(`Credential ${other.doc.id}`),
        }),
      ),
    ]);
  }

  /** Rewrites one credential (its first use, say), conditional on the version read. */
  async updateCredential(credential: Versioned<AgentCredential>): Promise<void> {
    await this.store.write([
      {
        type: 'replace',
        item: credentialWrite(credential.doc),
        expectedVersion: credential.version,
        onConflict: changedConcurrently(`Credential ${credential.doc.id}`),
      },
    ]);
  }

  async revokeCredentials(credentials: readonly Versioned<AgentCredential>[]): Promise<void> {
    await this.store.write(this.revokeOps(credentials));
  }

  private revokeOps(credentials: readonly Versioned<AgentCredential>[]): WriteOp[] {
    return credentials
      .filter((credential) => !credential.doc.revoked)
      .map((credential) => ({
        type: 'replace',
        item: credentialWrite({ ...credential.doc, revoked: true }),
        expectedVersion: credential.version,
        onConflict: changedConcurrently(`Credential ${credential.doc.id}`),
      }));
  }

  /** Deletes the agent record and every credential it has. */
  async delete(hostname: string): Promise<void> {
    const credentials = await this.store.cascadeDeleteOps([credentialParent(hostname)]);
    await this.store.write([
      {
        type: 'delete',
        kind: KIND,
        id: hostname,
        onConflict: notFound(`Agent ${hostname} could not be found.`),
      },
      ...credentials,
    ]);
  }
}
