/**
 * Users (kind `user`, id = name), their API tokens (kind `token`, child of the user), and
 * the failed-login record of each claimed user name (kind `login`, id = `lockoutId(name)`,
 * no index, TTL `expiresAt`; see `domain/auth/lockout.ts`).
 */
import {
  afterFailure,
  DEFAULT_LOCKOUT_POLICY,
  expiresAtSeconds,
  type LockoutPolicy,
  type LoginFailures,
  lockedUntil,
  lockoutId,
} from '../../domain/auth/lockout.ts';
import { conflict, DomainError, notFound } from '../../domain/errors.ts';
import type { ApiToken, User } from '../../domain/users/user.ts';
import type { InventoryStore, ItemWrite, WriteOp } from './inventory-store.ts';

const tokenParent = (user: string) => `token@user#${user}`;
const LOGIN_KIND = 'login';
/** Attempts at recording one failure when other containers record theirs at the same time. */
const FAILURE_WRITE_ATTEMPTS = 8;

export class UserRepository {
  private readonly store: InventoryStore;

  constructor(store: InventoryStore) {
    this.store = store;
  }

  async get(name: string): Promise<{ user: User; version: number } | undefined> {
    const item = await this.store.get<User>('user', name);
    return item && { user: item.doc, version: item.version };
  }

  async create(user: User): Promise<void> {
    await this.store.write([
      {
        type: 'create',
        item: {
          kind: 'user',
          id: user.name,
          doc: user,
          listSk: `${user.created_at}#${user.name}`,
          indexes: { kindPk: 'user', nameSk: user.name },
        },
        onConflict: conflict(`A user with name ${user.name} already exists.`),
      },
    ]);
  }

  async update(user: User, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'replace',
        item: {
          kind: 'user',
          id: user.name,
          doc: user,
          listSk: `${user.created_at}#${user.name}`,
          indexes: { kindPk: 'user', nameSk: user.name },
        },
        expectedVersion: version,
        onConflict: conflict(`User ${user.name} was changed concurrently; retry.`),
      },
    ]);
  }

  /** Deletes the user and all its tokens. */
  async delete(name: string): Promise<void> {
    const tokens = await this.store.cascadeDeleteOps([tokenParent(name)]);
    const ops: WriteOp[] = [
      { type: 'delete', kind: 'user', id: name, onConflict: notFound(`User ${name} could not be found.`) },
      ...tokens,
    ];
    await this.store.write(ops);
  }

  async list(limit: number, after?: string): Promise<{ users: User[]; more: boolean }> {
    const page = await this.store.query<User>({
      index: 'byName',
      partitionAttribute: 'kindPk',
      partitionValue: 'user',
      sortAttribute: 'nameSk',
      ...(after ? { after } : {}),
      limit,
    });
    return { users: page.items.map((item) => item.doc), more: page.more };
  }

  async getToken(id: string): Promise<{ token: ApiToken; version: number } | undefined> {
    const item = await this.store.get<ApiToken>('token', id);
    return item && { token: item.doc, version: item.version };
  }

  async createToken(token: ApiToken): Promise<void> {
    const expiresAt = token.expires_at ? Math.floor(Date.parse(token.expires_at) / 1000) + 86_400 : undefined;
    await this.store.write([
      {
        type: 'create',
        item: {
          kind: 'token',
          id: token.id,
          doc: token,
          listSk: `${token.created_at}#${token.id}`,
          indexes: { parentPk: tokenParent(token.user) },
          // DynamoDB removes expired tokens a day after expiry; the API refuses them at once.
          ...(expiresAt ? { expiresAt } : {}),
        },
        onConflict: conflict('Token id collision; retry.'),
      },
      {
        type: 'exists',
        kind: 'user',
        id: token.user,
        onConflict: notFound(`User ${token.user} could not be found.`),
      },
    ]);
  }

  async revokeToken(token: ApiToken, version: number): Promise<void> {
    await this.store.write([
      {
        type: 'replace',
        item: {
          kind: 'token',
          id: token.id,
          doc: { ...token, revoked: true },
          listSk: `${token.created_at}#${token.id}`,
          indexes: { parentPk: tokenParent(token.user) },
        },
        expectedVersion: version,
        onConflict: conflict(`Token ${token.id} was changed concurrently; retry.`),
      },
    ]);
  }

  async tokensOf(user: string): Promise<ApiToken[]> {
    const page = await this.store.query<ApiToken>({
      index: 'byParent',
      partitionAttribute: 'parentPk',
      partitionValue: tokenParent(user),
      sortAttribute: 'listSk',
      limit: 1000,
    });
    return page.items.map((item) => item.doc);
  }

  /** The failed-login record of a claimed user name (present or not as a user). */
  async getLoginFailures(name: string): Promise<{ record: LoginFailures; version: number } | undefined> {
    const item = await this.store.get<LoginFailures>(LOGIN_KIND, lockoutId(name));
    return item && { record: item.doc, version: item.version };
  }

  /**
   * Records one more failed login for `name` at `now` (epoch ms), from the record the
   * caller read (`known`). Read, decide, write with a version check, so that failures
   * counted at the same time by other containers are never lost: on a conflict the
   * record is read again, and if it is locked by then (another request's failure locked
   * it) this failure is not counted, as it would have been refused had it come later.
   * Answers the record written, or undefined when nothing was.
   */
  async recordLoginFailure(
    name: string,
    now: number,
    policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
    known?: { record: LoginFailures; version: number },
  ): Promise<LoginFailures | undefined> {
    const id = lockoutId(name);
    const raced = new DomainError('conflict', 'login failure recorded concurrently');
    let current = known;
    for (let attempt = 1; attempt <= FAILURE_WRITE_ATTEMPTS; attempt++) {
      const record = afterFailure(current?.record, now, policy);
      const item: ItemWrite<LoginFailures> = {
        kind: LOGIN_KIND,
        id,
        doc: record,
        listSk: `${record.last_failure_at}#${id}`,
        indexes: {},
        expiresAt: expiresAtSeconds(record, policy),
      };
      const op: WriteOp = current
        ? { type: 'replace', item, expectedVersion: current.version, onConflict: raced }
        : { type: 'create', item, onConflict: raced };
      try {
        await this.store.write([op]);
        return record;
      } catch (error) {
        if (error !== raced) throw error;
      }
      current = await this.getLoginFailures(name);
      if (current && lockedUntil(current.record, now, policy) !== undefined) return undefined;
    }
    // Only ever after as many other failures were counted meanwhile: the name is well on its way.
    return undefined;
  }

  /** Forgets the failed logins of `name` (after a success, or by an admin); absent is fine. */
  async clearLoginFailures(name: string): Promise<void> {
    const absent = new DomainError('not-found', 'no login failures');
    try {
      await this.store.write([{ type: 'delete', kind: LOGIN_KIND, id: lockoutId(name), onConflict: absent }]);
    } catch (error) {
      if (error !== absent) throw error;
    }
  }
}
