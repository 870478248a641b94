/**
 * Open agent WebSocket connections in the Connections table (`infra/resources.ts`), so
 * the control plane can push `wake` to a site's agent and know who is on a socket.
 *
 * Two items per connection, written together:
 *  - `pk = site#<site>`, `sk = connection#<id>`: the site's connections (one Query);
 *  - `pk = connection#<id>`, `sk = connection`: who the connection is (one GetItem per
 *    message; deleting it is what refuses a revoked agent's next message at once).
 * Both carry `expiresAt` (TTL): API Gateway closes a connection after 2 hours at most,
 * so a record whose `$disconnect` was lost does not outlive that by much.
 */

import { libDynamoDB } from '../aws-sdk.ts';
import { TableRepository } from './client.ts';

/** API Gateway's maximum connection duration, plus a margin. */
const CONNECTION_TTL_SECONDS = 2 * 3600 + 600;

export interface AgentConnection {
  readonly connectionId: string;
  readonly site: string;
  readonly hostname: string;
  readonly credentialId: string;
  /** End of the credential's grace period (rotation), null if it has none. */
  readonly credentialExpiresAt: string | null;
  readonly connectedAt: string;
}

const siteKey = (site: string, id: string) => ({ pk: `site#${site}`, sk: `connection#${id}` });
const connectionKey = (id: string) => ({ pk: `connection#${id}`, sk: 'connection' });

function fromItem(item: Record<string, unknown>): AgentConnection {
  return {
    connectionId: item.connectionId as string,
    site: item.site as string,
    hostname: item.hostname as string,
    credentialId: item.credentialId as string,
    credentialExpiresAt: (item.credentialExpiresAt as string | undefined) ?? null,
    connectedAt: item.connectedAt as string,
  };
}

export class ConnectionRepository extends TableRepository {
  async put(connection: AgentConnection): Promise<void> {
    const expiresAt = Math.floor(Date.parse(connection.connectedAt) / 1000) + CONNECTION_TTL_SECONDS;
    const attributes = { ...connection, expiresAt };
    await this.write([
      { PutRequest: { Item: { ...siteKey(connection.site, connection.connectionId), ...attributes } } },
      { PutRequest: { Item: { ...connectionKey(connection.connectionId), ...attributes } } },
    ]);
  }

  async get(connectionId: string): Promise<AgentConnection | undefined> {
    const { Item } = await this.db.send(
      new (await libDynamoDB()).GetCommand({
        TableName: this.table,
        Key: connectionKey(connectionId),
        ConsistentRead: true,
      }),
    );
    return Item ? fromItem(Item) : undefined;
  }

  async ofSite(site: string): Promise<AgentConnection[]> {
    const connections: AgentConnection[] = [];
    let startKey: Record<string, unknown> | undefined;
    for (let page = 0; page < 10; page++) {
      const { Items, LastEvaluatedKey } = await this.db.send(
        new (await libDynamoDB()).QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :site AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':site': `site#${site}`, ':prefix': 'connection#' },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      connections.push(...(Items ?? []).map(fromItem));
      startKey = LastEvaluatedKey;
      if (!startKey) break;
    }
    return connections;
  }

  async delete(connection: Pick<AgentConnection, 'connectionId' | 'site'>): Promise<void> {
    await this.write([
      { DeleteRequest: { Key: siteKey(connection.site, connection.connectionId) } },
      { DeleteRequest: { Key: connectionKey(connection.connectionId) } },
    ]);
  }

  /** Sets the grace end of the connections that authenticated with `credentialId`. */
  async setCredentialExpiry(connections: readonly AgentConnection[], expiresAt: string): Promise<void> {
    const { UpdateCommand } = await libDynamoDB();
    await Promise.all(
      connections.flatMap((connection) =>
        [siteKey(connection.site, connection.connectionId), connectionKey(connection.connectionId)].map(
          (Key) =>
            this.db
              .send(
                new UpdateCommand({
                  TableName: this.table,
                  Key,
                  UpdateExpression: 'SET credentialExpiresAt = :at',
                  ConditionExpression: 'attribute_exists(pk)',
                  ExpressionAttributeValues: { ':at': expiresAt },
                }),
              )
              .catch((error: Error) => {
                if (error.name !== 'ConditionalCheckFailedException') throw error;
              }),
        ),
      ),
    );
  }

  private async write(requests: Record<string, unknown>[]): Promise<void> {
    let pending = requests;
    for (let round = 0; pending.length > 0; round++) {
      if (round >= 5) throw new Error('connections table: unprocessed writes after 5 rounds');
      const { UnprocessedItems } = await this.db.send(
        new (await libDynamoDB()).BatchWriteCommand({ RequestItems: { [this.table]: pending as never } }),
      );
      pending = (UnprocessedItems?.[this.table] as Record<string, unknown>[] | undefined) ?? [];
      if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** round));
    }
  }
}
