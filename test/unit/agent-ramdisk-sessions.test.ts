/**
 * The ramdisk's sessions on the agent (agent/ramdisk/sessions.ts), on an injected clock:
 * one-time tokens, expiry, replacement, the bound, the step FIFO, first result wins, and
 * loss after three missed heartbeats.
 */
import { describe, expect, it } from 'vitest';
import { RamdiskSessionError, RamdiskSessions } from '../../agent/ramdisk/sessions.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const NODE_B = '2ce26c0b-03f2-4d2e-ae87-c02d7f33c124';
const HELLO = { version: '0.1.0', bootMac: '52:54:00:00:00:01' };

function setup(over: { maxSessions?: number; heartbeatIntervalMs?: number } = {}) {
  let now = 1_000_000;
  const sessions = new RamdiskSessions({
    heartbeatIntervalMs: 10_000,
    sweepIntervalMs: 0,
    now: () => now,
    ...over,
  });
  return {
    sessions,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('ramdisk tokens', () => {
  it('are random, base64url, at least 128 bits, and open one session', () => {
    const { sessions, advance } = setup();
    const token = sessions.mint(NODE, 60_000);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 256 bits
    expect(sessions.mint(NODE_B, 60_000)).not.toBe(token);
    const opened = sessions.hello(token, HELLO);
    expect(opened?.node).toBe(NODE);
    expect(opened?.session).toMatch(/^[A-Za-z0-9_-]{32}$/);
    // A hello repeated within 3 heartbeat intervals (its answer lost) gets the same session;
    // later, the used token opens nothing.
    expect(sessions.hello(token, HELLO)).toEqual(opened);
    expect(sessions.hello('x'.repeat(43), HELLO)).toBeUndefined();
    expect(sessions.describe(NODE)).toMatchObject({
      state: 'live',
      version: '0.1.0',
      bootMac: HELLO.bootMac,
    });
    advance(sessions.heartbeatIntervalMs);
    expect(sessions.heartbeat(opened?.session as string)).toEqual([]);
    advance(3 * sessions.heartbeatIntervalMs - 1);
    expect(sessions.heartbeat(opened?.session as string)).toEqual([]);
    expect(sessions.hello(token, HELLO)).toBeUndefined();
  });

  it('expire after their ttl', () => {
    const { sessions, advance } = setup();
    const token = sessions.mint(NODE, 60_000);
    expect(sessions.expecting(NODE)).toBe(true);
    advance(60_000);
    expect(sessions.expecting(NODE)).toBe(false);
    expect(sessions.hello(token, HELLO)).toBeUndefined();
    expect(sessions.size).toBe(0);
  });

  it('a new token for a node invalidates its older token and ends its session', async () => {
    const { sessions } = setup();
    const first = sessions.mint(NODE, 60_000);
    const second = sessions.mint(NODE, 60_000);
    expect(sessions.hello(first, HELLO)).toBeUndefined();
    const opened = sessions.hello(second, HELLO);
    expect(opened).toBeDefined();
    const waiting = sessions.runStep(NODE, { id: 'c1', name: 'inspect', args: {} });
    sessions.mint(NODE, 60_000);
    await expect(waiting).rejects.toThrow(/ended: the node is booted again/);
    expect(sessions.heartbeat(opened?.session as string)).toBeUndefined();
    expect(sessions.describe(NODE)).toBeUndefined();
    // Another node's token is untouched.
    const other = sessions.mint(NODE_B, 60_000);
    sessions.mint(NODE, 60_000);
    expect(sessions.hello(other, HELLO)?.node).toBe(NODE_B);
  });

  it('revoke withdraws only the token it names; forgetToken keeps the session', () => {
    const { sessions } = setup();
    const token = sessions.mint(NODE, 60_000);
    sessions.revoke(NODE, 'y'.repeat(43));
    expect(sessions.expecting(NODE)).toBe(true);
    sessions.revoke(NODE, token);
    expect(sessions.hello(token, HELLO)).toBeUndefined();
    const again = sessions.mint(NODE, 60_000);
    const opened = sessions.hello(again, HELLO);
    sessions.forgetToken(NODE);
    expect(sessions.heartbeat(opened?.session as string)).toEqual([]);
  });

  it('are bounded with the sessions: at most maxSessions, dead sessions make room first', () => {
    const { sessions, advance } = setup({ maxSessions: 2 });
    const a = sessions.mint(NODE, 60_000);
    sessions.mint(NODE_B, 60_000);
    expect(() => sessions.mint('3de26c0b-03f2-4d2e-ae87-c02d7f33c125', 60_000)).toThrow(RamdiskSessionError);
    expect(() => sessions.mint('3de26c0b-03f2-4d2e-ae87-c02d7f33c125', 60_000)).toThrow(
      /ramdisk\.max_sessions/,
    );
    // Re-minting for a node already counted replaces, it does not add.
    sessions.mint(NODE_B, 60_000);
    sessions.hello(a, HELLO);
    advance(30_000); // NODE's session is lost
    expect(sessions.describe(NODE)?.state).toBe('lost');
    expect(() => sessions.mint('3de26c0b-03f2-4d2e-ae87-c02d7f33c125', 60_000)).not.toThrow();
    expect(sessions.size).toBe(2);
    expect(sessions.describe(NODE)).toBeUndefined();
  });
});

describe('ramdisk sessions', () => {
  function live() {
    const s = setup();
    const opened = s.sessions.hello(s.sessions.mint(NODE, 60_000), HELLO);
    return { ...s, id: opened?.session as string };
  }

  it('hand the FIFO out one step at a time, the one in flight again until its result, and resolve with the first result', async () => {
    const { sessions, id } = live();
    expect(sessions.heartbeat(id)).toEqual([]);
    const first = sessions.runStep(NODE, { id: 'c1', name: 'inspect', args: {} });
    const second = sessions.runStep(NODE, { id: 'c2', name: 'erase_devices_metadata', args: {} });
    expect(sessions.heartbeat(id)).toEqual([{ id: 'c1', name: 'inspect', args: {} }]);
    // c1 in flight: given again (its answer may have been lost), nothing else.
    expect(sessions.heartbeat(id)).toEqual([{ id: 'c1', name: 'inspect', args: {} }]);
    expect(sessions.describe(NODE)).toMatchObject({ pending: 1, inFlight: 'c1' });
    expect(sessions.result(id, 'c2', { status: 'succeeded', result: {} })).toBe('not-given');
    expect(sessions.result(id, 'c1', { status: 'succeeded', result: { inventory: { n: 1 } } })).toBe(
      'stored',
    );
    expect(sessions.result(id, 'c1', { status: 'failed', error: 'late' })).toBe('duplicate');
    await expect(first).resolves.toEqual({ status: 'succeeded', result: { inventory: { n: 1 } } });
    expect(sessions.heartbeat(id)).toEqual([{ id: 'c2', name: 'erase_devices_metadata', args: {} }]);
    expect(sessions.result(id, 'c2', { status: 'failed', error: 'disk busy' })).toBe('stored');
    await expect(second).resolves.toEqual({ status: 'failed', error: 'disk busy' });
    expect(sessions.result('nope', 'c2', { status: 'failed', error: 'x' })).toBe('unknown-session');
  });

  it('give a step id not usable on the wire, or already used, a fresh one', async () => {
    const { sessions, id } = live();
    void sessions.runStep(NODE, { id: 'has space', name: 'inspect', args: {} });
    const [step] = sessions.heartbeat(id) ?? [];
    expect(step?.id).toMatch(/^[A-Za-z0-9_-]+$/);
    sessions.result(id, step?.id as string, { status: 'succeeded', result: {} });
    void sessions.runStep(NODE, { id: step?.id as string, name: 'inspect', args: {} });
    const [again] = sessions.heartbeat(id) ?? [];
    expect(again?.id).not.toBe(step?.id);
  });

  it('refuse a step for a node without a session', async () => {
    const { sessions } = setup();
    await expect(sessions.runStep(NODE, { id: 'c1', name: 'inspect', args: {} })).rejects.toThrow(
      `no ramdisk session for node ${NODE}: has it booted?`,
    );
  });

  it('are lost after 3 missed heartbeat intervals: waiting steps fail, the session id is refused', async () => {
    const { sessions, advance, id } = live();
    const step = sessions.runStep(NODE, { id: 'c1', name: 'inspect', args: {} });
    advance(29_999);
    expect(sessions.heartbeat(id)).toHaveLength(1); // just in time: c1 given
    advance(29_999);
    expect(sessions.describe(NODE)?.state).toBe('live');
    advance(1);
    expect(sessions.describe(NODE)).toMatchObject({
      state: 'lost',
      reason: expect.stringMatching(/no heartbeat for 30 s/),
    });
    await expect(step).rejects.toThrow(/is lost: no heartbeat/);
    expect(sessions.heartbeat(id)).toBeUndefined();
    expect(sessions.result(id, 'c1', { status: 'succeeded', result: {} })).toBe('unknown-session');
    await expect(sessions.runStep(NODE, { id: 'c2', name: 'inspect', args: {} })).rejects.toThrow(
      /session for node .* is lost/,
    );
  });

  it('are declared lost by the sweep (the timer) without any access', () => {
    let now = 0;
    const lost: unknown[] = [];
    const sessions = new RamdiskSessions({
      heartbeatIntervalMs: 1000,
      sweepIntervalMs: 0,
      now: () => now,
      log: {
        debug() {},
        info() {},
        warn: (msg, fields) => lost.push({ msg, ...fields }),
        error() {},
        child() {
          return this;
        },
        addSecret() {},
      },
    });
    sessions.hello(sessions.mint(NODE, 60_000), HELLO);
    now = 3000;
    sessions.sweep();
    expect(lost).toEqual([{ msg: 'ramdisk session lost', node: NODE, reason: expect.any(String) }]);
  });

  it('end (not lost) after the ramdisk reboots or powers off', async () => {
    const { sessions, id } = live();
    const step = sessions.runStep(NODE, { id: 'c1', name: 'reboot', args: {} });
    sessions.heartbeat(id);
    sessions.result(id, 'c1', { status: 'succeeded', result: {} });
    await expect(step).resolves.toEqual({ status: 'succeeded', result: {} });
    expect(sessions.describe(NODE)?.state).toBe('ended');
  });

  it('withdraw an aborted step not yet given; an aborted given step still takes its result', async () => {
    const { sessions, id } = live();
    const abort = new AbortController();
    const waiting = sessions.runStep(NODE, { id: 'c1', name: 'inspect', args: {} }, abort.signal);
    abort.abort(new Error('deadline'));
    await expect(waiting).rejects.toThrow('deadline');
    expect(sessions.heartbeat(id)).toEqual([]);

    const abort2 = new AbortController();
    const given = sessions.runStep(NODE, { id: 'c2', name: 'inspect', args: {} }, abort2.signal);
    expect(sessions.heartbeat(id)).toHaveLength(1);
    abort2.abort(new Error('deadline'));
    await expect(given).rejects.toThrow('deadline');
    expect(sessions.result(id, 'c2', { status: 'succeeded', result: {} })).toBe('stored');
  });

  it('wake the ramdisk.wait waiters on hello; refuse to wait for a boot not prepared', async () => {
    const { sessions } = setup();
    await expect(sessions.waitForHello(NODE)).rejects.toThrow(/no ramdisk boot prepared for node/);
    const token = sessions.mint(NODE, 60_000);
    const waiting = sessions.waitForHello(NODE);
    const abort = new AbortController();
    const aborted = sessions.waitForHello(NODE, abort.signal);
    abort.abort(new Error('deadline'));
    await expect(aborted).rejects.toThrow('deadline');
    sessions.hello(token, HELLO);
    await expect(waiting).resolves.toMatchObject({ node: NODE, state: 'live', version: '0.1.0' });
    await expect(sessions.waitForHello(NODE)).resolves.toMatchObject({ state: 'live' });
  });

  it('refuse a heartbeat interval that is not whole seconds', () => {
    expect(() => new RamdiskSessions({ heartbeatIntervalMs: 1500, sweepIntervalMs: 0 })).toThrow(RangeError);
  });
});
