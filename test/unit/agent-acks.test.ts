/**
 * agent/acks.ts: a command is acknowledged only if it still runs ACK_DELAY_MS after its
 * start; its result drops a pending ack; a redelivery of a running command is
 * acknowledged at once with its new receipt. Fake timers: the delay is the subject.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ACK_DELAY_MS, DeferredAcks } from '../../agent/acks.ts';
import { siteCommandQueue } from '../../infra/resources.ts';
import type { Command } from '../../protocol/messages.ts';

function command(id: string, receipt = `rcpt-${id}`): Command {
  return { id, node: 'n1', action: 'noop', args: {}, deadline: '2030-01-01T00:00:00Z', attempt: 1, receipt };
}

describe('DeferredAcks', () => {
  let sent: Array<[string, string]>;
  let acks: DeferredAcks;
  beforeEach(() => {
    vi.useFakeTimers();
    sent = [];
    acks = new DeferredAcks((c) => sent.push([c.id, c.receipt]));
  });
  afterEach(() => {
    acks.clear();
    vi.useRealTimers();
  });

  it('acknowledges a command still running after the delay, once, with its receipt', () => {
    acks.started(command('c1'));
    vi.advanceTimersByTime(ACK_DELAY_MS - 1);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([['c1', 'rcpt-c1']]);
    vi.advanceTimersByTime(10 * ACK_DELAY_MS);
    expect(sent).toHaveLength(1);
    expect(acks.pending).toBe(0);
  });

  it('sends no ack for a command whose result comes within the delay', () => {
    acks.started(command('quick'));
    acks.started(command('slow'));
    vi.advanceTimersByTime(ACK_DELAY_MS - 1);
    acks.finished('quick');
    vi.advanceTimersByTime(1);
    expect(sent).toEqual([['slow', 'rcpt-slow']]);
  });

  it('acknowledges a redelivered running command at once, with the new receipt only', () => {
    acks.started(command('c1', 'first'));
    vi.advanceTimersByTime(ACK_DELAY_MS / 2);
    acks.now(command('c1', 'second'));
    expect(sent).toEqual([['c1', 'second']]);
    vi.advanceTimersByTime(10 * ACK_DELAY_MS);
    expect(sent).toEqual([['c1', 'second']]);
  });

  it('drops every pending ack when cleared (the agent stops)', () => {
    acks.started(command('a'));
    acks.started(command('b'));
    expect(acks.pending).toBe(2);
    acks.clear();
    vi.advanceTimersByTime(10 * ACK_DELAY_MS);
    expect(sent).toEqual([]);
  });

  it('stays far below the site queues’ visibility timeout', () => {
    expect(ACK_DELAY_MS).toBeLessThan((siteCommandQueue('any').visibilityTimeoutSeconds * 1000) / 10);
  });
});
