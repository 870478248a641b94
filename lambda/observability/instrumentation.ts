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
 *
 * The Tracer (Powertools and the X-Ray SDK under it) is loaded (`loadTracing`, by the entry
 * points at import) only where Powertools could turn tracing on: in Lambda
 * (`AWS_EXECUTION_ENV`) without `POWERTOOLS_TRACE_ENABLED=false`. Elsewhere (the stack's
 * default, the local stack, the tests) its stand-in `TRACING_OFF` answers as a disabled
 * Tracer does, and a cold start does not load it (issue 18).
 */
import type { Tracer } from '@aws-lambda-powertools/tracer';
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
  /** The Powertools Tracer's modules (`loadTracing`), where tracing may be on. */
  readonly powertools?: PowertoolsTracing;
  /** Default: a Powertools Tracer of `service` with `powertools`, else `TRACING_OFF`. */
  readonly tracer?: TracerLike;
}

type AnyMiddleware = MiddlewareObj<unknown, unknown, Error, Context>;
type TracerMiddlewareModule = typeof import('@aws-lambda-powertools/tracer/middleware');

/** What the entry points use of a Tracer. */
export type TracerLike = Pick<Tracer, 'isTracingEnabled' | 'putAnnotation' | 'captureAWSv3Client'>;

/** A Tracer that is off, as Powertools' is outside Lambda: no segment, no annotation. */
export const TRACING_OFF: TracerLike = {
  isTracingEnabled: () => false,
  putAnnotation: () => undefined,
  captureAWSv3Client: <T>(client: T): T => client,
};

/**
 * Whether Powertools could turn tracing on in this environment: in Lambda
 * (`AWS_EXECUTION_ENV` set) unless `POWERTOOLS_TRACE_ENABLED` is `false` (Powertools'
 * own tests, trimmed and case-insensitive). When this is true the real Tracer decides.
 */
export function tracingMayBeOn(env: Readonly<Record<string, string | undefined>>): boolean {
  if ((env.AWS_EXECUTION_ENV ?? '').trim() === '') return false;
  return (env.POWERTOOLS_TRACE_ENABLED ?? '').trim().toLowerCase() !== 'false';
}

/** The Powertools Tracer and its middy middleware, as `loadTracing` imports them. */
export type PowertoolsTracing = readonly [
  typeof import('@aws-lambda-powertools/tracer'),
  typeof import('@aws-lambda-powertools/tracer/middleware'),
];

/** The Tracer's modules where tracing may be on (`tracingMayBeOn`), else nothing loaded. */
export async function loadTracing(
  env: Readonly<Record<string, string | undefined>>,
): Promise<PowertoolsTracing | undefined> {
  if (!tracingMayBeOn(env)) return undefined;
  return Promise.all([
    import('@aws-lambda-powertools/tracer'),
    import('@aws-lambda-powertools/tracer/middleware'),
  ]);
}

/** The X-Ray subsegment per invocation (Powertools' `captureLambdaHandler`); nothing when tracing is off. */
function captureHandler(
  tracer: TracerLike,
  powertools: PowertoolsTracing | undefined,
): AnyMiddleware | undefined {
  if (!tracer.isTracingEnabled()) return undefined;
  // Responses are not recorded in the trace: an API answer may hold what a trace must not.
  const build = (module: TracerMiddlewareModule) =>
    module.captureLambdaHandler(tracer as Tracer, { captureResponse: false }) as AnyMiddleware;
  if (powertools) return build(powertools[1]);
  // An enabled Tracer given without the modules: the middleware is loaded at the first invocation.
  let loading: Promise<AnyMiddleware> | undefined;
  const loaded = () => {
    loading ??= import('@aws-lambda-powertools/tracer/middleware').then(build);
    return loading;
  };
  return {
    before: async (request) => (await loaded()).before?.(request),
    after: async (request) => (await loaded()).after?.(request),
    onError: async (request) => (await loaded()).onError?.(request),
  };
}

/** The annotations a command leaves on the current trace (nothing when tracing is off). */
export function commandAnnotator(tracer: TracerLike): CommandAnnotator {
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
  readonly tracer: TracerLike;
  /** For the entry point's middy stack, in this order. */
  readonly middlewares: readonly AnyMiddleware[];
  /** Captures an AWS SDK v3 client (no-op when tracing is off). */
  capture<T>(client: T): T;
}

/** Configures the container's recorder and gives the entry point its middlewares. */
export function instrument(options: InstrumentationOptions): Instrumentation {
  const tracer =
    options.tracer ??
    (options.powertools ? new options.powertools[0].Tracer({ serviceName: options.service }) : TRACING_OFF);
  const recorder = options.recorder ?? sharedMetrics;
  recorder.configure({
    service: options.service,
    enabled: options.metricsEnabled,
    annotate: commandAnnotator(tracer),
    ...(options.log ? { log: options.log } : {}),
  });
  return {
    tracer,
    middlewares: [captureHandler(tracer, options.powertools), metricsFlush(recorder)].filter(
      (middleware) => middleware !== undefined,
    ),
    capture: <T>(client: T): T =>
      tracer.isTracingEnabled() ? (tracer.captureAWSv3Client(client as never) as T) : client,
  };
}
