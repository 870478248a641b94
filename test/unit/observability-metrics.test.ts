/**
 * lambda/observability: the EMF lines Powertools Metrics writes on stdout (what CloudWatch
 * Logs turns into metrics), read back and checked: namespace, dimension sets, names,
 * units, values; the API's per-route errors through the real API middleware stack; the
 * agent gauges; the entry points' flush; the Tracer off outside Lambda.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AgentRecord } from '../../lambda/domain/conductors.ts';
import { NotFound, Unauthorized } from '../../lambda/http/errors.ts';
import { type ApiContext, createApiHandler } from '../../lambda/http/middlewares.ts';
import { json } from '../../lambda/http/request.ts';
import { Router } from '../../lambda/http/router.ts';
import { observeAgents, recordAgentGauges } from '../../lambda/observability/agents.ts';
import { routeOf, UNMATCHED_ROUTE } from '../../lambda/observability/api.ts';
import {
  commandAnnotator,
  instrument,
  loadTracing,
  tracingMayBeOn,
} from '../../lambda/observability/instrumentation.ts';
import { METRICS_NAMESPACE, MetricsRecorder, metrics as shared } from '../../lambda/observability/metrics.ts';

interface Emf {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{
      Namespace: string;
      Dimensions: string[][];
      Metrics: Array<{ Name: string; Unit: string }>;
    }>;
  };
  [key: string]: unknown;
}

let written: string[];

beforeEach(() => {
  written = [];
  const write = process.stdout.write.bind(process.stdout);
  vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    if (text.includes('"_aws"')) {
      written.push(text);
      return true;
    }
    return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stdout.write);
});

afterEach(() => {
  vi.restoreAllMocks();
  shared.configure({ service: 'metalplane', enabled: false });
});

/** The EMF documents written so far, one per line. */
function emf(): Emf[] {
  return written
    .join('')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as Emf);
}

/** The one document holding `name`. */
function holding(name: string, where: Record<string, unknown> = {}): Emf {
  const found = emf().filter(
    (doc) => name in doc && Object.entries(where).every(([key, value]) => doc[key] === value),
  );
  expect(found, `one EMF line with ${name} ${JSON.stringify(where)}`).toHaveLength(1);
  return found[0] as Emf;
}

function recorder(service = 'metalplane-test'): MetricsRecorder {
  const recording = new MetricsRecorder();
  recording.configure({ service, enabled: true });
  return recording;
}

const command = (site: string, status = 'queued', createdAt?: string) => ({
  id: `c-${site}-${status}`,
  node: 'n1',
  site,
  status,
  ...(createdAt ? { created_at: createdAt } : {}),
});

describe('MetricsRecorder', () => {
  it('writes command counts per site and for the fleet, in the Metalplane namespace, service as metadata', () => {
    const recording = recorder();
    recording.commandQueued(command('dc1'));
    recording.commandQueued(command('dc1'));
    recording.commandFinished(command('dc1', 'succeeded'));
    recording.commandFinished(command('dc1', 'failed'));
    recording.commandFinished(command('dc1', 'expired'));
    recording.commandFinished(command('dc1', 'running')); // not finished: nothing
    expect(written).toEqual([]); // buffered until the flush
    recording.flush();

    const docs = emf();
    expect(docs).toHaveLength(1);
    const doc = docs[0] as Emf;
    const [directive] = doc._aws.CloudWatchMetrics;
    expect(directive?.Namespace).toBe(METRICS_NAMESPACE);
    expect(directive?.Dimensions).toEqual([['site'], []]);
    expect(directive?.Metrics).toEqual([
      { Name: 'CommandsQueued', Unit: 'Count' },
      { Name: 'CommandsSucceeded', Unit: 'Count' },
      { Name: 'CommandsFailed', Unit: 'Count' },
      { Name: 'CommandsExpired', Unit: 'Count' },
    ]);
    expect(doc).toMatchObject({
      site: 'dc1',
      service: 'metalplane-test',
      CommandsQueued: 2,
      CommandsSucceeded: 1,
      CommandsFailed: 1,
      CommandsExpired: 1,
    });
    expect(typeof doc._aws.Timestamp).toBe('number');
    // The service is never a dimension: one command metric, whichever Lambda emits it.
    expect(directive?.Dimensions.flat()).not.toContain('service');
  });

  it('writes one line per site', () => {
    const recording = recorder();
    recording.commandQueued(command('dc1'));
    recording.commandQueued(command('dc2'));
    recording.commandQueued(command('dc2'));
    recording.flush();
    expect(holding('CommandsQueued', { site: 'dc1' }).CommandsQueued).toBe(1);
    expect(holding('CommandsQueued', { site: 'dc2' }).CommandsQueued).toBe(2);
  });

  it('measures the dispatch latency of a first delivery only, in milliseconds', () => {
    const recording = recorder();
    const queuedAt = new Date('2026-12-04T10:00:00.000Z');
    recording.commandDelivered(
      command('dc1', 'delivered', queuedAt.toISOString()),
      1,
      new Date(queuedAt.getTime() + 1500),
    );
    recording.commandDelivered(
      command('dc1', 'delivered', queuedAt.toISOString()),
      2,
      new Date(queuedAt.getTime() + 90_000),
    );
    recording.commandDelivered(command('dc1', 'delivered'), 1, new Date()); // no created_at: nothing
    recording.flush();
    const doc = holding('DispatchLatency');
    expect(doc._aws.CloudWatchMetrics[0]?.Metrics).toEqual([
      { Name: 'DispatchLatency', Unit: 'Milliseconds' },
    ]);
    expect(doc._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['site'], []]);
    expect(doc.DispatchLatency).toBe(1500);
  });

  it('keeps every latency value, over several lines when there are many', () => {
    const recording = recorder();
    const queuedAt = new Date('2026-12-04T10:00:00.000Z');
    for (let i = 1; i <= 120; i++) {
      recording.commandDelivered(
        command('dc1', 'delivered', queuedAt.toISOString()),
        1,
        new Date(queuedAt.getTime() + i),
      );
    }
    recording.flush();
    const values = emf().flatMap((doc) => [doc.DispatchLatency].flat() as number[]);
    expect(values).toHaveLength(120);
    expect(values.reduce((sum, value) => sum + value, 0)).toBe((120 * 121) / 2);
    for (const doc of emf()) expect(doc.site).toBe('dc1');
  });

  it('counts API 4xx and 5xx per route template and for all routes, never 2xx/3xx', () => {
    const recording = recorder();
    recording.apiResponse('GET /v1/nodes/{node_ident}', 404);
    recording.apiResponse('GET /v1/nodes/{node_ident}', 404);
    recording.apiResponse('GET /v1/nodes/{node_ident}', 503);
    recording.apiResponse('GET /v1/nodes', 200);
    recording.apiResponse('PUT /v1/nodes/{node_ident}/states/power', 302);
    recording.flush();
    const notFound = holding('ApiErrors', { statusClass: '4xx' });
    expect(notFound._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([
      ['route', 'statusClass'],
      ['statusClass'],
    ]);
    expect(notFound).toMatchObject({ route: 'GET /v1/nodes/{node_ident}', ApiErrors: 2 });
    expect(holding('ApiErrors', { statusClass: '5xx' }).ApiErrors).toBe(1);
    expect(emf()).toHaveLength(2);
  });

  it('counts failed BMC reads of power reports per site', () => {
    const recording = recorder();
    recording.powerReports('dc1', [
      { power_state: 'power on' },
      { power_state: null },
      { power_state: 'power off', error: 'timeout' },
    ]);
    recording.powerReports('dc2', [{ power_state: 'power on' }]);
    recording.flush();
    expect(holding('PowerSyncFailures')).toMatchObject({ site: 'dc1', PowerSyncFailures: 2 });
  });

  it('counts agent connects and disconnects per site', () => {
    const recording = recorder();
    recording.agentConnected('dc1');
    recording.agentDisconnected('dc1');
    recording.flush();
    expect(holding('AgentConnections')).toMatchObject({
      site: 'dc1',
      AgentConnections: 1,
      AgentDisconnections: 1,
    });
  });

  it('writes nothing, and keeps nothing, when off', () => {
    const off = new MetricsRecorder();
    off.commandQueued(command('dc1'));
    off.flush();
    off.configure({ service: 'x', enabled: true });
    off.flush();
    expect(written).toEqual([]);
  });

  it('empties its buffer at each flush', () => {
    const recording = recorder();
    recording.commandQueued(command('dc1'));
    recording.flush();
    recording.flush();
    expect(emf()).toHaveLength(1);
  });

  it('tells its annotator of the commands queued and finished, and never fails for it', () => {
    const annotated: string[] = [];
    const recording = new MetricsRecorder();
    recording.configure({
      service: 's',
      enabled: true,
      annotate: (facts) => {
        annotated.push(`${facts.id}:${facts.status}`);
        throw new Error('tracing trouble');
      },
    });
    recording.commandQueued(command('dc1'));
    recording.commandFinished(command('dc1', 'succeeded'));
    expect(annotated).toEqual(['c-dc1-queued:queued', 'c-dc1-succeeded:succeeded']);
  });
});

describe('agent gauges', () => {
  const now = new Date('2026-12-04T12:00:00.000Z');
  const agent = (hostname: string, site: string, secondsAgo: number | null): AgentRecord => ({
    hostname,
    site,
    drivers: ['ipmi'],
    created_at: '2026-01-01T00:00:00Z',
    updated_at: null,
    last_heartbeat: secondsAgo === null ? null : new Date(now.getTime() - secondsAgo * 1000).toISOString(),
  });

  it('counts the alive agents, and the silent ones per site', () => {
    const recording = recorder();
    const counts = recordAgentGauges(
      [
        agent('a1', 'dc1', 5),
        agent('a2', 'dc1', 30),
        agent('a3', 'dc1', 20 * 60),
        agent('a4', 'dc2', 6 * 60),
        agent('a5', 'dc2', 3 * 60), // not alive, not silent yet
        agent('a6', 'dc3', null), // never spoke: not silent
      ],
      now,
      5,
      recording,
    );
    expect(counts).toEqual({ connected: 2, silent: 2 });
    recording.flush();
    const connected = holding('AgentsConnected');
    expect(connected._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[]]);
    expect(connected.AgentsConnected).toBe(2);
    for (const site of ['dc1', 'dc2']) {
      const silent = holding('AgentsSilent', { site });
      expect(silent._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['site'], []]);
      expect(silent.AgentsSilent).toBe(1);
    }
  });

  it('writes a 0 for the fleet when no agent is silent (the alarm sees data)', () => {
    const recording = recorder();
    recordAgentGauges([agent('a1', 'dc1', 5)], now, 5, recording);
    recording.flush();
    const silent = holding('AgentsSilent');
    expect(silent._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[]]);
    expect(silent.AgentsSilent).toBe(0);
    expect(silent.site).toBeUndefined();
  });

  it('reads the agents only when metrics are on, and never fails the tick', async () => {
    const list = vi.fn(async () => [agent('a1', 'dc1', 5)]);
    const warn = vi.fn();
    await observeAgents(list, { now, log: { warn }, recorder: new MetricsRecorder() });
    expect(list).not.toHaveBeenCalled();
    await observeAgents(
      async () => {
        throw new Error('DynamoDB is away');
      },
      { now, log: { warn }, recorder: recorder() },
    );
    expect(warn).toHaveBeenCalledWith('agent gauges not recorded', { error: 'DynamoDB is away' });
  });
});

describe('API errors through the API middleware stack', () => {
  const logger = new Logger({ serviceName: 'metalplane-api' });
  const router = new Router()
    .on('GET', '/v1/nodes/{node_ident}', async (request) => {
      if (request.params.node_ident === 'missing') throw new NotFound('Node missing could not be found.');
      return json({ uuid: request.params.node_ident });
    })
    .on('GET', '/v1/nodes', async () => json({ nodes: [] }));

  const event = (
    method: string,
    path: string,
    headers: Record<string, string> = {},
  ): APIGatewayProxyEventV2 =>
    ({
      version: '2.0',
      routeKey: '$default',
      rawPath: path,
      rawQueryString: '',
      headers,
      requestContext: {
        http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
        requestId: 'gw-1',
        domainName: 'localhost',
      },
      isBase64Encoded: false,
    }) as unknown as APIGatewayProxyEventV2;

  it('records the route template of a 404, never the raw path', async () => {
    shared.configure({ service: 'metalplane-api', enabled: true });
    const api = createApiHandler(router, logger);
    const answer = await api(event('GET', '/v1/nodes/missing'), {} as ApiContext);
    expect(answer.statusCode).toBe(404);
    await api(event('GET', '/v1/nodes/n1'), {} as ApiContext);
    await api(event('GET', '/v1/nope/x/y'), {} as ApiContext);
    shared.flush();
    const byRoute = Object.fromEntries(emf().map((doc) => [doc.route, doc.ApiErrors]));
    expect(byRoute).toEqual({ 'GET /v1/nodes/{node_ident}': 1, [UNMATCHED_ROUTE]: 1 });
    expect(written.join('')).not.toContain('/v1/nodes/missing');
  });

  it('records the route of a request refused before routing (401)', async () => {
    shared.configure({ service: 'metalplane-api', enabled: true });
    const api = createApiHandler(router, logger, async () => {
      throw new Unauthorized();
    });
    const answer = await api(event('GET', '/v1/nodes/n1'), {} as ApiContext);
    expect(answer.statusCode).toBe(401);
    shared.flush();
    expect(holding('ApiErrors')).toMatchObject({ route: 'GET /v1/nodes/{node_ident}', statusClass: '4xx' });
  });

  it('records nothing while metrics are off (tests, the local stack)', async () => {
    const api = createApiHandler(router, logger);
    await api(event('GET', '/v1/nodes/missing'), {} as ApiContext);
    shared.flush();
    expect(written).toEqual([]);
  });

  it('names routes by method and template', () => {
    expect(routeOf(router, event('GET', '/v1/nodes/'))).toBe('GET /v1/nodes');
    expect(routeOf(router, event('DELETE', '/v1/nodes'))).toBe(UNMATCHED_ROUTE);
  });
});

describe("the entry points' instrumentation", () => {
  it('flushes after each invocation, and after a failed one', async () => {
    const recording = new MetricsRecorder();
    const observed = instrument({ service: 'metalplane-test', metricsEnabled: true, recorder: recording });
    let fail = false;
    const handler = middy<unknown, string>();
    for (const middleware of observed.middlewares) handler.use(middleware as never);
    const invoke = handler.handler(async () => {
      recording.commandQueued(command('dc1'));
      if (fail) throw new Error('boom');
      return 'ok';
    });
    await invoke({}, {} as Context);
    expect(emf()).toHaveLength(1);
    fail = true;
    await expect(invoke({}, {} as Context)).rejects.toThrow('boom');
    expect(emf()).toHaveLength(2);
    expect(emf()[1]).toMatchObject({ service: 'metalplane-test', site: 'dc1', CommandsQueued: 1 });
  });

  it('has the Tracer off outside Lambda: no segment, no annotation, no X-Ray error', () => {
    const errors = vi.spyOn(console, 'error');
    const observed = instrument({
      service: 'metalplane-test',
      metricsEnabled: false,
      recorder: new MetricsRecorder(),
    });
    expect(observed.tracer.isTracingEnabled()).toBe(false);
    commandAnnotator(observed.tracer)(command('dc1'));
    const client = { middlewareStack: {} };
    expect(observed.capture(client)).toBe(client);
    expect(errors).not.toHaveBeenCalled();
  });

  it('loads the Tracer only where Powertools could turn tracing on (issue 18)', async () => {
    expect(tracingMayBeOn({})).toBe(false);
    expect(tracingMayBeOn({ AWS_EXECUTION_ENV: ' ' })).toBe(false);
    expect(
      tracingMayBeOn({ AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x', POWERTOOLS_TRACE_ENABLED: ' False ' }),
    ).toBe(false);
    expect(tracingMayBeOn({ AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x' })).toBe(true);
    expect(
      tracingMayBeOn({ AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x', POWERTOOLS_TRACE_ENABLED: 'true' }),
    ).toBe(true);
    expect(await loadTracing({})).toBeUndefined();
    const powertools = await loadTracing({ AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x' });
    expect(typeof powertools?.[0].Tracer).toBe('function');
    expect(typeof powertools?.[1].captureLambdaHandler).toBe('function');
  });
});
