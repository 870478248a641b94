/**
 * The local WebSocket gateway (`local/ws-gateway.ts`) against real clients: the `ws`
 * client, `fetch`, and the AWS SDK's ApiGatewayManagementApiClient.
 */
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  GoneException,
  PayloadTooLargeException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type GatewayLogEntry,
  startWebSocketGateway,
  type WebSocketAuthorizerEvent,
  type WebSocketEvent,
  type WebSocketGateway,
  type WebSocketGatewayOptions,
} from '../../local/ws-gateway.ts';

const WAIT_MS = 5000;

const openGateways: WebSocketGateway[] = [];
const openClients: WebSocket[] = [];

afterEach(async () => {
  for (const client of openClients.splice(0)) client.terminate();
  await Promise.all(openGateways.splice(0).map((gateway) => gateway.close()));
});

/** Polls until `probe` returns something other than undefined, or fails after `timeoutMs`. */
async function waitFor<T>(probe: () => T | undefined, what: string, timeoutMs = WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

type Respond = (event: WebSocketEvent) => unknown;

interface Harness {
  gateway: WebSocketGateway;
  events: WebSocketEvent[];
  logs: GatewayLogEntry[];
  of(routeKey: string): WebSocketEvent[];
}

async function startHarness(
  options: Partial<WebSocketGatewayOptions> & { respond?: Respond } = {},
): Promise<Harness> {
  const events: WebSocketEvent[] = [];
  const logs: GatewayLogEntry[] = [];
  const { respond, ...rest } = options;
  const gateway = await startWebSocketGateway({
    log: (entry) => logs.push(entry),
    handler: async (event) => {
      events.push(event);
      return respond ? await respond(event) : { statusCode: 200 };
    },
    ...rest,
  });
  openGateways.push(gateway);
  return {
    gateway,
    events,
    logs,
    of: (routeKey) => events.filter((e) => e.requestContext.routeKey === routeKey),
  };
}

interface Client {
  ws: WebSocket;
  messages: string[];
  closed: { code: number; reason: string } | undefined;
}

type Attempt = { ok: true; client: Client } | { ok: false; status: number; body: string };

/** Dials the gateway; resolves with the open client, or with the HTTP status of a refused upgrade. */
function dial(url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    openClients.push(ws);
    const client: Client = { ws, messages: [], closed: undefined };
    ws.on('message', (data) => client.messages.push(data.toString()));
    ws.on('close', (code, reason) => {
      client.closed = { code, reason: reason.toString() };
    });
    const timer = setTimeout(() => reject(new Error(`no answer from ${url} within ${WAIT_MS} ms`)), WAIT_MS);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({ ok: true, client });
    });
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ ok: false, status: response.statusCode ?? 0, body });
      });
    });
    ws.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
  const attempt = await dial(url, options);
  if (!attempt.ok) throw new Error(`connection refused: ${attempt.status} ${attempt.body}`);
  return attempt.client;
}

async function refusedStatus(url: string, options: WebSocket.ClientOptions = {}): Promise<number> {
  const attempt = await dial(url, options);
  if (attempt.ok) throw new Error('the connection was accepted');
  return attempt.status;
}

function managementClient(gateway: WebSocketGateway): ApiGatewayManagementApiClient {
  return new ApiGatewayManagementApiClient({
    endpoint: gateway.managementEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
}

/** The id the handler saw on $connect for the latest connection. */
async function lastConnectionId(harness: Harness, count = 1): Promise<string> {
  const connects = await waitFor(
    () => (harness.of('$connect').length >= count ? harness.of('$connect') : undefined),
    `${count} $connect event(s)`,
  );
  return connects[count - 1]!.requestContext.connectionId;
}

function allow(principalId: string, resource: string, context?: Record<string, string | number | boolean>) {
  return {
    principalId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: resource }],
    },
    ...(context ? { context } : {}),
  };
}

describe('$connect', () => {
  it('gives $connect the query string, headers and the authorizer context, and keeps the context on later events', async () => {
    const authorizerEvents: WebSocketAuthorizerEvent[] = [];
    const harness = await startHarness({
      identitySource: ['route.request.header.Authorization'],
      authorizer: async (event) => {
        authorizerEvents.push(event);
        return allow('agent-7', event.methodArn, { site: 'fra1', attempt: 2, admin: false });
      },
    });
    const { gateway } = harness;
    const client = await connect(`${gateway.url}?site=fra1&tag=a&tag=b`, {
      headers: {
        Authorization: 'Bearer t0k',
        'X-Agent-Version': '1.2.3',
        'User-Agent': 'metalplane-agent/1.2.3',
      },
    });

    expect(authorizerEvents).toHaveLength(1);
    const auth = authorizerEvents[0]!;
    expect(auth.type).toBe('REQUEST');
    expect(auth.methodArn).toBe('arn:aws:execute-api:us-east-1:000000000000:local/local/$connect');
    expect(auth.headers.Authorization).toBe('Bearer t0k');
    expect(auth.queryStringParameters).toEqual({ site: 'fra1', tag: 'b' });
    expect(auth.requestContext.routeKey).toBe('$connect');

    const connectEvent = (await waitFor(() => harness.of('$connect')[0], '$connect'))!;
    const rc = connectEvent.requestContext;
    expect(rc.routeKey).toBe('$connect');
    expect(rc.eventType).toBe('CONNECT');
    expect(rc.messageId).toBeNull();
    expect(rc.connectionId).toMatch(/^[A-Za-z0-9+/]{15}=$/);
    expect(rc.connectionId).toBe(auth.requestContext.connectionId);
    expect(rc.stage).toBe('local');
    expect(rc.domainName).toBe(`127.0.0.1:${gateway.port}`);
    expect(rc.identity).toEqual({ sourceIp: '127.0.0.1', userAgent: 'metalplane-agent/1.2.3' });
    expect(rc.messageDirection).toBe('IN');
    expect(rc.connectedAt).toBeGreaterThan(Date.now() - 60_000);
    expect(connectEvent.isBase64Encoded).toBe(false);
    expect(connectEvent.queryStringParameters).toEqual({ site: 'fra1', tag: 'b' });
    expect(connectEvent.multiValueQueryStringParameters).toEqual({ site: ['fra1'], tag: ['a', 'b'] });
    expect(connectEvent.headers?.['X-Agent-Version']).toBe('1.2.3');
    expect(connectEvent.multiValueHeaders?.Authorization).toEqual(['Bearer t0k']);
    expect(rc.authorizer).toMatchObject({
      principalId: 'agent-7',
      site: 'fra1',
      attempt: '2',
      admin: 'false',
    });
    expect(typeof rc.authorizer?.integrationLatency).toBe('number');
    expect(gateway.connectionIds()).toEqual([rc.connectionId]);

    client.ws.send(JSON.stringify({ action: 'hello' }));
    const message = await waitFor(() => harness.of('$default')[0], 'a message event');
    expect(message.requestContext.eventType).toBe('MESSAGE');
    expect(message.requestContext.connectionId).toBe(rc.connectionId);
    expect(message.requestContext.authorizer).toMatchObject({ principalId: 'agent-7', site: 'fra1' });
  });

  it('refuses the upgrade as API Gateway does when the authorizer does not allow', async () => {
    let authorizerCalls = 0;
    const harness = await startHarness({
      identitySource: ['route.request.header.Authorization'],
      authorizer: async (event) => {
        authorizerCalls += 1;
        switch (event.headers['X-Case']) {
          case 'unauthorized':
            throw new Error('Unauthorized');
          case 'crash':
            throw new Error('database unreachable');
          case 'deny':
            // An explicit Deny wins over an Allow.
            return {
              principalId: 'x',
              policyDocument: {
                Version: '2012-10-17',
                Statement: [
                  { Action: 'execute-api:*', Effect: 'Allow', Resource: '*' },
                  { Action: 'execute-api:Invoke', Effect: 'Deny', Resource: event.methodArn },
                ],
              },
            };
          case 'elsewhere':
            return allow('x', 'arn:aws:execute-api:us-east-1:000000000000:other/local/$connect');
          case 'no-policy':
            return { principalId: 'x' };
          case 'nested-context':
            return { ...allow('x', event.methodArn), context: { roles: ['admin'] } };
          default:
            return allow('x', 'arn:aws:execute-api:*:*:*/local/*');
        }
      },
    });
    const url = harness.gateway.url;
    const as = (xCase: string) => ({ headers: { Authorization: 'token', 'X-Case': xCase } });

    expect(await refusedStatus(url)).toBe(401);
    expect(authorizerCalls).toBe(0);
    expect(await refusedStatus(url, as('unauthorized'))).toBe(401);
    expect(await refusedStatus(url, as('crash'))).toBe(500);
    expect(await refusedStatus(url, as('deny'))).toBe(403);
    expect(await refusedStatus(url, as('elsewhere'))).toBe(403);
    expect(await refusedStatus(url, as('no-policy'))).toBe(500);
    expect(await refusedStatus(url, as('nested-context'))).toBe(500);
    expect(authorizerCalls).toBe(6);
    expect(harness.events).toHaveLength(0);
    expect(harness.gateway.connectionIds()).toEqual([]);
    expect(harness.logs.some((l) => l.level === 'ERROR' && l.error === 'database unreachable')).toBe(true);

    // And a wildcard Allow does let a client in.
    await connect(url, as('ok'));
    expect(harness.of('$connect')).toHaveLength(1);
  });

  it('refuses the upgrade with the status the $connect integration answers', async () => {
    const harness = await startHarness({
      respond: (event) => {
        if (event.requestContext.routeKey !== '$connect') return undefined;
        const mode = event.queryStringParameters?.mode;
        if (mode === 'forbid') return { statusCode: 403, body: 'no' };
        if (mode === 'teapot') return { statusCode: '418' };
        if (mode === 'crash') throw new Error('boom');
        return { statusCode: 200 };
      },
    });
    const url = harness.gateway.url;
    expect(await refusedStatus(`${url}?mode=forbid`)).toBe(403);
    expect(await refusedStatus(`${url}?mode=teapot`)).toBe(418);
    expect(await refusedStatus(`${url}?mode=crash`)).toBe(502);
    expect(harness.gateway.connectionIds()).toEqual([]);
    expect(
      harness.logs.some((l) => l.level === 'ERROR' && l.route === '$connect' && l.error === 'boom'),
    ).toBe(true);

    const client = await connect(url);
    expect(harness.gateway.connectionIds()).toHaveLength(1);
    client.ws.close(1000);
    await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
    // Only the admitted connection gets a $disconnect.
    expect(harness.of('$disconnect')).toHaveLength(1);
    expect(harness.of('$connect')).toHaveLength(4);
  });

  it('answers 504 when $connect outlasts the integration timeout', async () => {
    const harness = await startHarness({ integrationTimeoutMs: 200, respond: () => new Promise(() => {}) });
    expect(await refusedStatus(harness.gateway.url)).toBe(504);
    expect(harness.gateway.connectionIds()).toEqual([]);
  });

  it('drives a callback-style handler as Lambda does', async () => {
    const seen: string[] = [];
    const gateway = await startWebSocketGateway({
      log: () => {},
      handler: (event, _context, callback) => {
        seen.push(event.requestContext.routeKey);
        setTimeout(() => callback(null, { statusCode: 200, body: `cb:${event.requestContext.routeKey}` }), 5);
      },
    });
    openGateways.push(gateway);
    const client = await connect(gateway.url);
    client.ws.send('hello');
    expect(await waitFor(() => client.messages[0], 'the callback reply')).toBe('cb:$default');
    expect(seen).toEqual(['$connect', '$default']);
  });

  it('refuses other paths and plain HTTP on the stage path', async () => {
    const harness = await startHarness();
    expect(await refusedStatus(harness.gateway.url.replace('/local', '/prod'))).toBe(403);
    const plain = await fetch(harness.gateway.managementEndpoint);
    expect(plain.status).toBe(426);
    expect(harness.events).toHaveLength(0);
  });

  it('lets $connect choose the subprotocol', async () => {
    const harness = await startHarness({
      respond: (event) =>
        event.requestContext.routeKey === '$connect'
          ? { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'metalplane.v1' } }
          : undefined,
    });
    const attempt = await dial(harness.gateway.url, {}, ['metalplane.v2', 'metalplane.v1']);
    expect(attempt.ok).toBe(true);
    if (attempt.ok) expect(attempt.client.ws.protocol).toBe('metalplane.v1');
  });
});

describe('messages', () => {
  it('routes by the route selection expression and sends route responses back', async () => {
    const harness = await startHarness({
      routes: ['report', 'ping'],
      respond: (event) => {
        if (event.requestContext.eventType !== 'MESSAGE') return { statusCode: 200 };
        if (event.body === '{"action":"explode"}') throw new Error('handler bug');
        return { statusCode: 200, body: `reply:${event.requestContext.routeKey}:${event.body}` };
      },
    });
    const client = await connect(harness.gateway.url);
    const exchange = async (text: string) => {
      const before = client.messages.length;
      client.ws.send(text);
      return waitFor(() => client.messages[before], `a reply to ${text}`);
    };

    expect(await exchange('{"action":"report","power":"on"}')).toBe(
      'reply:report:{"action":"report","power":"on"}',
    );
    expect(await exchange('{"action":"ping"}')).toBe('reply:ping:{"action":"ping"}');
    expect(await exchange('{"action":"unknown"}')).toBe('reply:$default:{"action":"unknown"}');
    expect(await exchange('{"verb":"report"}')).toBe('reply:$default:{"verb":"report"}');
    expect(await exchange('not json {')).toBe('reply:$default:not json {');
    expect(await exchange('["report"]')).toBe('reply:$default:["report"]');

    const messages = harness.events.filter((e) => e.requestContext.eventType === 'MESSAGE');
    expect(messages.map((e) => e.requestContext.routeKey)).toEqual([
      'report',
      'ping',
      '$default',
      '$default',
      '$default',
      '$default',
    ]);
    const first = messages[0]!;
    expect(first.body).toBe('{"action":"report","power":"on"}');
    expect(first.isBase64Encoded).toBe(false);
    expect(first.requestContext.messageId).toMatch(/^[A-Za-z0-9+/]{15}=$/);
    expect(new Set(messages.map((e) => e.requestContext.requestId)).size).toBe(messages.length);

    // A failing handler gives the client API Gateway's error frame; the connection stays.
    const failure = JSON.parse(await exchange('{"action":"explode"}')) as Record<string, unknown>;
    const connectionId = harness.of('$connect')[0]!.requestContext.connectionId;
    expect(failure).toMatchObject({ message: 'Internal server error', connectionId });
    expect(typeof failure.requestId).toBe('string');
    expect(harness.logs.some((l) => l.level === 'ERROR' && l.error === 'handler bug')).toBe(true);
    expect(await exchange('{"action":"ping"}')).toBe('reply:ping:{"action":"ping"}');
    expect(client.closed).toBeUndefined();
  });

  it('understands nested, braced route selection expressions', async () => {
    const harness = await startHarness({
      routes: ['result'],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: API Gateway's own syntax, not a template.
      routeSelectionExpression: '${request.body.meta.type}',
    });
    const client = await connect(harness.gateway.url);
    client.ws.send('{"meta":{"type":"result"}}');
    client.ws.send('{"type":"result"}');
    await waitFor(() => (harness.of('result').length === 1 ? true : undefined), 'the result route');
    await waitFor(() => (harness.of('$default').length === 1 ? true : undefined), 'the $default route');
    expect(harness.of('result')[0]!.body).toBe('{"meta":{"type":"result"}}');
  });

  it('answers a handler that never finishes with a timeout frame', async () => {
    const harness = await startHarness({
      integrationTimeoutMs: 200,
      respond: (event) => (event.requestContext.eventType === 'MESSAGE' ? new Promise(() => {}) : undefined),
    });
    const client = await connect(harness.gateway.url);
    client.ws.send('{"action":"slow"}');
    const reply = JSON.parse(await waitFor(() => client.messages[0], 'the timeout frame')) as {
      message: string;
    };
    expect(reply.message).toBe('Endpoint request timed out');
  });
});

describe('@connections', () => {
  it('posts, describes and deletes connections through the AWS SDK', async () => {
    const harness = await startHarness();
    const sdk = managementClient(harness.gateway);
    const client = await connect(harness.gateway.url, { headers: { 'User-Agent': 'agent/9' } });
    const connectionId = await lastConnectionId(harness);

    await sdk.send(
      new PostToConnectionCommand({ ConnectionId: connectionId, Data: '{"command":"power-on"}' }),
    );
    expect(await waitFor(() => client.messages[0], 'the pushed message')).toBe('{"command":"power-on"}');
    await sdk.send(
      new PostToConnectionCommand({
        ConnectionId: connectionId,
        Data: new TextEncoder().encode('bytes too'),
      }),
    );
    expect(await waitFor(() => client.messages[1], 'the second pushed message')).toBe('bytes too');

    client.ws.send('{"action":"anything"}');
    await waitFor(() => harness.of('$default')[0], 'the message');
    const info = await sdk.send(new GetConnectionCommand({ ConnectionId: connectionId }));
    expect(info.Identity).toEqual({ SourceIp: '127.0.0.1', UserAgent: 'agent/9' });
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    expect(
      Math.abs(info.ConnectedAt!.getTime() - harness.of('$connect')[0]!.requestContext.connectedAt),
    ).toBeLessThan(1000);
    expect(info.LastActiveAt!.getTime()).toBeGreaterThanOrEqual(info.ConnectedAt!.getTime());

    await sdk.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
    const closed = await waitFor(() => client.closed, 'the client to be closed');
    expect(closed.code).toBe(1000);
    const disconnect = await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
    expect(disconnect.requestContext.connectionId).toBe(connectionId);
    expect(disconnect.requestContext.eventType).toBe('DISCONNECT');
    expect(harness.gateway.connectionIds()).toEqual([]);

    await expect(
      sdk.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'late' })),
    ).rejects.toThrow(GoneException);
    await expect(sdk.send(new GetConnectionCommand({ ConnectionId: connectionId }))).rejects.toThrow(
      GoneException,
    );
    await expect(sdk.send(new DeleteConnectionCommand({ ConnectionId: connectionId }))).rejects.toThrow(
      GoneException,
    );
    sdk.destroy();
  });

  it('throws GoneException for a connection that never existed, and PayloadTooLarge over 128 KiB', async () => {
    const harness = await startHarness();
    const sdk = managementClient(harness.gateway);
    const error = await sdk
      .send(new PostToConnectionCommand({ ConnectionId: 'AAAAAAAAAAAAAAA=', Data: 'x' }))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GoneException);
    expect((error as GoneException).$metadata.httpStatusCode).toBe(410);

    const client = await connect(harness.gateway.url);
    const connectionId = await lastConnectionId(harness);
    await expect(
      sdk.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'x'.repeat(128 * 1024 + 1) })),
    ).rejects.toThrow(PayloadTooLargeException);
    await sdk.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: 'y'.repeat(128 * 1024) }));
    const received = await waitFor(() => client.messages[0], 'the 128 KiB message');
    expect(received.length).toBe(128 * 1024);
    sdk.destroy();
  });

  it('requires an Authorization header and decodes the connection id in the path', async () => {
    const harness = await startHarness();
    const client = await connect(harness.gateway.url);
    const connectionId = await lastConnectionId(harness);
    const target = `${harness.gateway.managementEndpoint}/@connections/${encodeURIComponent(connectionId)}`;
    expect(target).toContain('%3D');

    const anonymous = await fetch(target, { method: 'POST', body: 'hi' });
    expect(anonymous.status).toBe(403);
    expect(anonymous.headers.get('x-amzn-errortype')).toBe('ForbiddenException');

    const signed = await fetch(target, {
      method: 'POST',
      body: 'hi',
      headers: { Authorization: 'AWS4-HMAC-SHA256 x' },
    });
    expect(signed.status).toBe(200);
    expect(await waitFor(() => client.messages[0], 'the posted message')).toBe('hi');

    const described = await fetch(target, { headers: { Authorization: 'AWS4-HMAC-SHA256 x' } });
    expect(described.status).toBe(200);
    const body = (await described.json()) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['connectedAt', 'identity', 'lastActiveAt']);

    const unknown = await fetch(`${harness.gateway.managementEndpoint}/@connections/nope`, {
      method: 'POST',
      body: 'hi',
      headers: { Authorization: 'AWS4-HMAC-SHA256 x' },
    });
    expect(unknown.status).toBe(410);
    expect(unknown.headers.get('x-amzn-errortype')).toBe('GoneException');
    expect(((await unknown.json()) as { message?: unknown }).message).toEqual(expect.any(String));
  });
});

describe('$disconnect', () => {
  it('fires when the client closes, with the close code, and survives a failing $disconnect handler', async () => {
    const harness = await startHarness({
      respond: (event) => {
        if (event.requestContext.routeKey === '$disconnect') throw new Error('cleanup failed');
        return { statusCode: 200 };
      },
    });
    const client = await connect(harness.gateway.url);
    const connectionId = await lastConnectionId(harness);
    client.ws.close(4001, 'bye');
    const disconnect = await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
    expect(disconnect.requestContext.connectionId).toBe(connectionId);
    expect(disconnect.requestContext.disconnectStatusCode).toBe(4001);
    expect(disconnect.requestContext.disconnectReason).toBe('bye');
    expect(harness.gateway.connectionIds()).toEqual([]);
    await waitFor(
      () => harness.logs.find((l) => l.route === '$disconnect' && l.error === 'cleanup failed'),
      'the logged $disconnect failure',
    );

    // Still serving.
    await connect(harness.gateway.url);
    expect(harness.gateway.connectionIds()).toHaveLength(1);
  });

  it('closes idle connections after idleTimeoutMs with 1001', async () => {
    const harness = await startHarness({ idleTimeoutMs: 300 });
    const client = await connect(harness.gateway.url);
    const closed = await waitFor(() => client.closed, 'the idle close');
    expect(closed.code).toBe(1001);
    await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
  });

  it('closing the gateway closes every client and fires their $disconnect before resolving', async () => {
    const harness = await startHarness();
    const first = await connect(harness.gateway.url);
    const second = await connect(harness.gateway.url);
    expect(harness.gateway.connectionIds()).toHaveLength(2);
    await harness.gateway.close();
    expect(harness.of('$disconnect')).toHaveLength(2);
    expect((await waitFor(() => first.closed, 'first close')).code).toBe(1001);
    expect((await waitFor(() => second.closed, 'second close')).code).toBe(1001);
    await expect(dial(harness.gateway.url)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('limits', () => {
  /** Sends `text` as one message split in frames of `frameBytes`. */
  function sendInFrames(ws: WebSocket, text: string, frameBytes: number): void {
    for (let offset = 0; offset < text.length; offset += frameBytes) {
      const last = offset + frameBytes >= text.length;
      ws.send(text.slice(offset, offset + frameBytes), { fin: last });
    }
  }

  it('accepts a 128 KiB message sent in 32 KiB frames', async () => {
    const harness = await startHarness();
    const client = await connect(harness.gateway.url);
    const text = 'a'.repeat(128 * 1024);
    sendInFrames(client.ws, text, 32 * 1024);
    const event = await waitFor(() => harness.of('$default')[0], 'the big message');
    expect(event.body).toBe(text);
    expect(client.closed).toBeUndefined();
  });

  it('closes with 1009 on a message over 128 KiB', async () => {
    const harness = await startHarness();
    const client = await connect(harness.gateway.url);
    sendInFrames(client.ws, 'a'.repeat(128 * 1024 + 1), 32 * 1024);
    expect((await waitFor(() => client.closed, 'the close')).code).toBe(1009);
    await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
    expect(harness.of('$default')).toHaveLength(0);
  });

  it('closes with 1009 on a single frame over 32 KiB', async () => {
    const harness = await startHarness();
    const client = await connect(harness.gateway.url);
    client.ws.send('a'.repeat(32 * 1024 + 1));
    expect((await waitFor(() => client.closed, 'the close')).code).toBe(1009);
    await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
    expect(harness.of('$default')).toHaveLength(0);
  });

  it('honours smaller configured limits', async () => {
    const harness = await startHarness({ maxMessageBytes: 1024, maxFrameBytes: 0 });
    const client = await connect(harness.gateway.url);
    client.ws.send('b'.repeat(1024));
    await waitFor(() => harness.of('$default')[0], 'the 1 KiB message');
    client.ws.send('b'.repeat(1025));
    expect((await waitFor(() => client.closed, 'the close')).code).toBe(1009);
    expect(harness.of('$default')).toHaveLength(1);
  });

  it('closes with 1003 on a binary frame', async () => {
    const harness = await startHarness();
    const client = await connect(harness.gateway.url);
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await waitFor(() => client.closed, 'the close')).code).toBe(1003);
    const disconnect = await waitFor(() => harness.of('$disconnect')[0], '$disconnect');
    expect(disconnect.requestContext.disconnectStatusCode).toBe(1003);
    expect(harness.of('$default')).toHaveLength(0);
  });
});
