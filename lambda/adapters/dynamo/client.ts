/**
 * The DynamoDB document client the repositories share: one per container, keep-alive
 * connections, and undefined values dropped (absent attributes, not NULLs). Built, and the
 * SDK loaded, at its first `send` (not at import: issue 18).
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type ConfigSource, environmentConfig, tableName } from '../../config.ts';
import { clientDynamoDB, type LazyClient, lazyClient, libDynamoDB, type Sender } from '../aws-sdk.ts';

/** What the repositories use of the document client: `send` (the shared lazy one, or a test's). */
export type DocumentClient = Sender<DynamoDBDocumentClient>;

let shared: LazyClient<DynamoDBDocumentClient> | undefined;
let built: DynamoDBDocumentClient | undefined;
let decorate: ((client: DynamoDBDocumentClient) => DynamoDBDocumentClient) | undefined;

export function documentClient(): LazyClient<DynamoDBDocumentClient> {
  shared ??= lazyClient(async () => {
    const [{ DynamoDBClient }, { DynamoDBDocumentClient }] = await Promise.all([
      clientDynamoDB(),
      libDynamoDB(),
    ]);
    const client = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        maxAttempts: 4,
        requestHandler: { requestTimeout: 5000, connectionTimeout: 2000 },
      }),
      { marshallOptions: { removeUndefinedValues: true } },
    );
    built = decorate ? decorate(client) : client;
    return built;
  });
  return shared;
}

/**
 * Applies `decoration` (the X-Ray capture, when tracing is on) to the shared document
 * client when it is built (at once if it already is).
 */
export function decorateDocumentClient(
  decoration: (client: DynamoDBDocumentClient) => DynamoDBDocumentClient,
): void {
  decorate = decoration;
  if (built) decoration(built);
}

/**
 * The physical name of a table, by the environment variable its definition names, from the
 * configuration (default: the environment's now, `environmentConfig`).
 */
export function tableFromEnv(envVar: string, config: ConfigSource = environmentConfig): string {
  return tableName(config(), envVar);
}

/** A table's name, or a function giving it at first use (not at cold start). */
export type TableName = string | (() => string);

/** The base of every repository over one DynamoDB table. */
export abstract class TableRepository {
  protected readonly db: DocumentClient;
  readonly #tableName: TableName;

  constructor(db: DocumentClient, table: TableName) {
    this.db = db;
    this.#tableName = table;
  }

  protected get table(): string {
    return typeof this.#tableName === 'string' ? this.#tableName : this.#tableName();
  }
}
