/**
 * The one middy stack every Lambda entry point runs behind:
 *   injectLambdaContext → the Powertools logger carries the invocation's context (function,
 *                         request id, cold start), its per-invocation keys reset after
 *   correlationId       → `correlation_id` on every log line: API Gateway's request id
 *                         (HTTP and WebSocket), an SQS batch's first message id, else the
 *                         Lambda request id
 *   errorLogging        → an error escaping the handler is logged once, then rethrown (the
 *                         invocation fails, as Lambda and its event source expect)
 *   tracer, metrics     → Powertools Tracer (X-Ray, when the stack turns it on) and the
 *                         invocation's EMF metrics, written after it, error or not
 *                         (`lambda/observability/`; metrics only in Lambda)
 *   withPendingWork     → the core's deferred work (events: `adapters/pending-work.ts`)
 *                         finished before the invocation returns
 * What each Lambda does with its requests stays in its core (`createApi`, the agents'
 * handler, the tick, the verify handler), built by the entry point from the configuration.
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { decorateDocumentClient } from '../adapters/dynamo/client.ts';
import { withPendingWork } from '../adapters/pending-work.ts';
import { instrument, loadTracing } from '../observability/instrumentation.ts';

type EntrypointMiddleware = MiddlewareObj<unknown, unknown, Error, Context>;

// The Tracer's modules, imported at cold start only where tracing may be on (in Lambda,
// unless the stack turned it off): elsewhere the import costs nothing (issue 18).
const powertools = await loadTracing(process.env);

/** The id one invocation's log lines share, from its event (or its Lambda request id). */
export function correlationIdOf(event: unknown, context: Partial<Context> | undefined): string | undefined {
  const shaped = (event ?? {}) as {
    readonly requestContext?: { readonly requestId?: unknown };
    readonly Records?: ReadonlyArray<{ readonly messageId?: unknown }>;
  };
  const requestId = shaped.requestContext?.requestId;
  if (typeof requestId === 'string' && requestId) return requestId;
  const messageId = shaped.Records?.[0]?.messageId;
  if (typeof messageId === 'string' && messageId) return messageId;
  return context?.awsRequestId || undefined;
}

export function correlationId(logger: Logger): EntrypointMiddleware {
  return {
    before: (request) => {
      const id = correlationIdOf(request.event, request.context);
      if (id) logger.setCorrelationId(id);
    },
  };
}

export function errorLogging(logger: Logger): EntrypointMiddleware {
  return {
    onError: (request) => {
      logger.error('invocation failed', { error: request.error as Error });
    },
  };
}

/**
 * A Lambda handler: `core` behind the shared stack, logging through `logger`, its traces
 * and metrics under `service` (the Lambda's: `metalplane-api` ...).
 */
export function entrypoint<TEvent, TResult>(
  logger: Logger,
  core: (event: TEvent, context: Context) => Promise<TResult>,
  service = 'metalplane',
) {
  const observed = instrument({
    service,
    // Metrics in Lambda only: the local stack and the tests serve these handlers too.
    metricsEnabled: Boolean(process.env.AWS_LAMBDA_FUNCTION_NAME),
    ...(powertools ? { powertools } : {}),
    log: { warn: (message) => logger.warn(message) },
  });
  if (observed.tracer.isTracingEnabled()) decorateDocumentClient((client) => observed.capture(client));
  const handler = middy<TEvent, TResult, Error, Context>()
    .use(injectLambdaContext(logger, { resetKeys: true }) as MiddlewareObj<TEvent, TResult, Error, Context>)
    .use(correlationId(logger) as MiddlewareObj<TEvent, TResult, Error, Context>)
    .use(errorLogging(logger) as MiddlewareObj<TEvent, TResult, Error, Context>);
  for (const middleware of observed.middlewares) {
    handler.use(middleware as MiddlewareObj<TEvent, TResult, Error, Context>);
  }
  // Innermost, so that the logs and metrics of an invocation include its deferred work.
  return handler.handler((event, context) => withPendingWork(() => core(event, context)));
}

/** A value built at the first call, not at import (the local stack imports before it configures). */
export function once<T>(build: () => T): () => T {
  let built: { readonly value: T } | undefined;
  return () => {
    built ??= { value: build() };
    return built.value;
  };
}
