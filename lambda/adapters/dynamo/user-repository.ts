/** Users (kind `user`, id = name) and their API tokens (kind `token`, child of the user). */
import { conflict, notFound } from '../../domain/errors.ts';
import type { ApiToken, User } from '../../domain/users/user.ts';
import type { InventoryStore, WriteOp } from './inventory-store.ts';

const tokenParent = (user: string) => `token@user#${user}`;

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
}
