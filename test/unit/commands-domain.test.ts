/**
 * The command record: creation, validation, legal transitions, expiry wording, the
 * `last_error` of an unawaited command, wire form.
 */
import { describe, expect, it } from 'vitest';
import {
  COMMAND_STATES,
  canTransition,
  createCommand,
  DEFAULT_DEADLINE_SECONDS,
  expiryMessage,
  isFinished,
  isOverdue,
  statesLeadingTo,
  unawaitedError,
  wireCommand,
} from '../../lambda/domain/commands/command.ts';
import { parseServerMessage } from '../../protocol/messages.ts';

const now = new Date('2030-01-02T03:04:05.000Z');
const base = { id: 'c-1', node: '1be26c0b-03f2-4d2e-ae87-c02d7f33c123', site: 'fra1', action: 'noop' };

describe('createCommand', () => {
  it('is queued, attempt 0, with a deadline from now', () => {
    const command = createCommand(
      { ...base, args: { a: 1 }, deadlineSeconds: 30, requestedBy: 'admin' },
      now,
    );
    expect(command).toStrictEqual({
      ...base,
      args: { a: 1 },
      status: 'queued',
      attempts: 0,
      deadline: '2030-01-02T03:04:35.000Z',
      created_at: '2030-01-02T03:04:05.000Z',
      updated_at: null,
      result: null,
      error: null,
      finished_at: null,
      requested_by: 'admin',
    });
    expect(Date.parse(createCommand(base, now).deadline) - now.getTime()).toBe(
      DEFAULT_DEADLINE_SECONDS * 1000,
    );
  });

  it.each([
    [{ action: 'Power' }],
    [{ action: '1noop' }],
    [{ action: 'x'.repeat(65) }],
    [{ args: [] }],
    [{ args: 'x' }],
    [{ args: { big: 'x'.repeat(8200) } }],
    [{ deadlineSeconds: 0 }],
    [{ deadlineSeconds: 86_401 }],
    [{ deadlineSeconds: 2.5 }],
  ])('refuses %j', (change) => {
    expect(() => createCommand({ ...base, ...(change as object) }, now)).toThrow(/Invalid|args/);
  });
});

describe('transitions', () => {
  it('moves forward, allows redelivery and duplicate acks, never leaves a finished state', () => {
    expect(canTransition('queued', 'delivered')).toBe(true);
    expect(canTransition('delivered', 'delivered')).toBe(true);
    expect(canTransition('running', 'delivered')).toBe(true);
    expect(canTransition('delivered', 'running')).toBe(true);
    expect(canTransition('running', 'running')).toBe(true);
    expect(canTransition('running', 'succeeded')).toBe(true);
    expect(canTransition('queued', 'expired')).toBe(true);
    expect(canTransition('delivered', 'queued')).toBe(false);
    for (const finished of ['succeeded', 'failed', 'expired'] as const) {
      expect(isFinished(finished)).toBe(true);
      for (const to of COMMAND_STATES) expect(canTransition(finished, to), `${finished} → ${to}`).toBe(false);
    }
    expect(statesLeadingTo('succeeded')).toStrictEqual(['queued', 'delivered', 'running']);
    expect(statesLeadingTo('queued')).toStrictEqual([]);
  });
});

describe('expiry', () => {
  it('is due at the deadline, and says what, which, where and when', () => {
    const command = createCommand({ ...base, deadlineSeconds: 10 }, now);
    expect(isOverdue(command, new Date(now.getTime() + 9_999))).toBe(false);
    expect(isOverdue(command, new Date(now.getTime() + 10_000))).toBe(true);
    expect(expiryMessage(command)).toBe(
      'Command noop c-1 expired: no result from the agent of site fra1 by 2030-01-02T03:04:15.000Z.',
    );
  });
});

describe("an unawaited command's last_error", () => {
  const command = createCommand({ ...base, deadlineSeconds: 10 }, now);
  it('is nothing when it succeeded, or failed without a word', () => {
    expect(unawaitedError({ ...command, status: 'succeeded', error: 'ignored' })).toBeUndefined();
    expect(unawaitedError({ ...command, status: 'expired', error: null })).toBeUndefined();
  });
  it("puts the agent's words around which command failed where", () => {
    expect(unawaitedError({ ...command, status: 'failed', error: 'the BMC refused the request' })).toBe(
      'Command noop c-1 failed on the agent of site fra1: the BMC refused the request',
    );
    expect(unawaitedError({ ...command, status: 'failed', error: null })).toBe(
      'Command noop c-1 failed on the agent of site fra1 (the agent gave no error message)',
    );
  });
  it('is our own error as it is (expiry, dead letter)', () => {
    expect(unawaitedError({ ...command, status: 'expired', error: expiryMessage(command) })).toBe(
      expiryMessage(command),
    );
    const deadLettered =
      'Command noop c-1 could not be delivered: the agent of site fra1 received it 10 times';
    expect(unawaitedError({ ...command, status: 'failed', error: deadLettered })).toBe(deadLettered);
  });
});

describe('wire form', () => {
  it('is a valid protocol command', () => {
    const command = createCommand({ ...base, args: { ms: 5 } }, now);
    const wire = wireCommand(command, 2, 'receipt-1');
    expect(wire).toStrictEqual({
      id: 'c-1',
      node: base.node,
      action: 'noop',
      args: { ms: 5 },
      deadline: command.deadline,
      attempt: 2,
      receipt: 'receipt-1',
    });
    expect(parseServerMessage(JSON.stringify({ v: 1, type: 'commands', commands: [wire] }))).toBeTruthy();
  });
});
