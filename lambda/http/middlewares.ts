/**
 * The middy middlewares every API request goes through, and the adapter between API
 * Gateway's HTTP API events (payload 2.0) and the router's ApiRequest/ApiResponse.
 *
 * Order (middy runs `before` top-down, `after`/`onError` bottom-up):
 *   accessLog        → request id, one structured log line per request
 *   versionHeaders   → Ironic's min/max/version headers on every /v1 response
 *   errorResponses   → thrown errors become Ironic error bodies
 *   versionNegotiation → X-OpenStack-Ironic-API-Version → context.apiVersion, or 406
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { DomainError } from '../domain/errors.ts';
import { ApiError, errorBody, fromDomainError, InternalError, PayloadTooLarge } from './errors.ts';
import { bodyShapeProblem } from './json-shape.ts';
import {
  type ApiVersion,
  formatVersion,
  negotiateVersion,
  rangeHeaders,
  VERSION_HEADER,
} from './microversion.ts';
import { type ApiRequest, type ApiResponse, baseUrlOf } from './request.ts';
import { normalizePath, type Router } from './router.ts';

export type ApiEvent = APIGatewayProxyEventV2;
export type ApiResult = APIGatewayProxyStructuredResultV2;

export interface ApiContext extends Context {
  requestId?: string;
  apiVersion?: ApiVersion;
  startedAt?: number;
}

type ApiMiddleware = MiddlewareObj<ApiEvent, ApiResult, Error, ApiContext>;

export const REQUEST_ID_HEADER = 'X-OpenStack-Request-Id';
/** API Gateway refuses payloads over 10 MB; we refuse far earlier (no API body is large). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Only `/v1...` is versioned; `GET /` answers without version headers, as Ironic does. */
function isVersioned(path: string): boolean {
  return path === '/v1' || path.startsWith('/v1/');
}

function headersOf(event: ApiEvent): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  return headers;
}

export function accessLog(logger: Logger): ApiMiddleware {
  const log = (request: { event: ApiEvent; context: ApiContext; response?: ApiResult | null }) => {
    const started = request.context.startedAt ?? Date.now();
    logger.info('request', {
      requestId: request.context.requestId,
      method: request.event.requestContext?.http?.method,
      path: request.event.rawPath,
      status: request.response?.statusCode,
      durationMs: Date.now() - started,
    });
  };
  const tagResponse = (request: { context: ApiContext; response?: ApiResult | null }) => {
    if (request.response) {
      request.response = withHeaders(request.response, {
        [REQUEST_ID_HEADER]: request.context.requestId ?? '',
      });
    }
  };
  return {
    before: (request) => {
      request.context.startedAt = Date.now();
      request.context.requestId = `req-${randomUUID()}`;
    },
    after: (request) => {
      tagResponse(request);
      log(request);
    },
    onError: (request) => {
      tagResponse(request);
      log(request);
    },
  };
}

export function versionHeaders(): ApiMiddleware {
  const add = (request: { event: ApiEvent; context: ApiContext; response?: ApiResult | null }) => {
    if (!request.response || !isVersioned(normalizePath(request.event.rawPath))) return;
    const version = request.context.apiVersion;
    // A refused version (406) still advertises the range; a malformed header does not,
    // exactly as Ironic answers (see the reference exchanges 005-007).
    const headers = version ? { ...rangeHeaders(), [VERSION_HEADER]: formatVersion(version) } : {};
    request.response = withHeaders(request.response, headers);
  };
  return { after: add, onError: add };
}

export function errorResponses(logger: Logger): ApiMiddleware {
  return {
    onError: (request) => {
      const error = request.error;
      let apiError: ApiError;
      if (error instanceof ApiError) {
        apiError = error;
      } else if (error instanceof DomainError) {
        apiError = fromDomainError(error);
      } else {
        logger.error('unhandled error', { requestId: request.context.requestId, error: error as Error });
        apiError = new InternalError();
      }
      request.response = {
        statusCode: apiError.status,
        headers: { 'Content-Type': 'application/json', ...apiError.headers },
        body: errorBody(apiError),
      };
    },
  };
}

export function versionNegotiation(): ApiMiddleware {
  return {
    before: (request) => {
      if (!isVersioned(normalizePath(request.event.rawPath))) return;
      const header = headersOf(request.event)[VERSION_HEADER.toLowerCase()];
      request.context.apiVersion = negotiateVersion(header);
    },
  };
}

/** Who is asking, from the request's headers; throws Unauthorized when nobody valid is. */
export type Authenticator = (headers: Readonly<Record<string, string>>) => Promise<unknown>;

/**
 * The routes anyone may call: Ironic's version documents, and an agent's enrollment
 * (its one-time enrollment token, in the body, is the proof; `routes/agents.ts`).
 */
export function isPublicRoute(method: string, path: string): boolean {
  if (method === 'POST' && path === '/v1/agents/enroll') return true;
  return method === 'GET' && (path === '/' || path === '/v1');
}

/** Builds an ApiRequest from the event, dispatches it, and serializes the response. */
export async function dispatch(
  router: Router,
  event: ApiEvent,
  context: ApiContext,
  authenticate?: Authenticator,
): Promise<ApiResult> {
  const method = event.requestContext.http.method.toUpperCase();
  const path = normalizePath(event.rawPath);
  const headers = headersOf(event);
  // Authentication comes before routing, so that an anonymous caller learns nothing,
  // not even which paths exist.
  const principal = authenticate && !isPublicRoute(method, path) ? await authenticate(headers) : undefined;
  const { handler, params } = router.match(method, path);
  const request: ApiRequest = {
    method,
    path,
    params,
    query: parseQuery(event.rawQueryString),
    headers,
    body: decodeBody(event),
    version: context.apiVersion ?? { major: 1, minor: 1 },
    baseUrl: baseUrlOf(headers, event.requestContext.domainName),
    requestId: context.requestId ?? event.requestContext.requestId,
    ...(principal !== undefined ? { principal } : {}),
  };
  return serialize(await handler(request));
}

/** Query parameters; a repeated name keeps its last value, as Ironic's pecan does. */
function parseQuery(raw: string | undefined): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(raw ?? '')) query[name] = value;
  return query;
}

function decodeBody(event: ApiEvent): string | undefined {
  if (event.body === undefined || event.body === null) return undefined;
  const body = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  if (Buffer.byteLength(body) > MAX_BODY_BYTES) {
    throw new PayloadTooLarge(MAX_BODY_BYTES);
  }
  const problem = bodyShapeProblem(body);
  if (problem) throw new ApiError(400, problem);
  return body;
}

function serialize(response: ApiResponse): ApiResult {
  const headers: Record<string, string> = { ...response.headers };
  if (response.body === undefined) return { statusCode: response.status, headers };
  return {
    statusCode: response.status,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(response.body),
  };
}

function withHeaders(response: ApiResult, headers: Record<string, string>): ApiResult {
  return { ...response, headers: { ...response.headers, ...headers } };
}

/** The API handler: the router behind Metalplane's middleware stack. */
export function createApiHandler(router: Router, logger: Logger, authenticate?: Authenticator) {
  return middy<ApiEvent, ApiResult, Error, ApiContext>()
    .use(accessLog(logger))
    .use(versionHeaders())
    .use(errorResponses(logger))
    .use(versionNegotiation())
    .handler((event, context) => dispatch(router, event, context, authenticate));
}
