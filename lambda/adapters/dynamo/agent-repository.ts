/**
 * Agent records in the inventory table (kind `agent`, id = hostname), listed through
 * the byKind index (all) and the bySite index (`agent#<site>`); their credentials (kind
 * `agent_credential`, children of the agent) and the sites' one-time enrollment tokens
 * (kind `enrollment_token`, children of the site). The API reads agents as conductors.
 *
 * Heartbeats go to the agent's side item `heartbeat` (`last_heartbeat`, and the
 * `protocol_version` its last `hello` announced), not to its record: the record is in
 * three indexes (byKind, byName, bySite), so rewriting it cost 4 write units a heartbeat,
 * the side item costs 1, with no read first (`beat`). Every read of an agent gives the
 * later of the record's `last_heartbeat` and the side item's.
 */
import type { AgentCredential, EnrollmentToken } from '../../domain/agents/agent.ts';
import type { AgentRecord } from '../../domain/conductors.ts';
import { conflict, invalid, notFound } from '../../domain/errors.ts';
import type { InventoryStore, SideRef, WriteOp } from './inventory-store.ts';
import { byParent, collect, type Versioned, VersionedRecords } from './versioned-repository.ts';

export type { Versioned } from './versioned-repository.ts';

const KIND = 'agent';
const CREDENTIAL = 'agent_credential';
const ENROLLMENT = 'enrollment_token';
const DAY_SECONDS = 86_400;
/** The side item of an agent's heartbeats (`SideRef`). */
const HEARTBEAT = 'heartbeat';
const heartbeatSide = (hostname: string): SideRef => ({ kind: KIND, id: hostname, name: HEARTBEAT });

/** The later of two timestamps (null: none). */
function later(a: string | null, b: string | null | undefined): string | null {
  if (!b) return a;
  if (!a) return b;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

/** The record with the later of its own heartbeat and its side item's. */
function withHeartbeat(agent: AgentRecord, side: Record<string, unknown> | undefined): AgentRecord {
  const beat = later(agent.last_heartbeat, side?.last_heartbeat as string | null | undefined);
  return beat === agent.last_heartbeat ? agent : { ...agent, last_heartbeat: beat };
}

/** The protocols a heartbeat is taken from (`beat`): the control plane's served range. */
export interface ServedProtocols {
  readonly oldest: number;
  readonly newest: number;
}

const credentialParent = (hostname: string) => `${CREDENTIAL}@agent#${hostname}`;
const enrollmentParent = (site: string) => `${ENROLLMENT}@site#${site}`;
const epochSeconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

const changedConcurrently = (what: string) => conflict(`${what} was changed concurrently; retry.`);
const agentMissing = (hostname: string) => notFound(`Agent ${hostname} could not be found.`);

export class AgentRepository {
  private readonly store: InventoryStore;
  private readonly agents: VersionedRecords<AgentRecord>;
  private readonly credentials: VersionedRecords<AgentCredential>;
  private readonly enrollments: VersionedRecords<EnrollmentToken>;

  constructor(store: InventoryStore) {
    this.store = store;
    this.agents = new VersionedRecords(store, {
      kind: KIND,
      id: (agent) => agent.hostname,
      indexes: (agent) => ({ kindPk: KIND, nameSk: agent.hostname, sitePk: `${KIND}#${agent.site}` }),
      exists: (hostname) => conflict(`Agent ${hostname} enrolled concurrently; retry.`),
      changed: (hostname) => changedConcurrently(`Agent ${hostname}`),
      missing: agentMissing,
    });
    this.credentials = new VersionedRecords(store, {
      kind: CREDENTIAL,
      id: (credential) => credential.id,
      indexes: (credential) => ({ parentPk: credentialParent(credential.agent) }),
      // Kept a week after revocation or the end of its grace (for the record), then TTL-deleted.
      expiresAt: (credential) => {
        const end = credential.revoked ? new Date().toISOString() : credential.expires_at;
        return end ? epochSeconds(end) + 7 * DAY_SECONDS : undefined;
      },
      exists: () => conflict('Credential id collision; retry.'),
      changed: (id) => changedConcurrently(`Credential ${id}`),
      missing: (id) => notFound(`Credential ${id} could not be found.`),
    });
    this.enrollments = new VersionedRecords(store, {
      kind: ENROLLMENT,
      id: (token) => token.id,
      indexes: (token) => ({ parentPk: enrollmentParent(token.site) }),
      expiresAt: (token) => epochSeconds(token.expires_at) + DAY_SECONDS,
      exists: () => conflict('Enrollment token id collision; retry.'),
      // Spent or changed meanwhile: to the enrolling agent, a token it can no longer use.
      changed: () => invalid('Invalid, expired or already used enrollment token.'),
      missing: (id) => notFound(`Enrollment token ${id} could not be found.`),
    });
  }

  async get(hostname: string): Promise<AgentRecord | undefined> {
    return (await this.getVersioned(hostname))?.doc;
  }

  /** The record (with its latest heartbeat) at its version: one Query of its partition. */
  async getVersioned(hostname: string): Promise<Versioned<AgentRecord> | undefined> {
    const { item, sides } = await this.store.getWithSides<AgentRecord>(KIND, hostname);
    if (!item) return undefined;
    return { doc: withHeartbeat(item.doc, sides.get(HEARTBEAT)), version: item.version };
  }

  /** Every agent (fleets have one per site: hundreds, not millions), bounded pages. */
  async all(): Promise<AgentRecord[]> {
    return this.withHeartbeats(
      await collect(this.store, { index: 'byKind', attribute: 'kindPk', value: KIND }, 1000, 20),
    );
  }

  /** The agents of one site. */
  async ofSite(site: string): Promise<AgentRecord[]> {
    return this.withHeartbeats(
      await collect(this.store, { index: 'bySite', attribute: 'sitePk', value: `${KIND}#${site}` }, 1000, 20),
    );
  }

  private async withHeartbeats(agents: AgentRecord[]): Promise<AgentRecord[]> {
    if (agents.length === 0) return agents;
    const beats = await this.store.sides(
      KIND,
      agents.map((agent) => agent.hostname),
      HEARTBEAT,
    );
    return agents.map((agent) => withHeartbeat(agent, beats.get(agent.hostname)));
  }

  /**
   * A heartbeat: `last_heartbeat` of the agent's side item set to `at`, one conditional
   * write of 1 unit and no read, if the side item is there and its protocol is `served`.
   * False otherwise (no agent, a protocol not served, or no side item yet: an agent
   * connected before side items existed): the caller decides from the record then, and
   * writes the side item with it (`modify` with `heartbeat`).
   */
  async beat(hostname: string, at: string, served: ServedProtocols): Promise<boolean> {
    return this.store.updateSide(
      heartbeatSide(hostname),
      'SET last_heartbeat = :at',
      'attribute_exists(pk) AND protocol_version BETWEEN :oldest AND :newest',
      { ':at': at, ':oldest': served.oldest, ':newest': served.newest },
    );
  }

  /**
   * Applies `change` to the agent record with a conditional write, re-reading and
   * retrying when a concurrent write (a hello, an enrollment) got there first. With
   * `heartbeat` (the protocol the changed record speaks), the side item that `beat`
   * writes is put in the same transaction, with the record's `last_heartbeat`.
   */
  async modify(
    hostname: string,
    change: (agent: AgentRecord) => AgentRecord,
    options: { readonly attempts?: number; readonly heartbeat?: (agent: AgentRecord) => number } = {},
  ): Promise<AgentRecord | undefined> {
    const attempts = options.attempts ?? 4;
    for (let attempt = 1; ; attempt++) {
      const found = await this.getVersioned(hostname);
      if (!found) return undefined;
      const updated = change(found.doc);
      const ops: WriteOp[] = [this.agents.replaceOp(updated, found.version)];
      if (options.heartbeat) {
        ops.push({
          type: 'side',
          side: heartbeatSide(hostname),
          attributes: {
            last_heartbeat: updated.last_heartbeat,
            protocol_version: options.heartbeat(updated),
          },
        });
      }
      try {
        await this.store.write(ops);
        return updated;
      } catch (error) {
        if (attempt >= attempts || (error as { kind?: string }).kind !== 'conflict') throw error;
      }
    }
  }

  // --- enrollment tokens ------------------------------------------------------------

  async createEnrollmentToken(token: EnrollmentToken): Promise<void> {
    await this.store.write([
      this.enrollments.createOp(token),
      {
        type: 'exists',
        kind: 'site',
        id: token.site,
        onConflict: notFound(`Site ${token.site} could not be found.`),
      },
    ]);
  }

  async getEnrollmentToken(id: string): Promise<Versioned<EnrollmentToken> | undefined> {
    return this.enrollments.get(id);
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
      this.enrollments.replaceOp(
        { ...token.doc, used_at: input.usedAt, used_by: agent.hostname },
        token.version,
      ),
      input.agentVersion === undefined
        ? this.agents.createOp(agent)
        : this.agents.replaceOp(agent, input.agentVersion),
      this.credentials.createOp(credential),
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
    return this.credentials.get(id);
  }

  async credentialsOf(hostname: string): Promise<Versioned<AgentCredential>[]> {
    const page = await this.credentials.pageItems({
      partition: byParent(credentialParent(hostname)),
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
      this.credentials.createOp(credential),
      { type: 'exists', kind: KIND, id: credential.agent, onConflict: agentMissing(credential.agent) },
      ...others.map((other) => this.credentials.replaceOp(other.doc, other.version)),
    ]);
  }

  /** Rewrites one credential (its first use, say), conditional on the version read. */
  async updateCredential(credential: Versioned<AgentCredential>): Promise<void> {
    await this.store.write([this.credentials.replaceOp(credential.doc, credential.version)]);
  }

  async revokeCredentials(credentials: readonly Versioned<AgentCredential>[]): Promise<void> {
    await this.store.write(this.revokeOps(credentials));
  }

  private revokeOps(credentials: readonly Versioned<AgentCredential>[]): WriteOp[] {
    return credentials
      .filter((credential) => !credential.doc.revoked)
      .map((credential) =>
        this.credentials.replaceOp({ ...credential.doc, revoked: true }, credential.version),
      );
  }

  /** Deletes the agent record and every credential it has. */
  async delete(hostname: string): Promise<void> {
    const credentials = await this.store.cascadeDeleteOps([credentialParent(hostname)]);
    await this.store.write([
      this.agents.deleteOp(hostname, undefined, agentMissing(hostname)),
      { type: 'side', side: heartbeatSide(hostname) },
      ...credentials,
    ]);
  }
}
