import {
  appendFileSync,
  chmodSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  acquireLock,
  CredentialError,
  INTERRUPTED,
  Journal,
  Outbox,
  type Report,
  readCredential,
  recoverInterrupted,
  writeCredential,
} from '../../agent/state.ts';
import type { Command } from '../../protocol/messages.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'agent-state-'));
  dirs.push(d);
  return d;
}

const cmd = (id: string, node = 'n1'): Command => ({
  id,
  node,
  action: 'noop',
  args: {},
  deadline: new Date(Date.now() + 60_000).toISOString(),
  attempt: 1,
  receipt: `r-${id}`,
});
const DAY = 86_400_000;
const lines = (file: string) => readFileSync(file, 'utf8').split('\n').filter(Boolean);

describe('journal', () => {
  it('remembers finished commands across a reopen', async () => {
    const dir = tmp();
    const { journal } = await Journal.open(dir, { retentionMs: DAY });
    await journal.start(cmd('a'));
    await journal.finish(cmd('a'), { status: 'succeeded', result: { x: 1 } });
    await journal.start(cmd('b'));
    await journal.finish(cmd('b'), { status: 'failed', error: 'no' });
    await journal.close();

    const again = await Journal.open(dir, { retentionMs: DAY });
    expect(again.interrupted).toEqual([]);
    expect(again.journal.get('a')).toMatchObject({ status: 'succeeded', result: { x: 1 }, receipt: 'r-a' });
    expect(again.journal.get('a')?.startedAt).toBeDefined();
    expect(again.journal.get('b')).toMatchObject({ status: 'failed', error: 'no' });
    expect(again.journal.get('c')).toBeUndefined();
    await again.journal.close();
  });

  it('a crash between started and finished: reported failed with INTERRUPTED, journaled, never re-run', async () => {
    const dir = tmp();
    const first = await Journal.open(dir, { retentionMs: DAY });
    await first.journal.start(cmd('done'));
    await first.journal.finish(cmd('done'), { status: 'succeeded', result: {} });
    await first.journal.start(cmd('cut', 'n2'));
    // ...the process dies here: no finish, no close.

    const second = await Journal.open(dir, { retentionMs: DAY });
    expect(second.interrupted.map((e) => e.id)).toEqual(['cut']);
    expect(second.interrupted[0]).toMatchObject({ node: 'n2', action: 'noop', receipt: 'r-cut' });
    const outbox = await Outbox.open(dir);
    await recoverInterrupted(second.interrupted, second.journal, outbox);
    expect(outbox.entries().map((e) => e.msg)).toEqual([
      expect.objectContaining({
        type: 'command_result',
        command_id: 'cut',
        receipt: 'r-cut',
        status: 'failed',
        error: INTERRUPTED,
      }),
    ]);
    expect(second.journal.get('cut')).toMatchObject({ status: 'failed', error: INTERRUPTED });
    await second.journal.close();
    await outbox.close();

    // A third start finds nothing left to recover: the interruption is final.
    const third = await Journal.open(dir, { retentionMs: DAY });
    expect(third.interrupted).toEqual([]);
    expect(third.journal.get('cut')).toMatchObject({ status: 'failed', error: INTERRUPTED });
    await third.journal.close();
    expect(INTERRUPTED).toBe('interrupted: the agent stopped while it ran');
  });

  it('compacts at open: one line per command, expired entries dropped', async () => {
    const dir = tmp();
    let now = Date.parse('2030-01-01T00:00:00Z');
    const clock = () => now;
    const first = await Journal.open(dir, { retentionMs: DAY, now: clock });
    const at = (ms: number) => new Date(ms).toISOString();
    for (const id of ['old1', 'old2']) {
      await first.journal.start(cmd(id), new Date(now));
      await first.journal.finish(cmd(id), { status: 'succeeded', finishedAt: at(now) });
    }
    now += 2 * DAY;
    await first.journal.start(cmd('new'), new Date(now));
    await first.journal.finish(cmd('new'), { status: 'succeeded', finishedAt: at(now) });
    await first.journal.close();
    const file = join(dir, 'journal.jsonl');
    expect(lines(file)).toHaveLength(6);

    const second = await Journal.open(dir, { retentionMs: DAY, now: clock });
    expect(second.expired).toBe(2);
    expect(second.journal.get('old1')).toBeUndefined();
    expect(second.journal.get('new')).toMatchObject({ status: 'succeeded' });
    expect(lines(file)).toHaveLength(1);
    expect(JSON.parse(lines(file)[0]!)).toMatchObject({ r: 'f', id: 'new', status: 'succeeded' });
    await second.journal.close();
  });

  it('tolerates a torn last line and skips unreadable ones', async () => {
    const dir = tmp();
    const first = await Journal.open(dir, { retentionMs: DAY });
    await first.journal.start(cmd('a'));
    await first.journal.finish(cmd('a'), { status: 'succeeded' });
    await first.journal.start(cmd('b'));
    await first.journal.close();
    const file = join(dir, 'journal.jsonl');
    // The process died while writing b's finished line.
    appendFileSync(file, '{"r":"f","id":"b","node":"n1","action":"no');
    const second = await Journal.open(dir, { retentionMs: DAY });
    expect(second.damaged).toBe(1);
    expect(second.journal.get('a')).toMatchObject({ status: 'succeeded' });
    // b's finish never made it to disk: it counts as interrupted.
    expect(second.interrupted.map((e) => e.id)).toEqual(['b']);
    await second.journal.finish(second.interrupted[0]!, { status: 'failed', error: INTERRUPTED });
    await second.journal.close();
    // The compacted file has no torn line left; later appends start on a fresh line.
    for (const line of lines(file)) expect(() => JSON.parse(line)).not.toThrow();

    writeFileSync(file, `garbage\n${readFileSync(file, 'utf8')}`);
    const third = await Journal.open(dir, { retentionMs: DAY });
    expect(third.damaged).toBe(1);
    expect(third.journal.get('b')).toMatchObject({ status: 'failed' });
    await third.journal.close();
  });

  it('coalesces concurrent appends and keeps them all', async () => {
    const dir = tmp();
    const { journal } = await Journal.open(dir, { retentionMs: DAY });
    await Promise.all(Array.from({ length: 200 }, (_, i) => journal.start(cmd(`c${i}`, `n${i}`))));
    await journal.close();
    expect(lines(join(dir, 'journal.jsonl'))).toHaveLength(200);
    const again = await Journal.open(dir, { retentionMs: DAY });
    expect(again.interrupted).toHaveLength(200);
    await again.journal.close();
  });
});

describe('outbox', () => {
  const result = (id: string): Report => ({
    v: 1,
    type: 'command_result',
    command_id: id,
    receipt: `r-${id}`,
    status: 'succeeded',
    result: {},
    finished_at: new Date().toISOString(),
  });

  it('keeps what was not sent, in order, across a restart, and numbers on after it', async () => {
    const dir = tmp();
    const outbox = await Outbox.open(dir);
    for (const id of ['r1', 'r2', 'r3', 'r4']) await outbox.add(result(id));
    await outbox.done(outbox.peek()!.seq); // r1 sent
    await outbox.done(outbox.entries()[1]!.seq); // r3 sent (out of order is allowed)
    await outbox.close();

    const again = await Outbox.open(dir);
    expect(again.entries().map((e) => (e.msg as { command_id: string }).command_id)).toEqual(['r2', 'r4']);
    const added = await again.add(result('r5'));
    expect(added.seq).toBeGreaterThan(again.entries()[1]!.seq);
    expect(again.entries().map((e) => (e.msg as { command_id: string }).command_id)).toEqual([
      'r2',
      'r4',
      'r5',
    ]);
    await again.close();
    // Compacted at open: only pending reports on disk (r2, r4) plus the new r5.
    expect(lines(join(dir, 'outbox.jsonl'))).toHaveLength(3);
  });

  it('drops the oldest report beyond its bound', async () => {
    const dir = tmp();
    const outbox = await Outbox.open(dir, { maxEntries: 2 });
    for (const id of ['a', 'b', 'c']) await outbox.add(result(id));
    expect(outbox.entries().map((e) => (e.msg as { command_id: string }).command_id)).toEqual(['b', 'c']);
    await outbox.close();
    const again = await Outbox.open(dir, { maxEntries: 2 });
    expect(again.length).toBe(2);
    await again.close();
  });
});

describe('credential and lock', () => {
  it('stores the credential 0600 atomically and refuses one others can read', async () => {
    const dir = join(tmp(), 'state');
    const path = await writeCredential(dir, 'mpa_secret');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(await readCredential(dir)).toBe('mpa_secret');
    await writeCredential(dir, 'mpa_rotated');
    expect(await readCredential(dir)).toBe('mpa_rotated');
    chmodSync(path, 0o644);
    await expect(readCredential(dir)).rejects.toThrow(/mode 0644 lets others read it/);
    await expect(readCredential(tmp())).rejects.toBeInstanceOf(CredentialError);
  });

  it('one agent per state directory; a stale lock is taken over', async () => {
    const dir = tmp();
    const release = await acquireLock(dir);
    writeFileSync(join(dir, 'agent.lock'), '1\n'); // pid 1 is alive: someone else holds it
    await expect(acquireLock(dir)).rejects.toThrow(/in use by another agent \(pid 1\)/);
    writeFileSync(join(dir, 'agent.lock'), '999999999\n'); // no such process
    const again = await acquireLock(dir);
    expect(readFileSync(join(dir, 'agent.lock'), 'utf8').trim()).toBe(String(process.pid));
    await again();
    await release();
    expect(() => statSync(join(dir, 'agent.lock'))).toThrow();
  });
});
