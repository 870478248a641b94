/**
 * The AWS SDK clients' packages, loaded at their first use, not at import (issue 18).
 *
 * Loading the SDK (`@aws-sdk/*` and its `@smithy/*` core, from the Lambda runtime) is
 * most of what a cold start of a Lambda importing the adapters statically would pay:
 * ≈ 80–250 ms on a busy 2-core machine, the DynamoDB client and the shared core first,
 * for packages a request may never touch (the API's `GET /v1` needs none, most requests
 * only DynamoDB). Each loader imports its package once per container, and the
 * clients built from it are still one per container (`lazyClient`).
 *
 * Types are imported as types only (erased): no adapter imports an SDK value statically.
 */
import type { SQSClient } from '@aws-sdk/client-sqs';

type Loader<T> = () => Promise<T>;

/** One `import()` per container; a failed import is retried at the next use. */
function loader<T>(load: () => Promise<T>): Loader<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };
}

export const libDynamoDB = loader(() => import('@aws-sdk/lib-dynamodb'));
export const clientDynamoDB = loader(() => import('@aws-sdk/client-dynamodb'));
export const clientSqs = loader(() => import('@aws-sdk/client-sqs'));
export const clientS3 = loader(() => import('@aws-sdk/client-s3'));
export const s3RequestPresigner = loader(() => import('@aws-sdk/s3-request-presigner'));
export const clientKms = loader(() => import('@aws-sdk/client-kms'));
export const clientEventBridge = loader(() => import('@aws-sdk/client-eventbridge'));
export const clientApiGatewayManagement = loader(() => import('@aws-sdk/client-apigatewaymanagementapi'));

/** What the adapters use of an SDK client: `send`, with the client's own typing. */
export type Sender<C extends { send: unknown }> = Pick<C, 'send'>;

/**
 * A client built at its first `send` (its package imported then), once: `send` forwards
 * to it with the client's own signature. `built()` gives the client itself (presigning,
 * X-Ray capture).
 */
export interface LazyClient<C extends { send: unknown }> extends Sender<C> {
  built(): Promise<C>;
}

export function lazyClient<C extends { send: unknown }>(build: () => Promise<C>): LazyClient<C> {
  const built = loader(build);
  const send = (...args: unknown[]) =>
    built().then((client) => (client.send as (...args: unknown[]) => Promise<unknown>).apply(client, args));
  return { send: send as C['send'], built };
}

/** A new SQS client (as `new SQSClient({ maxAttempts: 3 })`), built at its first use. */
export function newSqsClient(): LazyClient<SQSClient> {
  return lazyClient(async () => new (await clientSqs()).SQSClient({ maxAttempts: 3 }));
}
