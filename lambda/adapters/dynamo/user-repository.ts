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
import { byParent, VersionedRecords } from './versioned-repository.ts';

const tokenParent = (user: string) => `token@user#${user}`;
const userMissing = (name: string) => notFound(`User ${name} could not be found.`);
const USER_KIND = 'user';
const LOGIN_KIND = 'login';
/** Attempts at recording one failure when other containers record theirs at the same time. */
const FAILURE_WRITE_ATTEMPTS = 8;

export class UserRepository {
  private readonly store: InventoryStore;
  private readonly users: VersionedRecords<User>;
  private readonly tokens: VersionedRecords<ApiToken>;

  constructor(store: InventoryStore) {
    this.store = store;
    this.users = new VersionedRecords(store, {
      kind: USER_KIND,
      id: (user) => user.name,
      indexes: (user) => ({ kindPk: 'user', nameSk: user.name }),
      exists: (name) => conflict(`A user with name ${name} already exists.`),
      changed: (name) => conflict(`User ${name} was changed concurrently; retry.`),
      missing: userMissing,
    });
    this.tokens = new VersionedRecords(store, {
      kind: 'token',
      id: (token) => token.id,
      indexes: (token) => ({ parentPk: tokenParent(token.user) }),
      // DynamoDB removes expired tokens a day after expiry; the API refuses them at once.
      expiresAt: (token) =>
        token.expires_at ? Math.floor(Date.parse(token.expires_at) / 1000) + 86_400 : undefined,
      exists: () => conflict('Token id collision; retry.'),
      changed: (id) => conflict(`Token ${id} was changed concurrently; retry.`),
      missing: (id) => notFound(`Token ${id} could not be found.`),
    });
  }

  async get(name: string): Promise<{ user: User; version: number } | undefined> {
    return this.users.getAs(name, 'user');
  }

  async create(user: User): Promise<void> {
    await this.users.create(user);
  }

  async update(user: User, version: number): Promise<void> {
    await this.store.write([this.users.replaceOp(user, version)]);
  }

  /** Deletes the user and all its tokens. */
  async delete(name: string): Promise<void> {
    const tokens = await this.store.cascadeDeleteOps([tokenParent(name)]);
    await this.store.write([this.users.deleteOp(name, undefined, userMissing(name)), ...tokens]);
  }

  async list(limit: number, after?: string): Promise<{ users: User[]; more: boolean }> {
    const page = await this.users.page({ order: 'name', after: after || undefined, limit });
    return { users: page.items, more: page.more };
  }

  async getToken(id: string): Promise<{ token: ApiToken; version: number } | undefined> {
    return this.tokens.getAs(id, 'token');
  }

  async createToken(token: ApiToken): Promise<void> {
    await this.store.write([
      this.tokens.createOp(token),
      {
        type: 'exists',
        kind: USER_KIND,
        id: token.user,
        onConflict: notFound(`User ${token.user} could not be found.`),
      },
    ]);
  }

  /** Rewrites the token revoked; the item loses the TTL its creation set (as it always has). */
  async revokeToken(token: ApiToken, version: number): Promise<void> {
    const item = { ...this.tokens.item({ ...token, revoked: true }), expiresAt: undefined };
    await this.store.write([
      { type: 'replace', item, expectedVersion: version, onConflict: this.tokens.spec.changed(token.id) },
    ]);
  }

  async tokensOf(user: string): Promise<ApiToken[]> {
    return (await this.tokens.page({ partition: byParent(tokenParent(user)), limit: 1000 })).items;
  }

  /**
   * The user of a name and the failed-login record of that name, in one strongly
   * consistent read (what every password check needs, on every request).
   */
  async getWithLoginFailures(name: string): Promise<{
    user: { user: User; version: number } | undefined;
    failures: { record: LoginFailures; version: number } | undefined;
  }> {
    const [user, failures] = await this.store.getMany<unknown>([
      { kind: USER_KIND, id: name },
      { kind: LOGIN_KIND, id: lockoutId(name) },
    ]);
    return {
      user: user && { user: user.doc as User, version: user.version },
      failures: failures && { record: failures.doc as LoginFailures, version: failures.version },
    };
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
