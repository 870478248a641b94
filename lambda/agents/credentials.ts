/**
 * Agents' credentials: enrollment, authentication, rotation and revocation
 * (`domain/agents/agent.ts` for the rules). The API (enrollment, HTTPS agent routes) and
 * the agents Lambda (`$connect`) both authenticate through `authenticate`, which reads
 * the credential on every call: a revoked credential is refused at once.
 */
import type { ConnectionNotifier } from '../adapters/connection-notifier.ts';
import { AgentRepository, type Versioned } from '../adapters/dynamo/agent-repository.ts';
import type { ConnectionRepository } from '../adapters/dynamo/connection-repository.ts';
import type { InventoryStore } from '../adapters/dynamo/inventory-store.ts';
import {
  type AgentCredential,
  ENROLLMENT_TOKEN_SECONDS,
  type EnrollmentToken,
  graceEnd,
  isCredentialUsable,
  isEnrollmentTokenUsable,
  validateHostname,
} from '../domain/agents/agent.ts';
import { mintAgentCredential, mintEnrollmentToken, parseToken, verifySecret } from '../domain/auth/tokens.ts';
import type { AgentRecord } from '../domain/conductors.ts';
import { conflict, invalid, notFound } from '../domain/errors.ts';
import { ironicTimestamp } from '../domain/time.ts';

/** Who is on the other end, once its credential checked out. */
export interface AgentIdentity {
  readonly hostname: string;
  readonly site: string;
  readonly credentialId: string;
  /** End of the credential's rotation grace, if it has one. */
  readonly credentialExpiresAt: string | null;
}

export interface Issued {
  /** The whole credential: shown once, never stored. */
  readonly token: string;
  readonly credential: AgentCredential;
}

const refused = () => invalid('Invalid, expired or already used enrollment token.');

export class AgentCredentials {
  readonly agents: AgentRepository;
  private readonly connections: ConnectionRepository;
  private readonly notifier: ConnectionNotifier;
  private readonly clock: () => Date;

  constructor(
    store: InventoryStore,
    connections: ConnectionRepository,
    notifier: ConnectionNotifier,
    clock: () => Date = () => new Date(),
  ) {
    this.agents = new AgentRepository(store);
    this.connections = connections;
    this.notifier = notifier;
    this.clock = clock;
  }

  /** A one-time enrollment token for `site` (the site must exist). */
  async createEnrollmentToken(
    site: string,
    createdBy: string,
  ): Promise<{ token: string; record: EnrollmentToken }> {
    const minted = mintEnrollmentToken();
    const now = this.clock();
    const record: EnrollmentToken = {
      id: minted.id,
      site,
      secret_hash: minted.secretHash,
      created_at: now.toISOString(),
      expires_at: new Date(now.getTime() + ENROLLMENT_TOKEN_SECONDS * 1000).toISOString(),
      created_by: createdBy,
      used_at: null,
      used_by: null,
    };
    await this.agents.createEnrollmentToken(record);
    return { token: minted.token, record };
  }

  /**
   * Spends the enrollment token: creates (or, re-enrolling in the same site, updates)
   * the agent and answers its new credential. Its older credentials are revoked.
   */
  async enroll(input: {
    token: string;
    hostname: string;
    drivers: readonly string[];
    agentVersion?: string | undefined;
  }): Promise<{ agent: AgentRecord } & Issued> {
    const parsed = parseToken(input.token, 'enrollment');
    const token = parsed ? await this.agents.getEnrollmentToken(parsed.id) : undefined;
    const now = this.clock();
    if (
      !parsed ||
      !token ||
      !verifySecret(parsed.secret, token.doc.secret_hash) ||
      !isEnrollmentTokenUsable(token.doc, now)
    ) {
      throw refused();
    }
    const hostname = validateHostname(input.hostname);
    const site = token.doc.site;
    const existing = await this.agents.getVersioned(hostname);
    if (existing && existing.doc.site !== site) {
      throw conflict(
        `Agent ${hostname} is enrolled in site ${existing.doc.site}; delete it there first to enroll it in ${site}.`,
      );
    }
    const stamp = ironicTimestamp(now);
    const agent: AgentRecord = {
      hostname,
      site,
      drivers: [...new Set(input.drivers)].sort(),
      created_at: existing?.doc.created_at ?? stamp,
      updated_at: existing ? stamp : null,
      last_heartbeat: existing?.doc.last_heartbeat ?? null,
      agent_version: input.agentVersion ?? existing?.doc.agent_version ?? null,
    };
    const minted = mintAgentCredential();
    const credential: AgentCredential = {
      id: minted.id,
      agent: hostname,
      site,
      secret_hash: minted.secretHash,
      created_at: now.toISOString(),
      expires_at: null,
      revoked: false,
      first_used_at: null,
    };
    const previous = existing ? await this.agents.credentialsOf(hostname) : [];
    await this.agents.enroll({
      token,
      usedAt: now.toISOString(),
      agent,
      agentVersion: existing?.version,
      credential,
      revoke: previous,
    });
    if (previous.length > 0)
      await this.closeConnections(site, hostname, new Set(previous.map((c) => c.doc.id)));
    return { agent, token: minted.token, credential };
  }

  /**
   * The agent a bearer credential (`mpa_...`) stands for, or undefined. Its first use
   * ends the grace of the agent's older credentials (rotation done).
   */
  async authenticate(token: string | undefined): Promise<AgentIdentity | undefined> {
    const parsed = parseToken(token, 'agent');
    if (!parsed) return undefined;
    const found = await this.agents.getCredential(parsed.id);
    const now = this.clock();
    if (
      !found ||
      !verifySecret(parsed.secret, found.doc.secret_hash) ||
      !isCredentialUsable(found.doc, now)
    ) {
      return undefined;
    }
    if (found.doc.first_used_at === null) await this.firstUse(found, now);
    return {
      hostname: found.doc.agent,
      site: found.doc.site,
      credentialId: found.doc.id,
      credentialExpiresAt: found.doc.expires_at,
    };
  }

  private async firstUse(credential: Versioned<AgentCredential>, now: Date): Promise<void> {
    try {
      await this.agents.updateCredential({
        doc: { ...credential.doc, first_used_at: now.toISOString() },
        version: credential.version,
      });
    } catch (error) {
      if ((error as { kind?: string }).kind === 'conflict') return; // another first use got there
      throw error;
    }
    const older = (await this.agents.credentialsOf(credential.doc.agent)).filter(
      (other) =>
        other.doc.id !== credential.doc.id &&
        !other.doc.revoked &&
        other.doc.created_at <= credential.doc.created_at,
    );
    if (older.length === 0) return;
    await this.agents.revokeCredentials(older);
    await this.closeConnections(
      credential.doc.site,
      credential.doc.agent,
      new Set(older.map((c) => c.doc.id)),
    );
  }

  /** Rotation: a new credential; the older ones keep working for the grace period. */
  async rotate(hostname: string): Promise<Issued & { previousExpireAt: string | null }> {
    const agent = await this.agents.get(hostname);
    if (!agent) throw notFound(`Agent ${hostname} could not be found.`);
    const now = this.clock();
    const current = (await this.agents.credentialsOf(hostname)).filter((c) => isCredentialUsable(c.doc, now));
    const graced = current.map((c) => ({
      doc: { ...c.doc, expires_at: graceEnd(c.doc, now) },
      version: c.version,
    }));
    const minted = mintAgentCredential();
    const credential: AgentCredential = {
      id: minted.id,
      agent: hostname,
      site: agent.site,
      secret_hash: minted.secretHash,
      created_at: now.toISOString(),
      expires_at: null,
      revoked: false,
      first_used_at: null,
    };
    await this.agents.addCredential(credential, graced);
    // Sockets opened with an older credential end with its grace, too.
    const graceByCredential = new Map(graced.map((c) => [c.doc.id, c.doc.expires_at as string]));
    const sockets = (await this.connections.ofSite(agent.site)).filter((c) =>
      graceByCredential.has(c.credentialId),
    );
    for (const [id, end] of graceByCredential) {
      await this.connections.setCredentialExpiry(
        sockets.filter((socket) => socket.credentialId === id),
        end,
      );
    }
    const ends = graced.map((c) => c.doc.expires_at as string).sort();
    return { token: minted.token, credential, previousExpireAt: ends.at(-1) ?? null };
  }

  /** Revokes every credential of the agent and closes its sockets, at once. */
  async revokeAll(hostname: string): Promise<number> {
    const agent = await this.agents.get(hostname);
    if (!agent) throw notFound(`Agent ${hostname} could not be found.`);
    const credentials = (await this.agents.credentialsOf(hostname)).filter((c) => !c.doc.revoked);
    if (credentials.length > 0) await this.agents.revokeCredentials(credentials);
    await this.closeConnections(agent.site, hostname);
    return credentials.length;
  }

  /** Revokes everything, then deletes the agent and its credentials. */
  async deleteAgent(hostname: string): Promise<void> {
    await this.revokeAll(hostname);
    await this.agents.delete(hostname);
  }

  /**
   * Forgets and closes the agent's sockets (those opened with `credentialIds` only, if
   * given). The records go first: a message already on its way is refused even if the
   * close itself were late.
   */
  async closeConnections(
    site: string,
    hostname: string,
    credentialIds?: ReadonlySet<string>,
  ): Promise<number> {
    const sockets = (await this.connections.ofSite(site)).filter(
      (c) => c.hostname === hostname && (!credentialIds || credentialIds.has(c.credentialId)),
    );
    await Promise.all(sockets.map((socket) => this.connections.delete(socket)));
    await Promise.all(
      sockets.map((socket) => this.notifier.close(socket.connectionId).catch(() => 'failed')),
    );
    return sockets.length;
  }
}
