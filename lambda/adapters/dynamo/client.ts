/**
 * The DynamoDB document client the repositories share: one per container, keep-alive
 * connections, and undefined values dropped (absent attributes, not NULLs).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { type ConfigSource, environmentConfig, tableName } from '../../config.ts';

let shared: DynamoDBDocumentClient | undefined;

export function documentClient(): DynamoDBDocumentClient {
  shared ??= DynamoDBDocumentClient.from(
    new DynamoDBClient({ maxAttempts: 4, requestHandler: { requestTimeout: 5000, connectionTimeout: 2000 } }),
    { marshallOptions: { removeUndefinedValues: true } },
  );
  return shared;
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
  protected readonly db: DynamoDBDocumentClient;
  readonly #tableName: TableName;

  constructor(db: DynamoDBDocumentClient, table: TableName) {
    this.db = db;
    this.#tableName = table;
  }

  protected get table(): string {
    return typeof this.#tableName === 'string' ? this.#tableName : this.#tableName();
  }
}
