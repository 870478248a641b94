/**
 * The API's 4xx/5xx per route (`ApiErrors` of `metrics.ts`), recorded once the answer is
 * final (errors turned into Ironic error bodies): `createApiHandler` uses it first, so
 * that its `after`/`onError` run last. The route is the template that matched
 * (`GET /v1/nodes/{node}`), never the raw path: a request refused before routing (401)
 * is matched here for its template; one no route matches is `UNMATCHED`.
 */
import type { MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { normalizePath, type Router } from '../http/router.ts';
import { type MetricsRecorder, metrics as sharedMetrics } from './metrics.ts';

/** The route dimension of a request no route matches (404, 405): one value, whatever the path. */
export const UNMATCHED_ROUTE = 'UNMATCHED';

interface RoutedContext extends Context {
  readonly routed?: { readonly method: string; readonly pattern: string };
}

/** `METHOD /template` of the request, from what routing found, else by matching it now. */
export function routeOf(router: Router, event: APIGatewayProxyEventV2, context?: RoutedContext): string {
  const routed = context?.routed;
  if (routed) return `${routed.method} ${routed.pattern}`;
  const method = (event.requestContext?.http?.method ?? '').toUpperCase();
  try {
    return `${method} ${router.match(method, normalizePath(event.rawPath ?? '/')).pattern}`;
  } catch {
    return UNMATCHED_ROUTE;
  }
}

export function apiMetrics(
  router: Router,
  recorder: MetricsRecorder = sharedMetrics,
): MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Error, RoutedContext> {
  const record = (request: {
    event: APIGatewayProxyEventV2;
    context: RoutedContext;
    response?: APIGatewayProxyStructuredResultV2 | null;
  }) => {
    if (!recorder.enabled) return;
    const status = request.response?.statusCode ?? 500;
    if (status >= 400) recorder.apiResponse(routeOf(router, request.event, request.context), status);
  };
  return { after: record, onError: record };
}
