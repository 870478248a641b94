/**
 * `POST /ramdisk/v1` (agent/ramdisk/endpoint.ts) mounted on the agent's HTTP boot server,
 * over real HTTP on 127.0.0.1: every status of the protocol, oversized and bad bodies,
 * wrong sessions, duplicate results, the rate limit, and the log forwarding.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpBootServer } from '../../agent/boot/http-server.ts';
import { createLogger } from '../../agent/log.ts';
import { MAX_LOG_LINES, ramdiskRoute, TokenBuckets } from '../../agent/ramdisk/endpoint.ts';
import { RamdiskSessions } from '../../agent/ramdisk/sessions.ts';
import { MAX_RAMDISK_MESSAGE_BYTES, validateRamdiskAnswer } from '../../protocol/ramdisk.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const lines: Array<Record<string, unknown>> = [];
let dir: string;
let server: HttpBootServer;
let sessions: RamdiskSessions;
const url = () => `http://127.0.0.1:${server.port}/ramdisk/v1`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ramdisk-endpoint-'));
  sessions = new RamdiskSessions({ heartbeatIntervalMs: 5000 });
  const log = createLogger({ level: 'debug', write: (line) => lines.push(JSON.parse(line)) });
  server = await HttpBootServer.start({
    root: dir,
    port: 0,
    extraRoutes: ramdiskRoute({ sessions, log, rateLimit: { burst: 1000, perSecond: 1000 } }),
  });
});
afterAll(async () => {
  await server?.close();
  sessions?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function post(body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url(), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const answer = (await res.json()) as Record<string, unknown>;
  expect(validateRamdiskAnswer(answer), JSON.stringify(answer)).toBe(true);
  return { status: res.status, answer, headers: res.headers };
}

async function hello(): Promise<string> {
  const token = sessions.mint(NODE, 60_000);
  const { status, answer } = await post({ v: 1, type: 'hello', token, version: '0.1.0', boot_mac: null });
  expect(status).toBe(200);
  return answer.session as string;
}

describe('POST /ramdisk/v1', () => {
  it('hello with a minted token opens one session (a repeated hello gets it again)', async () => {
    const token = sessions.mint(NODE, 60_000);
    const message = { v: 1, type: 'hello', token, version: '0.1.0', boot_mac: '52:54:00:00:00:01' };
    const first = await post(message);
    expect(first.status).toBe(200);
    expect(first.answer).toEqual({
      v: 1,
      type: 'hello',
      session: expect.any(String),
      heartbeat_interval_s: 5,
    });
    expect(first.headers.get('cache-control')).toBe('no-store');
    // Its answer lost, the ramdisk says hello again: the same session, not a second one.
    const again = await post(message);
    expect(again).toMatchObject({ status: 200, answer: { session: first.answer.session } });
    // Neither the token nor the session id is ever logged.
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain(token);
    expect(logged).not.toContain(first.answer.session as string);
    expect(lines.some((l) => l.msg === 'ramdisk said hello' && l.node === NODE)).toBe(true);
  });

  it('heartbeat answers the steps; result is stored once; a step not given is 409', async () => {
    const session = await hello();
    expect((await post({ v: 1, type: 'heartbeat', session })).answer).toEqual({
      v: 1,
      type: 'heartbeat',
      steps: [],
    });
    const running = sessions.runStep(NODE, { id: 'cmd-1', name: 'inspect', args: {} });
    expect((await post({ v: 1, type: 'heartbeat', session })).answer).toEqual({
      v: 1,
      type: 'heartbeat',
      steps: [{ id: 'cmd-1', name: 'inspect', args: {} }],
    });
    const notGiven = await post({
      v: 1,
      type: 'result',
      session,
      step: 'cmd-2',
      status: 'succeeded',
      result: {},
    });
    expect(notGiven.status).toBe(409);
    const result = {
      v: 1,
      type: 'result',
      session,
      step: 'cmd-1',
      status: 'succeeded',
      result: { inventory: { a: 1 } },
    };
    expect(await post(result)).toMatchObject({ status: 200, answer: { v: 1, type: 'ok' } });
    // Sent again (the ack was lost): acknowledged, the first kept.
    expect(await post({ ...result, result: { inventory: { a: 2 } } })).toMatchObject({ status: 200 });
    await expect(running).resolves.toEqual({ status: 'succeeded', result: { inventory: { a: 1 } } });
  });

  it('a wrong session is 401 for heartbeat, result and log', async () => {
    const session = 'not-a-session';
    expect((await post({ v: 1, type: 'heartbeat', session })).status).toBe(401);
    expect(
      (await post({ v: 1, type: 'result', session, step: 's', status: 'failed', error: 'x' })).status,
    ).toBe(401);
    const log = { v: 1, type: 'log', session, lines: [{ at: 'now', level: 'info', message: 'hi' }] };
    expect((await post(log)).status).toBe(401);
  });

  it('log lines go to the agent log with node, step and progress; long messages cut; the token masked', async () => {
    const session = await hello();
    lines.length = 0;
    const { status } = await post({
      v: 1,
      type: 'log',
      session,
      lines: [
        { at: '2026-01-01T00:00:00Z', level: 'info', message: 'erasing', step: 'cmd-9', progress: 0.5 },
        {
          at: '2026-01-01T00:00:01Z',
          level: 'warn',
          message: `cmdline mp.token=abcdefghijklmnopqrstu ${session}`,
        },
        { at: '2026-01-01T00:00:02Z', level: 'error', message: 'x'.repeat(4000) },
      ],
    });
    expect(status).toBe(200);
    expect(lines[0]).toMatchObject({
      level: 'info',
      msg: 'ramdisk: erasing',
      node: NODE,
      step: 'cmd-9',
      progress: 0.5,
    });
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'ramdisk: cmdline mp.token=[redacted] [redacted]' });
    expect(lines[2]?.level).toBe('error');
    expect(String(lines[2]?.msg).length).toBeLessThan(1100);
  });

  it('forwards at most MAX_LOG_LINES lines of one message and says how many it dropped', async () => {
    const session = await hello();
    lines.length = 0;
    const many = Array.from({ length: MAX_LOG_LINES + 5 }, (_, i) => ({
      at: 't',
      level: 'debug',
      message: `l${i}`,
    }));
    expect((await post({ v: 1, type: 'log', session, lines: many })).status).toBe(200);
    expect(lines.filter((l) => String(l.msg).startsWith('ramdisk: l'))).toHaveLength(MAX_LOG_LINES);
    expect(lines.at(-1)).toMatchObject({ msg: 'ramdisk log lines dropped', dropped: 5, node: NODE });
  });

  it('bad JSON, a wrong Content-Type and a message the schema refuses are 400', async () => {
    expect((await post('{"v":1,')).status).toBe(400);
    expect(
      (await post({ v: 1, type: 'heartbeat', session: 'abc' }, { 'Content-Type': 'text/plain' })).status,
    ).toBe(400);
    expect((await post({ v: 2, type: 'heartbeat', session: 'abc' })).status).toBe(400);
    expect((await post({ v: 1, type: 'hello', token: 'short', version: '1', boot_mac: null })).status).toBe(
      400,
    );
    expect((await post({ v: 1, type: 'heartbeat', session: 'abc', extra: 1 })).status).toBe(400);
    expect(
      (
        await post(
          { v: 1, type: 'heartbeat', session: 'abc' },
          { 'Content-Type': 'application/json; charset=utf-8' },
        )
      ).status,
    ).toBe(401);
  });

  it('a body over MAX_RAMDISK_MESSAGE_BYTES is 413, by Content-Length or counted (chunked)', async () => {
    const big = JSON.stringify({ v: 1, type: 'heartbeat', session: 'x'.repeat(MAX_RAMDISK_MESSAGE_BYTES) });
    expect((await post(big)).status).toBe(413);
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(
        url(),
        { method: 'POST', headers: { 'Content-Type': 'application/json' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      const chunk = 'x'.repeat(64 * 1024);
      let sent = 0;
      const write = () => {
        while (sent <= MAX_RAMDISK_MESSAGE_BYTES + chunk.length) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', write);
        }
        req.end();
      };
      write();
    });
    expect(chunked).toBe(413);
  });

  it('other methods are 405, other paths under /ramdisk/ 404, the rest is the static server', async () => {
    const get = await fetch(url());
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(((await get.json()) as { type: string }).type).toBe('error');
    expect((await fetch(`${url()}/x`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.port}/ramdisk/v2`, { method: 'POST' })).status).toBe(404);
    const other = await fetch(`http://127.0.0.1:${server.port}/ramdiskette`);
    expect(other.status).toBe(404);
    expect(other.headers.get('content-type')).toContain('text/plain');
  });
});

describe('the rate limit', () => {
  it('answers 429 once a remote address spent its bucket, and refills', async () => {
    const tight = await HttpBootServer.start({
      root: dir,
      port: 0,
      extraRoutes: ramdiskRoute({
        sessions,
        log: createLogger({ write: () => {} }),
        rateLimit: { burst: 3, perSecond: 0.001 },
      }),
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`http://127.0.0.1:${tight.port}/ramdisk/v1`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ v: 1, type: 'heartbeat', session: 'nope' }),
        });
        statuses.push(res.status);
        if (res.status === 429) expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        await res.arrayBuffer();
      }
      expect(statuses).toEqual([401, 401, 401, 429, 429]);
    } finally {
      await tight.close();
    }
  });

  it('token buckets refill at their rate and stay bounded in clients', () => {
    let now = 0;
    const buckets = new TokenBuckets({ burst: 2, perSecond: 1, maxClients: 3 }, () => now);
    expect([buckets.take('a'), buckets.take('a'), buckets.take('a')]).toEqual([true, true, false]);
    now = 1000;
    expect([buckets.take('a'), buckets.take('a')]).toEqual([true, false]);
    for (const c of ['b', 'c', 'd', 'e']) expect(buckets.take(c)).toBe(true);
    // 'a' was forgotten to keep 3 clients: it starts again with a full bucket.
    expect(buckets.take('a')).toBe(true);
  });
});
