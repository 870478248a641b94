/**
 * The middy middlewares every API request goes through, and the adapter between API
 * Gateway's HTTP API events (payload 2.0) and the router's ApiRequest/ApiResponse.
 *
 * Order (middy runs `before` top-down, `after`/`onError` bottom-up):
 *   accessLog        → request id, one structured log line per request
 *   versionHeaders   → Ironic's min/max/version headers on every /v1 response
 *   errorResponses   → thrown errors become Ironic error bodies
 *   versionNegotiation → X-OpenStack-Ironic-API-Version → context.apiVersion, or 406
 *   auditTrail (optional, after accessLog) → one audit record per successful change
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from '@aws-lambda-powertools/logger';
import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { type AuditRecord, buildAuditRecord, isAudited, newAuditId } from '../domain/audit/audit.ts';
import { DomainError } from '../domain/errors.ts';
import { apiMetrics } from '../observability/api.ts';
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
  /** What routing and authentication found (set by `dispatch`), for the audit trail. */
  routed?: RoutedRequest;
}

export interface RoutedRequest {
  readonly method: string;
  readonly path: string;
  readonly pattern: string;
  readonly params: Readonly<Record<string, string>>;
  readonly principal?: unknown;
  readonly body: string | undefined;
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
  const { handler, params, pattern } = router.match(method, path);
  const body = decodeBody(event);
  context.routed = { method, path, pattern, params, body, ...(principal !== undefined ? { principal } : {}) };
  const request: ApiRequest = {
    method,
    path,
    params,
    query: parseQuery(event.rawQueryString),
    headers,
    body,
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

/** Stores one audit record (the Audit table's repository, in the api Lambda). */
export type AuditRecorder = (record: AuditRecord) => Promise<void>;

/** The CloudWatch metric (embedded metric format) of an audit record that was not written. */
function auditFailureMetric(): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: Date.now(),
      CloudWatchMetrics: [
        {
          Namespace: 'Metalplane',
          Dimensions: [['Service']],
          Metrics: [{ Name: 'AuditWriteFailures', Unit: 'Count' }],
        },
      ],
    },
    Service: 'metalplane-api',
    AuditWriteFailures: 1,
  };
}

/**
 * The audit trail: every successful change (`isAudited`: POST, PUT, PATCH, DELETE under
 * 400, but the agents' own channel) is recorded once the router has answered, with who
 * (the principal), from where (API Gateway's `sourceIp`), under which request id (the one
 * answered in X-OpenStack-Request-Id), the route and resource, and the change's shape
 * (`domain/audit/audit.ts`). Failed requests (thrown errors) never reach `after`.
 *
 * Fails open: the change has already happened when the record is written, so a failed
 * write does not turn the answer into an error (the client would retry a change that was
 * made). It is logged as an error, with the whole record (it holds no secret), and
 * counted in the `Metalplane/AuditWriteFailures` metric, for an alarm.
 */
export function auditTrail(
  logger: Logger,
  record: AuditRecorder,
  clock: () => Date = () => new Date(),
): ApiMiddleware {
  return {
    before: (request) => {
      delete request.context.routed;
    },
    after: async (request) => {
      const routed = request.context.routed;
      const response = request.response;
      if (!routed || !response) return;
      const status = response.statusCode ?? 200;
      if (!isAudited(routed.method, routed.path, status)) return;
      let entry: AuditRecord | undefined;
      try {
        const now = clock();
        const http = request.event.requestContext?.http;
        entry = buildAuditRecord({
          id: newAuditId(now, randomBytes(10)),
          createdAt: now.toISOString(),
          principal: routed.principal,
          sourceIp: http?.sourceIp,
          userAgent: http?.userAgent,
          requestId: request.context.requestId ?? request.event.requestContext?.requestId ?? '',
          gatewayRequestId: request.event.requestContext?.requestId,
          method: routed.method,
          route: routed.pattern,
          path: routed.path,
          params: routed.params,
          status,
          requestBody: routed.body,
          responseBody:
            typeof response.body === 'string' && !response.isBase64Encoded ? response.body : undefined,
        });
        await record(entry);
      } catch (error) {
        logger.error('audit record not written', {
          requestId: request.context.requestId,
          method: routed.method,
          path: routed.path,
          status,
          auditRecord: entry,
          error: error as Error,
          ...auditFailureMetric(),
        });
      }
    },
  };
}

/**
 * The API handler: the router behind Metalplane's middleware stack. With `audit`, every
 * successful change is recorded (`auditTrail`); the api Lambda always passes it.
 */
export function createApiHandler(
  router: Router,
  logger: Logger,
  authenticate?: Authenticator,
  audit?: AuditRecorder,
) {
  // ApiErrors per route first: its after/onError run last, on the final answer.
  const handler = middy<ApiEvent, ApiResult, Error, ApiContext>()
    .use(apiMetrics(router))
    .use(accessLog(logger));
  if (audit) handler.use(auditTrail(logger, audit));
  return handler
    .use(versionHeaders())
    .use(errorResponses(logger))
    .use(versionNegotiation())
    .handler((event, context) => dispatch(router, event, context, authenticate));
}
