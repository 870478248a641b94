/**
 * What every Lambda entry point adds to its middy stack for observability
 * (docs/observability.md):
 *   - Powertools Tracer (X-Ray): a subsegment per invocation, the AWS SDK's DynamoDB
 *     client captured, and every outgoing HTTPS call (SQS, KMS, S3, the WebSocket
 *     management API) traced. Powertools turns itself off outside Lambda
 *     (`AWS_EXECUTION_ENV` unset: tests, the local stack), and the stack turns it off in
 *     Lambda unless tracing is on (`POWERTOOLS_TRACE_ENABLED`, `infra/observability.ts`).
 *   - the commands this invocation queued or finished, as X-Ray annotations (`commandId`,
 *     `node`, `site`): the trace of the API request that queued a command and the trace of
 *     the agent message that brought its result are found by the same annotation.
 *   - the metrics of `metrics.ts`, written after every invocation, error or not.
 */
import { Tracer } from '@aws-lambda-powertools/tracer';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { type CommandAnnotator, type MetricsRecorder, metrics as sharedMetrics } from './metrics.ts';

export interface InstrumentationOptions {
  /** The Lambda's service name (`metalplane-api` ...): the tracer's and the metrics'. */
  readonly service: string;
  /** Metrics on (the entry points: in Lambda only). */
  readonly metricsEnabled: boolean;
  /** Where Powertools' own warnings go. */
  readonly log?: { warn(message: string): void };
  /** Default: the container's recorder (`metrics`). */
  readonly recorder?: MetricsRecorder;
  /** Default: a Powertools Tracer of `service`. */
  readonly tracer?: Tracer;
}

type AnyMiddleware = MiddlewareObj<unknown, unknown, Error, Context>;

/** The annotations a command leaves on the current trace (nothing when tracing is off). */
export function commandAnnotator(tracer: Tracer): CommandAnnotator {
  return (command) => {
    if (!tracer.isTracingEnabled()) return;
    tracer.putAnnotation('commandId', command.id);
    tracer.putAnnotation('node', command.node);
    tracer.putAnnotation('site', command.site);
  };
}

/** Writes the recorder's metrics after each invocation, error or not. */
export function metricsFlush(recorder: MetricsRecorder): AnyMiddleware {
  return {
    after: () => recorder.flush(),
    onError: () => recorder.flush(),
  };
}

export interface Instrumentation {
  readonly tracer: Tracer;
  /** For the entry point's middy stack, in this order. */
  readonly middlewares: readonly AnyMiddleware[];
  /** Captures an AWS SDK v3 client (no-op when tracing is off). */
  capture<T>(client: T): T;
}

/** Configures the container's recorder and gives the entry point its middlewares. */
export function instrument(options: InstrumentationOptions): Instrumentation {
  const tracer = options.tracer ?? new Tracer({ serviceName: options.service });
  const recorder = options.recorder ?? sharedMetrics;
  recorder.configure({
    service: options.service,
    enabled: options.metricsEnabled,
    annotate: commandAnnotator(tracer),
    ...(options.log ? { log: options.log } : {}),
  });
  return {
    tracer,
    // Responses are not recorded in the trace: an API answer may hold what a trace must not.
    middlewares: [
      captureLambdaHandler(tracer, { captureResponse: false }) as AnyMiddleware,
      metricsFlush(recorder),
    ],
    capture: <T>(client: T): T =>
      tracer.isTracingEnabled() ? (tracer.captureAWSv3Client(client as never) as T) : client,
  };
}
