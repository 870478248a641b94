/**
 * Properties of the command state machine (`lambda/domain/commands/command.ts`) under
 * random event sequences. The events are applied the way the control plane applies them:
 * a transition is one conditional write that succeeds only when the stored state is one
 * of `statesLeadingTo(to)` (`CommandRepository.transitionStored`), deliveries carry the
 * queue's receive count, and the tick expires only what `isOverdue` says is overdue.
 * fast-check prints the seed and the shrunk sequence of any counterexample.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COMMAND_STATES,
  type CommandRecord,
  type CommandState,
  canTransition,
  createCommand,
  expiryMessage,
  FINISHED_STATES,
  isFinished,
  isOverdue,
  MAX_DEADLINE_SECONDS,
  MIN_DEADLINE_SECONDS,
  OPEN_STATES,
  statesLeadingTo,
  validateDeadlineSeconds,
  wireCommand,
} from '../../lambda/domain/commands/command.ts';
import { DomainError } from '../../lambda/domain/errors.ts';
import { parseServerMessage } from '../../protocol/messages.ts';

const START = Date.parse('2030-01-02T03:04:05.000Z');
const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';

type Event =
  | { readonly kind: 'deliver' }
  | { readonly kind: 'redeliver' }
  | { readonly kind: 'ack' }
  | { readonly kind: 'late-ack' }
  | { readonly kind: 'result'; readonly status: 'succeeded' | 'failed' }
  | { readonly kind: 'duplicate-result'; readonly status: 'succeeded' | 'failed' }
  | { readonly kind: 'advance'; readonly seconds: number }
  | { readonly kind: 'expire' };

const eventArb: fc.Arbitrary<Event> = fc.oneof(
  fc.constant({ kind: 'deliver' as const }),
  fc.constant({ kind: 'redeliver' as const }),
  fc.constant({ kind: 'ack' as const }),
  fc.constant({ kind: 'late-ack' as const }),
  fc.record({ kind: fc.constant('result' as const), status: fc.constantFrom('succeeded', 'failed') }),
  fc.record({
    kind: fc.constant('duplicate-result' as const),
    status: fc.constantFrom('succeeded', 'failed'),
  }),
  fc.record({ kind: fc.constant('advance' as const), seconds: fc.integer({ min: 0, max: 1200 }) }),
  fc.constant({ kind: 'expire' as const }),
);

/** What the store and the queue hold for one command, and what happened to it. */
interface Simulation {
  record: CommandRecord;
  now: number;
  /** SQS's ApproximateReceiveCount of the command's message. */
  receives: number;
  /** Each conditional write that applied: the state it moved to. */
  readonly applied: CommandState[];
  /** Finishing writes that applied (there must be one at most). */
  readonly finishes: CommandState[];
}

/** The conditional write of `CommandRepository.transitionStored`, on a plain record. */
function transition(sim: Simulation, to: CommandState, changes: Partial<CommandRecord> = {}): boolean {
  if (!statesLeadingTo(to).includes(sim.record.status)) return false;
  sim.record = { ...sim.record, ...changes, status: to, updated_at: new Date(sim.now).toISOString() };
  sim.applied.push(to);
  if (isFinished(to)) sim.finishes.push(to);
  return true;
}

function apply(sim: Simulation, event: Event): void {
  const at = new Date(sim.now).toISOString();
  switch (event.kind) {
    case 'deliver':
    case 'redeliver':
      // The queue hands the message out again only while it exists: a finished
      // command's message is deleted on its next receive and never delivered.
      sim.receives += 1;
      if (
        transition(sim, 'delivered', { attempts: sim.receives }) &&
        isOverdue(sim.record, new Date(sim.now))
      ) {
        // `CommandQueue.receive` expires an overdue command instead of handing it out.
        transition(sim, 'expired', { error: expiryMessage(sim.record), finished_at: at });
      }
      return;
    case 'ack':
    case 'late-ack':
      transition(sim, 'running');
      return;
    case 'result':
    case 'duplicate-result':
      transition(sim, event.status, {
        result: event.status === 'succeeded' ? { ok: true } : null,
        error: event.status === 'failed' ? 'agent says no' : null,
        finished_at: at,
      });
      return;
    case 'advance':
      sim.now += event.seconds * 1000;
      return;
    case 'expire':
      // `expireOverdue` reads only commands past their deadline.
      if (isOverdue(sim.record, new Date(sim.now))) {
        transition(sim, 'expired', { error: expiryMessage(sim.record), finished_at: at });
      }
      return;
  }
}

const commandArb = fc.record({
  deadlineSeconds: fc.integer({ min: MIN_DEADLINE_SECONDS, max: 3600 }),
  events: fc.array(eventArb, { maxLength: 40 }),
});

function simulate(deadlineSeconds: number, events: readonly Event[], observe: (sim: Simulation) => void) {
  const sim: Simulation = {
    record: createCommand(
      { id: 'c-1', node: NODE, site: 'fra1', action: 'noop', deadlineSeconds },
      new Date(START),
    ),
    now: START,
    receives: 0,
    applied: [],
    finishes: [],
  };
  observe(sim);
  for (const event of events) {
    apply(sim, event);
    observe(sim);
  }
  return sim;
}

describe('the transition table', () => {
  it('statesLeadingTo is exactly the inverse of canTransition', () => {
    fc.assert(
      fc.property(fc.constantFrom(...COMMAND_STATES), fc.constantFrom(...COMMAND_STATES), (from, to) => {
        expect(statesLeadingTo(to).includes(from)).toBe(canTransition(from, to));
      }),
    );
  });

  it('finished states lead nowhere, nothing leads back to queued, every open state can finish', () => {
    for (const to of COMMAND_STATES) {
      for (const from of statesLeadingTo(to)) expect(OPEN_STATES).toContain(from);
    }
    expect(statesLeadingTo('queued')).toStrictEqual([]);
    for (const open of OPEN_STATES) {
      for (const finished of FINISHED_STATES) expect(canTransition(open, finished)).toBe(true);
    }
    expect(FINISHED_STATES.every(isFinished) && !OPEN_STATES.some(isFinished)).toBe(true);
  });
});

describe('random event sequences', () => {
  it('a finished command never changes again, and is finished by exactly one write', () => {
    fc.assert(
      fc.property(commandArb, ({ deadlineSeconds, events }) => {
        let finished: CommandRecord | undefined;
        const sim = simulate(deadlineSeconds, events, (s) => {
          if (finished) expect(s.record).toBe(finished);
          else if (isFinished(s.record.status)) finished = s.record;
        });
        expect(sim.finishes.length).toBe(finished ? 1 : 0);
        // Never both succeeded and expired (nor any other pair of outcomes).
        expect(new Set(sim.finishes).size).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('every applied write is a legal transition; attempts never decrease and count deliveries while open', () => {
    fc.assert(
      fc.property(commandArb, ({ deadlineSeconds, events }) => {
        let previous: CommandRecord | undefined;
        simulate(deadlineSeconds, events, (s) => {
          if (previous && previous !== s.record) {
            expect(canTransition(previous.status, s.record.status)).toBe(true);
            expect(s.record.attempts).toBeGreaterThanOrEqual(previous.attempts);
          }
          expect(s.record.attempts).toBeLessThanOrEqual(s.receives);
          previous = s.record;
        });
      }),
    );
  });

  it('an expiry happens only past the deadline, and says which command, where and by when', () => {
    fc.assert(
      fc.property(commandArb, ({ deadlineSeconds, events }) => {
        const sim = simulate(deadlineSeconds, events, () => undefined);
        const { record } = sim;
        if (record.status === 'expired') {
          expect(Date.parse(record.finished_at ?? '')).toBeGreaterThanOrEqual(Date.parse(record.deadline));
          expect(record.error).toBe(expiryMessage(record));
          expect(record.error).toContain(record.id);
          expect(record.error).toContain(record.site);
          expect(record.error).toContain(record.deadline);
          expect(record.result).toBeNull();
        }
        if (isFinished(record.status)) expect(record.finished_at).not.toBeNull();
        else expect(record.finished_at).toBeNull();
      }),
    );
  });

  it('a command that is overdue and never finished is expired by the next tick', () => {
    fc.assert(
      fc.property(commandArb, ({ deadlineSeconds, events }) => {
        const sim = simulate(deadlineSeconds, events, () => undefined);
        const wasOpen = !isFinished(sim.record.status);
        apply(sim, { kind: 'advance', seconds: deadlineSeconds });
        apply(sim, { kind: 'expire' });
        if (wasOpen) expect(sim.record.status).toBe('expired');
        expect(isFinished(sim.record.status)).toBe(true);
      }),
    );
  });
});

describe('deadlines', () => {
  it('isOverdue is monotonic in time and turns true exactly at the deadline', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MIN_DEADLINE_SECONDS, max: MAX_DEADLINE_SECONDS }),
        fc.integer({ min: 0, max: 2 * MAX_DEADLINE_SECONDS * 1000 }),
        fc.integer({ min: 0, max: 10_000_000 }),
        (seconds, offset, later) => {
          const command = createCommand(
            { id: 'c', node: NODE, site: 's', action: 'noop', deadlineSeconds: seconds },
            new Date(START),
          );
          const at = new Date(START + offset);
          expect(isOverdue(command, at)).toBe(offset >= seconds * 1000);
          if (isOverdue(command, at)) expect(isOverdue(command, new Date(at.getTime() + later))).toBe(true);
        },
      ),
    );
  });

  it('validateDeadlineSeconds takes exactly the integers in range and refuses the rest clearly', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: -100, max: MAX_DEADLINE_SECONDS + 100 }),
          fc.double({ noNaN: false }),
          fc.string(),
          fc.boolean(),
        ),
        (value) => {
          const ok =
            typeof value === 'number' &&
            Number.isInteger(value) &&
            value >= MIN_DEADLINE_SECONDS &&
            value <= MAX_DEADLINE_SECONDS;
          if (ok) expect(validateDeadlineSeconds(value)).toBe(value);
          else {
            expect(() => validateDeadlineSeconds(value)).toThrow(DomainError);
            expect(() => validateDeadlineSeconds(value)).toThrow(
              /^Invalid deadline_seconds .*: an integer from 1 to 86400\.$/,
            );
          }
        },
      ),
    );
  });

  it('the wire form is always a valid protocol command, its attempt clamped to 1..1000', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 5000 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (attempt, receipt) => {
          const command = createCommand(
            { id: 'c-1', node: NODE, site: 's', action: 'noop' },
            new Date(START),
          );
          const wire = wireCommand(command, attempt, receipt);
          expect(wire.attempt).toBe(Math.min(Math.max(attempt, 1), 1000));
          expect(() =>
            parseServerMessage(JSON.stringify({ v: 1, type: 'commands', commands: [wire] })),
          ).not.toThrow();
        },
      ),
    );
  });
});
