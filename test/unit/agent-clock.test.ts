/**
 * The agent's estimate of the control plane's clock (agent/clock.ts): from the `Date`
 * header of an answer, to the second, taken at the request's midpoint.
 */
import { describe, expect, it } from 'vitest';
import { ControlPlaneClock } from '../../agent/clock.ts';

const at = (iso: string) => Date.parse(iso);

describe('ControlPlaneClock', () => {
  it('measures an agent five minutes fast, and judges time on the control plane’s clock', () => {
    let wall = at('2026-12-03T20:05:00.200Z');
    const clock = new ControlPlaneClock({ wall: () => wall });
    // Sent at :00.000 and answered at :00.400 by the agent's clock; the control plane said 20:00:00.
    clock.sample(
      'Thu, 03 Dec 2026 20:00:00 GMT',
      at('2026-12-03T20:05:00.000Z'),
      at('2026-12-03T20:05:00.400Z'),
    );
    expect(clock.sampled).toBe(true);
    expect(clock.offsetMs).toBe(-299_700);
    wall = at('2026-12-03T20:05:10.000Z');
    expect(new Date(clock.now()).toISOString()).toBe('2026-12-03T20:00:10.300Z');
  });

  it('treats an offset under a second as none, and keeps a measured one against small jitter', () => {
    const clock = new ControlPlaneClock({ wall: () => 0 });
    clock.sample(
      'Thu, 03 Dec 2026 20:00:00 GMT',
      at('2026-12-03T20:00:00.100Z'),
      at('2026-12-03T20:00:00.300Z'),
    );
    expect(clock.offsetMs).toBe(0);
    clock.sample(
      'Thu, 03 Dec 2026 20:00:30 GMT',
      at('2026-12-03T20:00:00.000Z'),
      at('2026-12-03T20:00:00.000Z'),
    );
    expect(clock.offsetMs).toBe(30_500);
    // Another second's rounding of the same offset changes nothing.
    clock.sample(
      'Thu, 03 Dec 2026 20:00:31 GMT',
      at('2026-12-03T20:00:00.600Z'),
      at('2026-12-03T20:00:00.800Z'),
    );
    expect(clock.offsetMs).toBe(30_500);
  });

  it('ignores a missing or malformed header, and a request that ended before it began', () => {
    const clock = new ControlPlaneClock({ wall: () => 0 });
    clock.sample(null, 0, 1);
    clock.sample('not a date', 0, 1);
    clock.sample('Thu, 03 Dec 2026 20:00:00 GMT', 10, 5);
    expect(clock.sampled).toBe(false);
    expect(clock.offsetMs).toBe(0);
  });
});
