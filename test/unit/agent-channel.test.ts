import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  ACTIVE_PULL_WINDOW_MS,
  Backoff,
  type Channel,
  MAX_FRAME_BYTES,
  periodicPullDue,
  sendText,
} from '../../agent/channel.ts';
import { createLogger, silentLogger } from '../../agent/log.ts';
import { Reporter } from '../../agent/reporter.ts';
import { Outbox, type Report } from '../../agent/state.ts';
import { startWebSocketGateway, type WebSocketGateway } from '../../local/ws-gateway.ts';
import type { AgentMessage } from '../../protocol/messages.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

describe('backoff', () => {
  it('full jitter under a ceiling that doubles up to the cap', () => {
    const top = new Backoff({ initialMs: 500, maxMs: 30_000, random: () => 0.999999 });
    const ceilings = Array.from({ length: 10 }, () => {
      const c = top.ceiling();
      const d = top.next();
      expect(d).toBeLessThan(c);
      expect(d).toBeGreaterThanOrEqual(c - 1);
      return c;
    });
    expect(ceilings).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000]);
    const bottom = new Backoff({ initialMs: 500, maxMs: 30_000, random: () => 0 });
    expect(Array.from({ length: 5 }, () => bottom.next())).toEqual([0, 0, 0, 0, 0]);
  });

  it('with real randomness every delay is within [0, ceiling) and spread out; reset starts over', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000 });
    const delays: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const c = b.ceiling();
      const d = b.next();
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(c);
      if (i >= 4) delays.push(d);
    }
    // At the cap the delays cover the range (full jitter, not a fixed wait).
    expect(Math.min(...delays)).toBeLessThan(100);
    expect(Math.max(...delays)).toBeGreaterThan(900);
    expect(b.attempt).toBe(2000);
    expect(b.ceiling()).toBe(1000);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.ceiling()).toBe(100);
    // A huge attempt count does not overflow into Infinity/NaN.
    b.attempt = 5000;
    expect(b.ceiling()).toBe(1000);
  });
});

describe('the periodic pull', () => {
  const SHORT = 30_000;
  const IDLE = 300_000;
  /** The pulls a timer ticking every SHORT makes over `spanMs`, the last reasoned pull at `activeAt`. */
  function pullsOver(spanMs: number, activeAt: number, idle: number | undefined): number[] {
    let lastPullAt = activeAt;
    const pulls: number[] = [];
    for (let now = activeAt + SHORT; now <= activeAt + spanMs; now += SHORT) {
      if (periodicPullDue({ now, activeAt, lastPullAt, intervalMs: SHORT, idleIntervalMs: idle })) {
        pulls.push(now - activeAt);
        lastPullAt = now;
      }
    }
    return pulls;
  }

  it('keeps the short interval for the active window after a pull for a reason (a lost answer comes back after the visibility timeout)', () => {
    const pulls = pullsOver(ACTIVE_PULL_WINDOW_MS, 0, IDLE);
    expect(pulls).toStrictEqual([30_000, 60_000, 90_000, 120_000, 150_000, 180_000]);
    // Past the visibility timeout (60 s) there are pulls left in the window.
    expect(pulls.filter((at) => at > 60_000).length).toBeGreaterThanOrEqual(2);
  });

  it('slows to the idle interval once idle: an idle hour is 12 pulls, not 120', () => {
    const hour = 3_600_000;
    const pulls = pullsOver(hour, 0, IDLE);
    const idlePulls = pulls.filter((at) => at > ACTIVE_PULL_WINDOW_MS);
    // About every 5 minutes, never closer together than the idle interval minus a tick.
    for (let i = 1; i < idlePulls.length; i++) {
      expect((idlePulls[i] as number) - (idlePulls[i - 1] as number)).toBe(IDLE);
    }
    expect(pulls.length).toBeLessThanOrEqual(6 + 12);
    expect((idlePulls[0] as number) - ACTIVE_PULL_WINDOW_MS).toBeLessThanOrEqual(IDLE);
  });

  it('without an idle interval (or one not longer), every tick pulls', () => {
    expect(pullsOver(600_000, 0, undefined)).toHaveLength(20);
    expect(pullsOver(600_000, 0, SHORT)).toHaveLength(20);
  });
});

describe('sendText', () => {
  it('fragments messages over 32 KiB into frames the API Gateway quota accepts', async () => {
    const received: string[] = [];
    let gateway: WebSocketGateway | undefined;
    gateway = await startWebSocketGateway({
      log: () => {},
      handler: async (event) => {
        if (event.requestContext.routeKey === '$default') received.push(event.body ?? '');
        return { statusCode: 200 };
      },
    });
    cleanups.push(() => gateway?.close());
    const ws = new WebSocket(gateway.url, { perMessageDeflate: false });
    cleanups.push(() => ws.terminate());
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    let closed: number | undefined;
    ws.on('close', (code) => {
      closed = code;
    });
    const big = JSON.stringify({ data: 'é'.repeat(50_000) }); // ~100 KB, multi-byte characters across frame edges
    expect(Buffer.byteLength(big)).toBeGreaterThan(3 * MAX_FRAME_BYTES);
    await sendText(ws, big);
    await sendText(ws, '{"small":true}');
    const end = Date.now() + 5000;
    while (received.length < 2 && closed === undefined && Date.now() < end)
      await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBeUndefined();
    expect(received).toEqual([big, '{"small":true}']);

    // Unfragmented, the same message breaks the quota: the gateway closes with 1009.
    ws.send(big);
    while (closed === undefined && Date.now() < end + 5000) await new Promise((r) => setTimeout(r, 10));
    expect(closed).toBe(1009);
  });
});

describe('reporter (outbox replay)', () => {
  function fakeChannel() {
    const sent: AgentMessage[] = [];
    const state = { up: false, failNext: false };
    const channel = {
      get up() {
        return state.up;
      },
      async send(msg: AgentMessage) {
        if (!state.up) throw new Error('down');
        if (state.failNext) {
          state.failNext = false;
          state.up = false;
          throw new Error('socket closed');
        }
        await new Promise((r) => setTimeout(r, 1));
        sent.push(msg);
      },
    } as unknown as Channel;
    return { channel, sent, state };
  }
  const result = (id: string): Report => ({
    v: 1,
    type: 'command_result',
    command_id: id,
    receipt: `r-${id}`,
    status: 'succeeded',
    finished_at: new Date().toISOString(),
  });
  const ids = (msgs: AgentMessage[]) => msgs.map((m) => (m as { command_id?: string }).command_id ?? m.type);

  it('buffers while offline and replays oldest first, new reports behind the backlog, across restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-reporter-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { channel, sent, state } = fakeChannel();
    let outbox = await Outbox.open(dir);
    let reporter = new Reporter({ outbox, channel: () => channel, log: silentLogger, timer: false });
    for (const id of ['a', 'b', 'c']) await reporter.add(result(id));
    expect(sent).toEqual([]);
    expect(reporter.length).toBe(3);

    // The agent restarts while offline: the outbox survives.
    await outbox.close();
    outbox = await Outbox.open(dir);
    reporter = new Reporter({ outbox, channel: () => channel, log: silentLogger, timer: false });
    expect(reporter.length).toBe(3);

    // Up: replay, and a report made during the replay goes after the backlog.
    state.up = true;
    const pumping = reporter.pump();
    await reporter.add(result('d'));
    await pumping;
    await reporter.pump();
    expect(ids(sent)).toEqual(['a', 'b', 'c', 'd']);
    // Sent, not yet acknowledged: still held, and not sent again before the resend time.
    expect(reporter.length).toBe(4);
    expect(reporter.unacknowledged).toBe(4);
    await reporter.pump();
    expect(sent).toHaveLength(4);
    for (const id of ['a', 'b', 'c', 'd']) await reporter.acknowledged(id);
    expect(reporter.length).toBe(0);

    // A send that fails keeps the report (and everything after it) for the next connection.
    state.failNext = true;
    await reporter.add(result('e'));
    await reporter.add(result('f'));
    expect(reporter.length).toBe(2);
    state.up = true;
    await reporter.pump();
    expect(ids(sent)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    const flushed = reporter.flush(5000);
    await reporter.acknowledged('e');
    await reporter.acknowledged('f');
    expect(await flushed).toBe(true);
    await outbox.close();
  });

  it('sends an unacknowledged result again after the resend time, at once on a new connection, and lets go after the last try', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-reporter-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { channel, sent, state } = fakeChannel();
    const outbox = await Outbox.open(dir);
    let now = 0;
    const reporter = new Reporter({
      outbox,
      channel: () => channel,
      log: silentLogger,
      timer: false,
      resendMs: 1000,
      maxSends: 3,
      now: () => now,
    });
    state.up = true;
    await reporter.add(result('x'));
    await reporter.add({ v: 1, type: 'power_report', reports: [] });
    await reporter.pump();
    // The power report is fire-and-forget; the result waits for its acknowledgement.
    expect(ids(sent)).toEqual(['x', 'power_report']);
    expect(reporter.length).toBe(1);

    now = 999;
    await reporter.pump();
    expect(ids(sent)).toEqual(['x', 'power_report']);
    now = 1000;
    await reporter.pump();
    expect(ids(sent)).toEqual(['x', 'power_report', 'x']);
    expect(reporter.resent).toBe(1);

    // A new connection: whatever waited on the old one goes again at once.
    await reporter.reconnected();
    expect(ids(sent)).toEqual(['x', 'power_report', 'x', 'x']);
    // That was the third send: the result is let go (the queue delivers the command again).
    expect(reporter.length).toBe(0);
    expect(reporter.unacknowledged).toBe(0);
    await outbox.close();
  });
});

describe('log', () => {
  it('writes one JSON line per event and never a credential', () => {
    const out: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => out.push(l), fields: { component: 'agent' } });
    const credential = `mpa_${'x'.repeat(22)}_${'y'.repeat(43)}`;
    log.addSecret('s3cr3t-value-123');
    log.debug('hidden');
    log.info('hello', { n: 1 });
    log.warn(`echo ${credential}`, {
      credential,
      nested: { token: 'abc', headers: { authorization: 'Bearer x' } },
    });
    log.error('oops s3cr3t-value-123', { error: new Error(`bad ${credential}`) });
    log.child({ command_id: 'c1' }).info('child');
    expect(out).toHaveLength(4);
    for (const line of out) {
      expect(line.endsWith('\n')).toBe(true);
      expect(line).not.toContain('yyyyyyyy');
      expect(line).not.toContain('s3cr3t-value-123');
    }
    const parsed = out.map((l) => JSON.parse(l));
    expect(parsed[0]).toMatchObject({
      level: 'info',
      msg: 'hello',
      n: 1,
      component: 'agent',
      time: expect.any(String),
    });
    expect(parsed[1]).toMatchObject({
      level: 'warn',
      msg: 'echo mpa_[redacted]',
      credential: '[redacted]',
      nested: { token: '[redacted]', headers: { authorization: '[redacted]' } },
    });
    expect(parsed[2]).toMatchObject({ msg: 'oops [redacted]', error: 'bad mpa_[redacted]' });
    expect(parsed[3]).toMatchObject({ msg: 'child', command_id: 'c1', component: 'agent' });
  });
});
