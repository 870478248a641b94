/**
 * A local stand-in for an API Gateway WebSocket API, so that the very Lambda handler AWS
 * runs behind the agents' WebSocket API can be driven on a developer's machine and in
 * tests.
 *
 * One `node:http` server carries both faces of the API:
 *  - `ws://host:port/{stage}`: the WebSocket endpoint clients dial (package `ws`);
 *  - `http://host:port/{stage}/@connections/{connectionId}`: the management API that the
 *    AWS SDK's `ApiGatewayManagementApiClient({ endpoint: managementEndpoint })` calls.
 *
 * What it reproduces of API Gateway (quotas and shapes from the API Gateway developer
 * guide: "Quotas for configuring and running a WebSocket API", "Control access to
 * WebSocket APIs with Lambda REQUEST authorizers", "Binary media types for WebSocket
 * APIs", and the Lambda guide's "Handling Lambda errors with an API Gateway API"):
 *  - `$connect`: the optional Lambda REQUEST authorizer runs first. A missing identity
 *    source gives 401 without calling it; throwing `Error('Unauthorized')` gives 401; any
 *    other error, a timeout or a malformed answer (no policy document, a context value
 *    that is an object) gives 500; a policy that does not allow `execute-api:Invoke` on
 *    the method ARN (explicit Deny or no matching Allow) gives 403. An Allow's
 *    `principalId`, `integrationLatency` and `context` (values turned into strings, as
 *    API Gateway does) appear in `requestContext.authorizer` of every later event of the
 *    connection. Then the `$connect` integration: a non-2xx `statusCode` refuses the
 *    upgrade with that status, a throw refuses it with 502 (what API Gateway answers
 *    for a Lambda function error), a timeout with 504; otherwise the socket is upgraded.
 *    A `Sec-WebSocket-Protocol` header in the `$connect` result selects the subprotocol.
 *  - Messages: the route key is the value the route selection expression picks from the
 *    JSON body if it is one of `routes`, else `$default` (so is every non-JSON message).
 *    Each message is its own concurrent invocation, as on AWS: no ordering between them.
 *    A returned `body` is sent back to the client (a two-way route; on AWS that needs a
 *    route response configured on the route). A throw sends the client API Gateway's
 *    error frame `{"message":"Internal server error","connectionId":..,"requestId":..}`
 *    and a timeout `{"message":"Endpoint request timed out",...}`; the connection stays.
 *  - Limits: a frame over 32 KiB or a message over 128 KiB closes the connection with
 *    1009, as the quotas page says; a binary frame closes it with 1003, as the binary
 *    media types page says; 10 minutes without a message from the client (idle) and
 *    2 hours in all close it with 1001.
 *  - `$disconnect` after every close, whoever closed, with `disconnectStatusCode` and
 *    `disconnectReason`; its result is ignored.
 *  - `@connections`: POST (data up to 128 KiB, else 413 PayloadTooLargeException) sends
 *    a text frame, GET answers `{connectedAt, identity: {sourceIp, userAgent},
 *    lastActiveAt}` (the wire names, which the SDK maps to ConnectedAt...), DELETE
 *    answers 204 and closes the socket. An unknown or closed connection is 410
 *    GoneException. Requests without an `Authorization` header are 403
 *    ForbiddenException; SigV4 signatures are not verified.
 *
 * Every handler call is bounded by the integration timeout (29 s, as on AWS); a handler
 * error is logged as one JSON line on stderr and never brings the server down.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type {
  APIGatewayEventWebsocketRequestContextV2,
  APIGatewayProxyWebsocketEventV2WithRequestContext,
  Callback,
  Context,
} from 'aws-lambda';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

/** API Gateway's quotas for WebSocket APIs (none of them can be raised on AWS). */
export const API_GATEWAY_LIMITS = {
  maxMessageBytes: 128 * 1024,
  maxFrameBytes: 32 * 1024,
  idleTimeoutMs: 10 * 60 * 1000,
  maxConnectionMs: 2 * 60 * 60 * 1000,
  integrationTimeoutMs: 29 * 1000,
} as const;

/** `requestContext.authorizer` of the events of a connection admitted by a Lambda authorizer. */
export interface WebSocketAuthorizerRequestContext {
  principalId?: string;
  integrationLatency: number;
  [key: string]: string | number | undefined;
}

export interface WebSocketRequestContext extends APIGatewayEventWebsocketRequestContextV2 {
  identity: { sourceIp: string; userAgent: string | null };
  authorizer?: WebSocketAuthorizerRequestContext;
  /** `$disconnect` only. */
  disconnectStatusCode?: number | null;
  /** `$disconnect` only. */
  disconnectReason?: string | null;
}

/**
 * The event the handler receives: `APIGatewayProxyWebsocketEventV2` plus what API Gateway
 * really sends besides (headers on `$connect`/`$disconnect`, identity, authorizer). As on
 * AWS, `requestContext.messageId` is `null` on `$connect` and `$disconnect` although the
 * `@types/aws-lambda` type says `string`.
 */
export interface WebSocketEvent
  extends APIGatewayProxyWebsocketEventV2WithRequestContext<WebSocketRequestContext> {
  headers?: Record<string, string>;
  multiValueHeaders?: Record<string, string[]>;
}

/** The input of a Lambda REQUEST authorizer on a WebSocket API's `$connect` route. */
export interface WebSocketAuthorizerEvent {
  type: 'REQUEST';
  /** `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect` */
  methodArn: string;
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
  queryStringParameters: Record<string, string>;
  multiValueQueryStringParameters: Record<string, string[]>;
  stageVariables: Record<string, string>;
  requestContext: Omit<
    WebSocketRequestContext,
    'messageId' | 'authorizer' | 'disconnectStatusCode' | 'disconnectReason'
  >;
}

/** What an authorizer returns (IAM policy form, as REQUEST authorizers of WebSocket APIs do). */
export interface WebSocketAuthorizerResult {
  principalId?: string;
  policyDocument: {
    Version?: string;
    Statement: ReadonlyArray<Record<string, unknown>> | Record<string, unknown>;
  };
  context?: Record<string, string | number | boolean | null | undefined> | null;
  usageIdentifierKey?: string | null;
}

/**
 * A Lambda handler: async `(event, context)`, callback style, or a middy handler. The
 * result (`{ statusCode?, body?, headers? }`) is interpreted at run time.
 */
export type WebSocketHandler = (
  event: WebSocketEvent,
  context: Context,
  callback: Callback<unknown>,
) => unknown;

export type WebSocketAuthorizer = (
  event: WebSocketAuthorizerEvent,
  context: Context,
  callback: Callback<unknown>,
) => unknown;

export type GatewayLogEntry = Record<string, unknown> & {
  level: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  msg: string;
};

export interface WebSocketGatewayOptions {
  /** The integration of every route ($connect, $disconnect, $default and `routes`). */
  handler: WebSocketHandler;
  /** Lambda REQUEST authorizer of the `$connect` route. */
  authorizer?: WebSocketAuthorizer;
  /**
   * The authorizer's identity sources, e.g. `['route.request.header.Authorization',
   * 'route.request.querystring.token']`: if one is missing or empty the connection is
   * refused with 401 without calling the authorizer (as on AWS).
   */
  identitySource?: string[];
  /** Route keys besides `$connect`, `$disconnect`, `$default` (e.g. `['report', 'ping']`). */
  routes?: string[];
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Default `local`. */
  stage?: string;
  /** Default `$request.body.action`; `${request.body.a.b}` and `$default` are understood too. */
  routeSelectionExpression?: string;
  stageVariables?: Record<string, string>;
  /** Default `local`. */
  apiId?: string;
  /** For ARNs. Default `us-east-1`. */
  region?: string;
  /** For ARNs. Default `000000000000`. */
  accountId?: string;
  /** Default 128 KiB, API Gateway's quota: a bigger message closes the connection (1009). */
  maxMessageBytes?: number;
  /** Default 32 KiB, API Gateway's quota: a bigger frame closes the connection (1009). 0 disables. */
  maxFrameBytes?: number;
  /** Default 10 minutes: no message from the client for that long closes the connection (1001). */
  idleTimeoutMs?: number;
  /** Default 2 hours: a connection is closed (1001) after that long. */
  maxConnectionMs?: number;
  /** Default 29 s: a handler or authorizer call taking longer counts as failed. */
  integrationTimeoutMs?: number;
  /** Where log lines go; default: one JSON line per entry on stderr. */
  log?: (entry: GatewayLogEntry) => void;
}

export interface WebSocketGateway {
  /** `ws://host:port/{stage}`: what clients dial. */
  readonly url: string;
  /** `http://host:port/{stage}`: for `new ApiGatewayManagementApiClient({ endpoint })`. */
  readonly managementEndpoint: string;
  readonly port: number;
  /** Ids of the connections open now. */
  connectionIds(): string[];
  /** Closes every connection (each fires `$disconnect`), then the server. Idempotent. */
  close(): Promise<void>;
}

interface Connection {
  readonly id: string;
  readonly ws: WebSocket;
  readonly connectedAt: number;
  readonly sourceIp: string;
  readonly userAgent: string | null;
  readonly authorizer: WebSocketAuthorizerRequestContext | undefined;
  lastActiveAt: number;
  idleTimer: NodeJS.Timeout | undefined;
  lifetimeTimer: NodeJS.Timeout | undefined;
  killTimer: NodeJS.Timeout | undefined;
}

type Outcome = { kind: 'ok'; value: unknown } | { kind: 'error'; error: unknown } | { kind: 'timeout' };

class GatewayRejection extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** How long a closing handshake may take before the socket is cut. */
const CLOSE_HANDSHAKE_MS = 1000;
/** How long `close()` waits for in-flight handler calls ($disconnect included). */
const CLOSE_DRAIN_MS = 5000;

/** An id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`: 11 random bytes in base64). */
function gatewayId(): string {
  return randomBytes(11).toString('base64');
}

/** API Gateway's `requestTime`: `13/Dec/2020:10:17:47 +0000`. */
function requestTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function defaultLog(entry: GatewayLogEntry): void {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), component: 'ws-gateway', ...entry })}\n`,
  );
}

function errorFields(error: unknown): Record<string, unknown> {
  if (error instanceof Error) return { error: error.message, errorName: error.name, stack: error.stack };
  return { error: String(error) };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** `route.request.body.action`-style path of the route selection expression, or null for `$default`. */
function parseRouteSelectionExpression(expression: string): string[] | null {
  const trimmed = expression.trim();
  if (trimmed === '$default') return null;
  const match = /^\$(?:\{request\.body\.([^}]+)\}|request\.body\.(.+))$/.exec(trimmed);
  const path = match?.[1] ?? match?.[2];
  if (!path || path.split('.').some((part) => part.length === 0)) {
    throw new Error(`unsupported route selection expression: ${expression}`);
  }
  return path.split('.');
}

function selectRoute(body: string, path: string[] | null, routes: ReadonlySet<string>): string {
  if (path === null) return '$default';
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return '$default';
  }
  for (const key of path) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return '$default';
    value = (value as Record<string, unknown>)[key];
  }
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') return '$default';
  const key = String(value);
  return routes.has(key) ? key : '$default';
}

/** IAM-style wildcard match (`*`, `?`). */
function globMatch(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'i' : '').test(value);
}

function asList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

/**
 * Evaluates an authorizer's policy for `execute-api:Invoke` on `methodArn`: an explicit
 * Deny wins, then an Allow; nothing matching is an implicit deny. Returns undefined when
 * the document is malformed.
 */
function evaluatePolicy(policy: unknown, methodArn: string): 'allow' | 'deny' | undefined {
  if (typeof policy !== 'object' || policy === null) return undefined;
  const raw = (policy as { Statement?: unknown }).Statement;
  const statements = Array.isArray(raw) ? raw : typeof raw === 'object' && raw !== null ? [raw] : undefined;
  if (!statements) return undefined;
  let allowed = false;
  for (const statement of statements) {
    if (typeof statement !== 'object' || statement === null) return undefined;
    const s = statement as Record<string, unknown>;
    if (s.Effect !== 'Allow' && s.Effect !== 'Deny') return undefined;
    const action = asList(s.Action);
    const notAction = asList(s.NotAction);
    const resource = asList(s.Resource);
    const notResource = asList(s.NotResource);
    if ((!action && !notAction) || (!resource && !notResource)) return undefined;
    const actionMatches = action
      ? action.some((a) => globMatch(a, 'execute-api:Invoke', true))
      : !notAction!.some((a) => globMatch(a, 'execute-api:Invoke', true));
    const resourceMatches = resource
      ? resource.some((r) => globMatch(r, methodArn, false))
      : !notResource!.some((r) => globMatch(r, methodArn, false));
    if (!actionMatches || !resourceMatches) continue;
    if (s.Effect === 'Deny') return 'deny';
    allowed = true;
  }
  return allowed ? 'allow' : 'deny';
}

function lowerCaseKeys(record: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(record).map(([k, v]) => [k.toLowerCase(), v]));
}

/** Headers as API Gateway passes them: the client's spelling, last value wins, plus multi-value. */
function readHeaders(req: IncomingMessage): {
  headers: Record<string, string>;
  multi: Record<string, string[]>;
} {
  const headers: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  const spelling = new Map<string, string>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const rawName = req.rawHeaders[i]!;
    const value = req.rawHeaders[i + 1]!;
    const name = spelling.get(rawName.toLowerCase()) ?? rawName;
    spelling.set(rawName.toLowerCase(), name);
    headers[name] = value;
    const values = multi[name] ?? [];
    values.push(value);
    multi[name] = values;
  }
  return { headers, multi };
}

function readQuery(search: URLSearchParams): {
  query: Record<string, string>;
  multi: Record<string, string[]>;
} {
  const query: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  for (const [name, value] of search) {
    query[name] = value;
    const values = multi[name] ?? [];
    values.push(value);
    multi[name] = values;
  }
  return { query, multi };
}

function rejectUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
  setTimeout(() => socket.destroy(), 1000).unref();
}

function sendJson(res: ServerResponse, status: number, body: unknown, errorType?: string): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  const headers: Record<string, string | number> = { 'Content-Length': Buffer.byteLength(text) };
  if (text) headers['Content-Type'] = 'application/json';
  if (errorType) headers['x-amzn-ErrorType'] = errorType;
  res.writeHead(status, headers);
  res.end(text);
}

function rawDataToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

interface ReceiverInternals {
  _opcode: number;
  _payloadLength: number;
  haveLength: (cb: (error?: Error) => void) => unknown;
  createError: (
    ctor: typeof RangeError,
    message: string,
    prefix: boolean,
    status: number,
    code: string,
  ) => Error;
}

/**
 * API Gateway refuses frames over 32 KiB even inside a message under 128 KiB. `ws` has a
 * single `maxPayload` for both, so the per-frame limit hooks the connection's receiver
 * (ws 8 internals: `_receiver.haveLength` runs once a frame's length is known). If those
 * internals are not there, the frame limit is skipped and a warning logged.
 */
function limitFrameSize(ws: WebSocket, maxFrameBytes: number, log: (entry: GatewayLogEntry) => void): void {
  const receiver = (ws as unknown as { _receiver?: Partial<ReceiverInternals> })._receiver;
  if (!receiver || typeof receiver.haveLength !== 'function' || typeof receiver.createError !== 'function') {
    log({ level: 'WARN', msg: 'ws internals changed: the per-frame size limit is not enforced' });
    return;
  }
  const original = receiver.haveLength;
  receiver.haveLength = function (this: ReceiverInternals, cb: (error?: Error) => void) {
    // Control frames (opcode >= 8) are capped at 125 bytes by the protocol itself.
    if (this._opcode < 0x08 && this._payloadLength > maxFrameBytes) {
      cb(this.createError(RangeError, 'Frame too big', false, 1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'));
      return;
    }
    return original.call(this, cb);
  };
}

export async function startWebSocketGateway(options: WebSocketGatewayOptions): Promise<WebSocketGateway> {
  const host = options.host ?? '127.0.0.1';
  const stage = options.stage ?? 'local';
  const apiId = options.apiId ?? 'local';
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '000000000000';
  const routes = new Set(options.routes ?? []);
  const selectionPath = parseRouteSelectionExpression(
    options.routeSelectionExpression ?? '$request.body.action',
  );
  const maxMessageBytes = options.maxMessageBytes ?? API_GATEWAY_LIMITS.maxMessageBytes;
  const maxFrameBytes = options.maxFrameBytes ?? API_GATEWAY_LIMITS.maxFrameBytes;
  const idleTimeoutMs = options.idleTimeoutMs ?? API_GATEWAY_LIMITS.idleTimeoutMs;
  const maxConnectionMs = options.maxConnectionMs ?? API_GATEWAY_LIMITS.maxConnectionMs;
  const integrationTimeoutMs = options.integrationTimeoutMs ?? API_GATEWAY_LIMITS.integrationTimeoutMs;
  const stageVariables = options.stageVariables ?? {};
  const log = (entry: GatewayLogEntry) => {
    try {
      (options.log ?? defaultLog)(entry);
    } catch {
      // A broken logger must not break the gateway.
    }
  };

  const connections = new Map<string, Connection>();
  const pendingUpgrades = new Set<Duplex>();
  const inFlight = new Set<Promise<unknown>>();
  const chosenProtocol = new WeakMap<IncomingMessage, string>();
  let closing: Promise<void> | undefined;
  let domainName = '';
  let boundPort = 0;

  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: maxMessageBytes,
    handleProtocols: (_protocols, request) => chosenProtocol.get(request) ?? false,
  });

  const methodArn = () => `arn:aws:execute-api:${region}:${accountId}:${apiId}/${stage}/$connect`;

  function lambdaContext(functionName: string, awsRequestId: string): Context {
    const deadline = Date.now() + integrationTimeoutMs;
    const noop = () => {};
    return {
      callbackWaitsForEmptyEventLoop: true,
      functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: `arn:aws:lambda:${region}:${accountId}:function:${functionName}`,
      memoryLimitInMB: '1024',
      awsRequestId,
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: `local/[$LATEST]${randomBytes(16).toString('hex')}`,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: noop,
      fail: noop,
      succeed: noop,
    };
  }

  /** Calls a Lambda-style function: promise or callback, bounded by the integration timeout. */
  function invoke<E>(
    fn: (event: E, context: Context, callback: Callback<unknown>) => unknown,
    event: E,
    functionName: string,
  ): Promise<Outcome> {
    const outcome = new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(o);
      };
      const timer = setTimeout(() => settle({ kind: 'timeout' }), integrationTimeoutMs);
      const callback: Callback<unknown> = (error, result) => {
        if (error !== undefined && error !== null) settle({ kind: 'error', error });
        else settle({ kind: 'ok', value: result });
      };
      try {
        const returned = fn(event, lambdaContext(functionName, randomUUID()), callback);
        if (isThenable(returned)) {
          returned.then(
            (value) => settle({ kind: 'ok', value }),
            (error: unknown) => settle({ kind: 'error', error }),
          );
        } else if (returned !== undefined || fn.length < 3) {
          settle({ kind: 'ok', value: returned });
        }
        // Otherwise: a callback-style handler; wait for its callback (or the timeout).
      } catch (error) {
        settle({ kind: 'error', error });
      }
    });
    inFlight.add(outcome);
    void outcome.finally(() => inFlight.delete(outcome));
    return outcome;
  }

  function baseRequestContext(
    routeKey: string,
    eventType: WebSocketRequestContext['eventType'],
    connectionId: string,
    connectedAt: number,
    identity: WebSocketRequestContext['identity'],
  ): WebSocketRequestContext {
    const now = Date.now();
    const requestId = gatewayId();
    return {
      routeKey,
      // API Gateway sends null here except on MESSAGE events; the @types say string.
      messageId: null as unknown as string,
      eventType,
      extendedRequestId: requestId,
      requestTime: requestTime(now),
      messageDirection: 'IN',
      stage,
      connectedAt,
      requestTimeEpoch: now,
      identity,
      requestId,
      domainName,
      connectionId,
      apiId,
    };
  }

  async function authorize(
    req: IncomingMessage,
    event: WebSocketAuthorizerEvent,
  ): Promise<WebSocketAuthorizerRequestContext | undefined> {
    const authorizer = options.authorizer;
    if (!authorizer) return undefined;
    if (options.identitySource) {
      const headers = lowerCaseKeys(event.headers);
      for (const source of options.identitySource) {
        const header = /^route\.request\.header\.(.+)$/i.exec(source)?.[1];
        const query = /^route\.request\.querystring\.(.+)$/i.exec(source)?.[1];
        const value = header
          ? headers.get(header.toLowerCase())
          : query
            ? event.queryStringParameters[query]
            : undefined;
        if (value === undefined || value === '') throw new GatewayRejection(401, 'Unauthorized');
      }
    }
    const started = Date.now();
    const outcome = await invoke(authorizer, event, 'local-websocket-authorizer');
    const latency = Date.now() - started;
    const base = {
      connectionId: event.requestContext.connectionId,
      route: '$connect',
      remote: req.socket.remoteAddress,
    };
    if (outcome.kind === 'timeout') {
      log({ level: 'ERROR', msg: 'authorizer timed out', ...base });
      throw new GatewayRejection(500, 'Internal server error');
    }
    if (outcome.kind === 'error') {
      const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      if (message === 'Unauthorized') throw new GatewayRejection(401, 'Unauthorized');
      log({ level: 'ERROR', msg: 'authorizer failed', ...base, ...errorFields(outcome.error) });
      throw new GatewayRejection(500, 'Internal server error');
    }
    const result = outcome.value as Partial<WebSocketAuthorizerResult> | null | undefined;
    const verdict =
      typeof result === 'object' && result
        ? evaluatePolicy(result.policyDocument, event.methodArn)
        : undefined;
    if (verdict === undefined) {
      log({ level: 'ERROR', msg: 'authorizer returned no valid policy document', ...base });
      throw new GatewayRejection(500, 'Internal server error');
    }
    if (verdict === 'deny') throw new GatewayRejection(403, 'Forbidden');
    const context: WebSocketAuthorizerRequestContext = { integrationLatency: latency };
    for (const [key, value] of Object.entries(result?.context ?? {})) {
      if (value === null || value === undefined) continue;
      if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
        log({
          level: 'ERROR',
          msg: 'authorizer context values must be strings, numbers or booleans',
          key,
          ...base,
        });
        throw new GatewayRejection(500, 'Internal server error');
      }
      context[key] = String(value);
    }
    if (typeof result?.principalId === 'string') context.principalId = result.principalId;
    return context;
  }

  function statusOf(value: unknown): number | undefined {
    if (typeof value !== 'object' || value === null) return undefined;
    const status = (value as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') return status;
    if (typeof status === 'string' && /^\d{3}$/.test(status)) return Number(status);
    return undefined;
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', (error) =>
      log({ level: 'DEBUG', msg: 'upgrade socket error', ...errorFields(error) }),
    );
    if (closing) return rejectUpgrade(socket, 503, 'Service Unavailable');
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== `/${stage}` && url.pathname !== `/${stage}/`)
      return rejectUpgrade(socket, 403, 'Forbidden');
    // Refuse what `ws` would refuse anyway, before the integration sees a $connect.
    const key = req.headers['sec-websocket-key'];
    const version = req.headers['sec-websocket-version'];
    if (
      req.headers.upgrade?.toLowerCase() !== 'websocket' ||
      typeof key !== 'string' ||
      !/^[+/0-9A-Za-z]{22}==$/.test(key) ||
      (version !== '13' && version !== '8')
    ) {
      return rejectUpgrade(socket, 400, 'Bad Request');
    }

    pendingUpgrades.add(socket);
    const connectionId = gatewayId();
    const connectedAt = Date.now();
    const sourceIp = (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    const { headers, multi: multiValueHeaders } = readHeaders(req);
    const lower = lowerCaseKeys(headers);
    for (const [name, value] of [
      ['X-Forwarded-For', sourceIp],
      ['X-Forwarded-Port', String(boundPort)],
      ['X-Forwarded-Proto', 'http'],
    ] as const) {
      if (!lower.has(name.toLowerCase())) {
        headers[name] = value;
        multiValueHeaders[name] = [value];
      }
    }
    const { query, multi: multiQuery } = readQuery(url.searchParams);
    const identity = { sourceIp, userAgent: lower.get('user-agent') ?? null };

    let authorizerContext: WebSocketAuthorizerRequestContext | undefined;
    let admitted = false;
    try {
      const {
        messageId: _m,
        authorizer: _a,
        ...authorizerRequestContext
      } = baseRequestContext('$connect', 'CONNECT', connectionId, connectedAt, identity);
      authorizerContext = await authorize(req, {
        type: 'REQUEST',
        methodArn: methodArn(),
        headers: { ...headers },
        multiValueHeaders: { ...multiValueHeaders },
        queryStringParameters: { ...query },
        multiValueQueryStringParameters: { ...multiQuery },
        stageVariables: { ...stageVariables },
        requestContext: authorizerRequestContext,
      });

      const event: WebSocketEvent = {
        headers,
        multiValueHeaders,
        requestContext: {
          ...baseRequestContext('$connect', 'CONNECT', connectionId, connectedAt, identity),
          ...(authorizerContext ? { authorizer: authorizerContext } : {}),
        },
        isBase64Encoded: false,
        ...(url.searchParams.size > 0
          ? { queryStringParameters: query, multiValueQueryStringParameters: multiQuery }
          : {}),
        ...(Object.keys(stageVariables).length > 0 ? { stageVariables: { ...stageVariables } } : {}),
      };
      const outcome = await invoke(options.handler, event, 'local-websocket-handler');
      const logBase = { connectionId, route: '$connect' };
      if (outcome.kind === 'timeout') {
        log({ level: 'ERROR', msg: 'handler timed out', ...logBase });
        throw new GatewayRejection(504, 'Endpoint request timed out');
      }
      if (outcome.kind === 'error') {
        log({ level: 'ERROR', msg: 'handler failed', ...logBase, ...errorFields(outcome.error) });
        throw new GatewayRejection(502, 'Internal server error');
      }
      const status = statusOf(outcome.value);
      if (status !== undefined && (status < 200 || status > 299)) {
        throw new GatewayRejection(status, STATUS_CODES[status] ?? 'Error');
      }
      admitted = true;
      const resultHeaders = (outcome.value as { headers?: Record<string, unknown> } | undefined)?.headers;
      if (resultHeaders && typeof resultHeaders === 'object') {
        for (const [name, value] of Object.entries(resultHeaders)) {
          if (name.toLowerCase() === 'sec-websocket-protocol' && typeof value === 'string') {
            chosenProtocol.set(req, value);
          }
        }
      }
    } catch (error) {
      pendingUpgrades.delete(socket);
      if (error instanceof GatewayRejection) return rejectUpgrade(socket, error.status, error.message);
      log({ level: 'ERROR', msg: 'unexpected failure on $connect', connectionId, ...errorFields(error) });
      return rejectUpgrade(socket, 500, 'Internal server error');
    }

    pendingUpgrades.delete(socket);
    if (socket.destroyed || !socket.readable || !socket.writable || closing) {
      // The client left (or the gateway closes) while $connect ran: the connection existed
      // for the integration, so it gets its $disconnect.
      socket.destroy();
      if (admitted) {
        fireDisconnect(connectionId, connectedAt, identity, authorizerContext, 1006, 'Going away');
      }
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (maxFrameBytes > 0) limitFrameSize(ws, maxFrameBytes, log);
      const connection: Connection = {
        id: connectionId,
        ws,
        connectedAt,
        sourceIp,
        userAgent: identity.userAgent,
        authorizer: authorizerContext,
        lastActiveAt: connectedAt,
        idleTimer: undefined,
        lifetimeTimer: undefined,
        killTimer: undefined,
      };
      connections.set(connectionId, connection);
      armIdleTimer(connection);
      connection.lifetimeTimer = setTimeout(
        () => closeConnection(connection, 1001, 'Going away'),
        maxConnectionMs,
      );
      connection.lifetimeTimer.unref();
      ws.on('error', (error) =>
        log({ level: 'WARN', msg: 'connection error', connectionId, ...errorFields(error) }),
      );
      ws.on('ping', () => armIdleTimer(connection));
      ws.on('message', (data, isBinary) => onMessage(connection, data, isBinary));
      ws.on('close', (code, reason) => {
        connections.delete(connectionId);
        clearTimeout(connection.idleTimer);
        clearTimeout(connection.lifetimeTimer);
        clearTimeout(connection.killTimer);
        fireDisconnect(connectionId, connectedAt, identity, authorizerContext, code, reason.toString());
      });
    });
  }

  function armIdleTimer(connection: Connection): void {
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(() => closeConnection(connection, 1001, 'Going away'), idleTimeoutMs);
    connection.idleTimer.unref();
  }

  /** Starts the closing handshake; cuts the socket if the peer does not answer in time. */
  function closeConnection(connection: Connection, code: number, reason?: string): void {
    connections.delete(connection.id);
    try {
      connection.ws.close(code, reason);
    } catch {
      connection.ws.terminate();
    }
    connection.killTimer ??= setTimeout(() => connection.ws.terminate(), CLOSE_HANDSHAKE_MS);
  }

  function onMessage(connection: Connection, data: RawData, isBinary: boolean): void {
    if (isBinary) {
      // "API Gateway WebSocket APIs don't currently support binary frames in incoming
      // message payloads. If a client app sends a binary frame, API Gateway rejects it and
      // disconnects the client with code 1003."
      closeConnection(connection, 1003, 'Binary frames are not supported');
      return;
    }
    connection.lastActiveAt = Date.now();
    armIdleTimer(connection);
    const body = rawDataToBuffer(data).toString('utf8');
    const routeKey = selectRoute(body, selectionPath, routes);
    const requestContext = baseRequestContext(routeKey, 'MESSAGE', connection.id, connection.connectedAt, {
      sourceIp: connection.sourceIp,
      userAgent: connection.userAgent,
    });
    requestContext.messageId = gatewayId();
    if (connection.authorizer) requestContext.authorizer = { ...connection.authorizer };
    const event: WebSocketEvent = { requestContext, body, isBase64Encoded: false };
    void invoke(options.handler, event, 'local-websocket-handler').then((outcome) => {
      const logBase = { connectionId: connection.id, route: routeKey, requestId: requestContext.requestId };
      let reply: string | undefined;
      if (outcome.kind === 'ok') {
        const result = outcome.value as { body?: unknown } | undefined;
        if (typeof result === 'object' && result !== null && typeof result.body === 'string')
          reply = result.body;
      } else {
        const message = outcome.kind === 'timeout' ? 'Endpoint request timed out' : 'Internal server error';
        log({
          level: 'ERROR',
          msg: outcome.kind === 'timeout' ? 'handler timed out' : 'handler failed',
          ...logBase,
          ...(outcome.kind === 'error' ? errorFields(outcome.error) : {}),
        });
        reply = JSON.stringify({ message, connectionId: connection.id, requestId: requestContext.requestId });
      }
      if (reply !== undefined && connections.get(connection.id) === connection) {
        connection.ws.send(reply, { binary: false }, (error) => {
          if (error)
            log({ level: 'WARN', msg: 'route response not delivered', ...logBase, ...errorFields(error) });
        });
      }
    });
  }

  function fireDisconnect(
    connectionId: string,
    connectedAt: number,
    identity: WebSocketRequestContext['identity'],
    authorizer: WebSocketAuthorizerRequestContext | undefined,
    code: number,
    reason: string,
  ): void {
    const requestContext: WebSocketRequestContext = {
      ...baseRequestContext('$disconnect', 'DISCONNECT', connectionId, connectedAt, identity),
      disconnectStatusCode: code,
      disconnectReason: reason,
      ...(authorizer ? { authorizer: { ...authorizer } } : {}),
    };
    const headers = { Host: domainName, 'X-Forwarded-For': identity.sourceIp };
    const event: WebSocketEvent = {
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
      requestContext,
      isBase64Encoded: false,
    };
    void invoke(options.handler, event, 'local-websocket-handler').then((outcome) => {
      if (outcome.kind === 'ok') return;
      log({
        level: 'ERROR',
        msg: outcome.kind === 'timeout' ? 'handler timed out' : 'handler failed',
        connectionId,
        route: '$disconnect',
        ...(outcome.kind === 'error' ? errorFields(outcome.error) : {}),
      });
    });
  }

  async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) tooBig = true;
      if (!tooBig) chunks.push(chunk);
    }
    return tooBig ? undefined : Buffer.concat(chunks);
  }

  /** The `@connections` management API (the paths the AWS SDK calls). */
  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const prefix = `/${stage}/@connections/`;
    if (!url.pathname.startsWith(prefix)) {
      req.resume();
      if (url.pathname === `/${stage}` || url.pathname === `/${stage}/`) {
        return sendJson(res, 426, { message: 'Upgrade Required' });
      }
      return sendJson(res, 403, { message: 'Forbidden' }, 'ForbiddenException');
    }
    const rawId = url.pathname.slice(prefix.length);
    let connectionId: string;
    try {
      connectionId = decodeURIComponent(rawId);
    } catch {
      req.resume();
      return sendJson(res, 400, { message: 'Invalid connection id' }, 'BadRequestException');
    }
    if (!req.headers.authorization) {
      req.resume();
      return sendJson(res, 403, { message: 'Missing Authentication Token' }, 'ForbiddenException');
    }
    const gone = () => sendJson(res, 410, { message: `Connection ${connectionId} is gone` }, 'GoneException');
    switch (req.method) {
      case 'POST': {
        const data = await readBody(req, maxMessageBytes);
        if (data === undefined) {
          return sendJson(
            res,
            413,
            { message: `Message too long: the limit is ${maxMessageBytes} bytes` },
            'PayloadTooLargeException',
          );
        }
        const connection = connections.get(connectionId);
        if (!connection || connection.ws.readyState !== connection.ws.OPEN) return gone();
        connection.ws.send(data, { binary: false }, (error) => {
          if (error)
            log({
              level: 'WARN',
              msg: 'post to connection not delivered',
              connectionId,
              ...errorFields(error),
            });
        });
        return sendJson(res, 200, undefined);
      }
      case 'GET': {
        req.resume();
        const connection = connections.get(connectionId);
        if (!connection) return gone();
        return sendJson(res, 200, {
          connectedAt: new Date(connection.connectedAt).toISOString(),
          identity: { sourceIp: connection.sourceIp, userAgent: connection.userAgent ?? '' },
          lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
        });
      }
      case 'DELETE': {
        req.resume();
        const connection = connections.get(connectionId);
        if (!connection) return gone();
        closeConnection(connection, 1000);
        return sendJson(res, 204, undefined);
      }
      default:
        req.resume();
        return sendJson(res, 405, { message: 'Method Not Allowed' });
    }
  }

  const server: Server = createServer((req, res) => {
    handleRequest(req, res).catch((error: unknown) => {
      log({ level: 'ERROR', msg: 'management request failed', ...errorFields(error) });
      if (!res.headersSent) sendJson(res, 500, { message: 'Internal server error' });
      else res.destroy();
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const task = handleUpgrade(req, socket, head).catch((error: unknown) => {
      log({ level: 'ERROR', msg: 'upgrade failed', ...errorFields(error) });
      socket.destroy();
    });
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  boundPort = (server.address() as AddressInfo).port;
  const authority = host.includes(':') ? `[${host}]:${boundPort}` : `${host}:${boundPort}`;
  domainName = authority;

  async function shutdown(): Promise<void> {
    for (const socket of pendingUpgrades) socket.destroy();
    pendingUpgrades.clear();
    const closed = [...connections.values()].map(
      (connection) =>
        new Promise<void>((resolve) => {
          if (connection.ws.readyState === connection.ws.CLOSED) return resolve();
          connection.ws.once('close', () => resolve());
          closeConnection(connection, 1001, 'Going away');
        }),
    );
    await Promise.all(closed);
    // Let the $disconnect calls (and any other in-flight call or upgrade) finish, within
    // bounds; a call may start another ($connect ending in $disconnect), hence the loop.
    const deadline = Date.now() + CLOSE_DRAIN_MS;
    while (inFlight.size > 0 && Date.now() < deadline) {
      let drainTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inFlight]),
        new Promise((resolve) => {
          drainTimer = setTimeout(resolve, deadline - Date.now());
        }),
      ]);
      clearTimeout(drainTimer);
    }
    wss.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  return {
    url: `ws://${authority}/${stage}`,
    managementEndpoint: `http://${authority}/${stage}`,
    port: boundPort,
    connectionIds: () => [...connections.keys()],
    close: () => {
      closing ??= shutdown();
      return closing;
    },
  };
}
