import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BUILTIN_ACTIONS } from '../../agent/drivers/builtin.ts';
import { ActionRegistry, defaultRegistry } from '../../agent/drivers/registry.ts';
import { type Action, ActionFailure } from '../../agent/drivers/types.ts';
import { Executor } from '../../agent/executor.ts';
import { silentLogger } from '../../agent/log.ts';
import { INTERRUPTED, Journal, type Report } from '../../agent/state.ts';
import type { Command } from '../../protocol/messages.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

type Event = { t: 'start' | 'end'; id: string; node: string };

/** `work`: waits args.ms (honouring the abort signal) and records when it starts and ends. */
function recordingRegistry(events: Event[], runs: Map<string, number>): ActionRegistry {
  const work: Action = {
    name: 'work',
    description: 'test',
    run: ({ command, args, signal }) =>
      new Promise((resolve, reject) => {
        runs.set(command.id, (runs.get(command.id) ?? 0) + 1);
        events.push({ t: 'start', id: command.id, node: command.node });
        const timer = setTimeout(
          () => {
            events.push({ t: 'end', id: command.id, node: command.node });
            resolve({ id: command.id });
          },
          (args.ms as number) ?? 10,
        );
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          events.push({ t: 'end', id: command.id, node: command.node });
          reject(new ActionFailure('aborted'));
        });
      }),
  };
  /** `hold`: runs until the test calls `release(id)` (or the command is aborted). */
  const hold: Action = {
    name: 'hold',
    description: 'test',
    run: ({ command, signal }) =>
      new Promise((resolve, reject) => {
        runs.set(command.id, (runs.get(command.id) ?? 0) + 1);
        events.push({ t: 'start', id: command.id, node: command.node });
        held.set(command.id, () => {
          events.push({ t: 'end', id: command.id, node: command.node });
          resolve({ id: command.id });
        });
        signal.addEventListener('abort', () => {
          events.push({ t: 'end', id: command.id, node: command.node });
          reject(new ActionFailure('aborted'));
        });
      }),
  };
  const registry = new ActionRegistry();
  for (const a of BUILTIN_ACTIONS) registry.registerAction(a);
  return registry.registerAction(work).registerAction(hold);
}

/** The running `hold` commands, by id: calling one lets its command finish. */
const held = new Map<string, () => void>();

async function setup(limit: number, registry?: ActionRegistry) {
  const dir = mkdtempSync(join(tmpdir(), 'agent-exec-'));
  const { journal } = await Journal.open(dir, { retentionMs: 86_400_000 });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => journal.close());
  const events: Event[] = [];
  const runs = new Map<string, number>();
  const reports: Report[] = [];
  const started: string[] = [];
  const executor = new Executor({
    limit,
    journal,
    registry: registry ?? recordingRegistry(events, runs),
    log: silentLogger,
    onStart: (c) => started.push(c.id),
    onResult: (r) => {
      reports.push(r);
    },
  });
  return { dir, journal, executor, events, runs, reports, started };
}

let seq = 0;
const command = (
  id: string,
  node: string,
  args: Record<string, unknown> = {},
  action = 'work',
  deadlineMs = 30_000,
): Command => ({
  id,
  node,
  action,
  args,
  deadline: new Date(Date.now() + deadlineMs).toISOString(),
  attempt: 1,
  receipt: `r-${id}-${++seq}`,
});

async function until(probe: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const resultOf = (reports: Report[], id: string) =>
  reports.filter(
    (r): r is Extract<Report, { type: 'command_result' }> =>
      r.type === 'command_result' && r.command_id === id,
  );

describe('executor', () => {
  it('runs one node strictly in arrival order, one at a time', async () => {
    const { executor, events, reports } = await setup(8);
    const ids = Array.from({ length: 12 }, (_, i) => `c${i}`);
    // Decreasing durations: any overlap or reordering would show.
    for (const [i, id] of ids.entries()) executor.submit(command(id, 'node-1', { ms: 24 - 2 * i }));
    await until(() => reports.length === 12, 'twelve results');
    expect(events.map((e) => `${e.t}:${e.id}`)).toEqual(ids.flatMap((id) => [`start:${id}`, `end:${id}`]));
    expect(reports.map((r) => (r as { command_id: string }).command_id)).toEqual(ids);
  });

  it('runs different nodes in parallel, never more than the limit', async () => {
    const { executor, events, reports } = await setup(4);
    for (let n = 0; n < 10; n++) {
      executor.submit(command(`a${n}`, `node-${n}`, { ms: 40 }));
      executor.submit(command(`b${n}`, `node-${n}`, { ms: 5 }));
    }
    expect(executor.running).toBe(4);
    expect(executor.queued).toBe(16);
    await until(() => reports.length === 20, 'twenty results');
    let running = 0;
    let peak = 0;
    for (const e of events) {
      running += e.t === 'start' ? 1 : -1;
      peak = Math.max(peak, running);
    }
    expect(peak).toBe(4);
    // Still per-node order: every a<n> ended before b<n> started.
    for (let n = 0; n < 10; n++) {
      const endA = events.findIndex((e) => e.t === 'end' && e.id === `a${n}`);
      const startB = events.findIndex((e) => e.t === 'start' && e.id === `b${n}`);
      expect(endA).toBeLessThan(startB);
    }
    expect(executor.load).toBe(0);
  });

  it('a slow node does not hold back the others', async () => {
    const { executor, reports } = await setup(2);
    // The slow one runs until released, so the fast ones cannot win by timing alone.
    executor.submit(command('slow', 'bmc-hangs', {}, 'hold'));
    for (let i = 0; i < 5; i++) executor.submit(command(`fast${i}`, `n${i}`, { ms: 1 }));
    await until(() => reports.length === 5, 'the fast ones');
    expect(resultOf(reports, 'slow')).toHaveLength(0);
    held.get('slow')?.();
    await until(() => reports.length === 6, 'the slow one');
    expect(resultOf(reports, 'slow')[0]).toMatchObject({ status: 'succeeded' });
  });

  it('runs an id once: a redelivery while held keeps the newest receipt; after, it is answered from the journal', async () => {
    const { executor, runs, reports, started } = await setup(8);
    const first = command('x', 'n', { ms: 30 });
    expect(executor.submit(first)).toBe('queued');
    const second = { ...first, receipt: 'r-second', attempt: 2 };
    expect(executor.submit(second)).toBe('duplicate');
    await until(() => reports.length === 1, 'result');
    expect(resultOf(reports, 'x')[0]).toMatchObject({
      status: 'succeeded',
      receipt: 'r-second',
      result: { id: 'x' },
    });

    const third = { ...first, receipt: 'r-third', attempt: 3 };
    expect(executor.submit(third)).toBe('replayed');
    await until(() => reports.length === 2, 'journal answer');
    const [a, b] = resultOf(reports, 'x');
    expect(b).toEqual({ ...a, receipt: 'r-third' });
    expect(runs.get('x')).toBe(1);
    expect(started).toEqual(['x']);
    expect(executor.deduplicated).toBe(2);
  });

  it('journals started before running and finished before reporting', async () => {
    const { executor, journal, reports } = await setup(1);
    let seenAtRun: unknown;
    const registry = new ActionRegistry().registerAction({
      name: 'peek',
      description: 'test',
      run: async ({ command: c }) => {
        seenAtRun = journal.get(c.id);
        return {};
      },
    });
    const exec2 = new Executor({
      limit: 1,
      journal,
      registry,
      log: silentLogger,
      onResult: (r) => {
        reports.push(r);
        expect(journal.get((r as { command_id: string }).command_id)?.status).toBe('succeeded');
      },
    });
    exec2.submit(command('p', 'n', {}, 'peek'));
    await until(() => reports.length === 1, 'result');
    expect(seenAtRun).toMatchObject({ id: 'p', startedAt: expect.any(String) });
    expect((seenAtRun as { status?: string }).status).toBeUndefined();
    expect(executor.load).toBe(0);
  });

  it('fails at the deadline, and refuses without running: past deadline, unknown action, bad args, disabled driver', async () => {
    const { executor, reports, started, events } = await setup(8);
    executor.submit(command('slow', 'n1', { ms: 5000 }, 'work', 80));
    executor.submit(command('late', 'n2', {}, 'work', -1));
    executor.submit(command('what', 'n3', {}, 'reboot_into_space'));
    executor.submit(command('bad', 'n4', { ms: 999_999 }, 'sleep'));
    executor.submit(command('drv', 'n5', { driver: 'ipmi' }, 'noop'));
    await until(() => reports.length === 5, 'five results');
    expect(resultOf(reports, 'slow')[0]!.error).toMatch(/^timed out: the deadline .* passed after \d+ ms$/);
    expect(resultOf(reports, 'late')[0]!.error).toMatch(/passed before the command started/);
    expect(resultOf(reports, 'what')[0]!.error).toBe('unknown action reboot_into_space');
    expect(resultOf(reports, 'bad')[0]!.error).toMatch(/sleep: args.ms must be an integer from 0 to 60000/);
    expect(resultOf(reports, 'drv')[0]!.error).toMatch(/driver ipmi is not enabled on this agent/);
    for (const r of reports) expect(r).toMatchObject({ status: 'failed' });
    expect(started).toEqual(['slow']);
    expect(events.filter((e) => e.t === 'start').map((e) => e.id)).toEqual(['slow']);
    expect(executor.executed.get('unknown failed')).toBe(1);
    expect(executor.executed.get('work failed')).toBe(2);
  });

  it('stop: drops queued commands, lets running ones finish within the grace, interrupts the rest', async () => {
    const { executor, reports, journal, runs } = await setup(2);
    executor.submit(command('quick', 'n1', { ms: 20 }));
    executor.submit(command('long', 'n2', { ms: 20_000 }));
    executor.submit(command('queued', 'n1', { ms: 1 }));
    // A grace of seconds against a 20 ms action: a busy machine cannot make it miss.
    await executor.stop(2000);
    expect(resultOf(reports, 'quick')[0]).toMatchObject({ status: 'succeeded' });
    expect(resultOf(reports, 'long')[0]).toMatchObject({ status: 'failed', error: INTERRUPTED });
    expect(journal.get('long')).toMatchObject({ status: 'failed', error: INTERRUPTED });
    expect(runs.has('queued')).toBe(false);
    expect(journal.get('queued')).toBeUndefined();
    expect(executor.submit(command('later', 'n3'))).toBe('refused');
  });

  it('the built-in actions: noop, sleep, fail', async () => {
    const { executor, reports } = await setup(8, defaultRegistry(['fake-hardware']));
    executor.submit(command('n', 'a', {}, 'noop'));
    executor.submit(command('s', 'b', { ms: 30 }, 'sleep'));
    executor.submit(command('f', 'c', { message: 'as asked' }, 'fail'));
    executor.submit(command('f2', 'd', {}, 'fail'));
    await until(() => reports.length === 4, 'results');
    expect(resultOf(reports, 'n')[0]).toMatchObject({ status: 'succeeded', result: {} });
    expect(resultOf(reports, 's')[0]!.result!.slept_ms).toBeGreaterThanOrEqual(29);
    expect(resultOf(reports, 'f')[0]).toMatchObject({ status: 'failed', error: 'as asked' });
    expect(resultOf(reports, 'f2')[0]).toMatchObject({ status: 'failed', error: 'requested failure' });
  });
});
