/** The provision state machine against Ironic's (the reference JSON, and states.py itself when installed). */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  advance,
  canTransition,
  defaultTarget,
  eventForVerb,
  eventsFrom,
  FAILURE_STATES,
  InvalidTransitionError,
  isStable,
  RECOVERY_VERBS,
  transition,
  verbTransition,
  WAITING_STATES,
  WORKING_STATES,
} from '../../lambda/domain/provisioning/machine.ts';
import {
  DEFAULT_TARGETS,
  PROVISION_EVENTS,
  PROVISION_STATES,
  STABLE_STATES,
  TRANSITIONS,
  VERBS,
} from '../../lambda/domain/provisioning/states.ts';
import { referenceDir } from '../support/reference.ts';

interface ReferenceMachine {
  states: Record<string, { stable: boolean; target: string | null }>;
  transitions: Array<{ from: string; event: string; to: string }>;
  api_targets: { VERBS: Record<string, string> };
}

const reference = JSON.parse(
  readFileSync(join(referenceDir, 'provision-states.json'), 'utf8'),
) as ReferenceMachine;

/** Ironic 21.4's own machine, read from its installed source (Debian's python3-ironic). */
function ironicMachine():
  | { transitions: Array<[string, string, string]>; stuck: string[]; failure: string[]; unstable: string[] }
  | undefined {
  if (!existsSync('/usr/lib/python3/dist-packages/ironic/common/states.py')) return undefined;
  try {
    const script = [
      'import json',
      'from ironic.common import states as s',
      'm = s.machine',
      't = [[f, e, j.name] for f, evs in m._transitions.items() for e, j in evs.items()]',
      'print(json.dumps({"transitions": t, "stuck": list(s.STUCK_STATES_TREATED_AS_FAIL),',
      '  "failure": sorted(s.FAILURE_STATES), "unstable": list(s.UNSTABLE_STATES)}))',
    ].join('\n');
    return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { encoding: 'utf8' }));
  } catch {
    return undefined;
  }
}

const ironic = ironicMachine();

describe('the table', () => {
  it('has exactly the states of the reference, with their stability and targets', () => {
    expect([...PROVISION_STATES].sort()).toStrictEqual(Object.keys(reference.states).sort());
    for (const [state, { stable, target }] of Object.entries(reference.states)) {
      const ours = state as (typeof PROVISION_STATES)[number];
      expect(isStable(ours), state).toBe(stable);
      expect(defaultTarget(ours), state).toBe(target);
    }
    expect(STABLE_STATES).toHaveLength(6);
    expect(Object.keys(DEFAULT_TARGETS)).toHaveLength(18);
  });

  it('has exactly the (from, event) pairs of the reference, in its order', () => {
    expect(TRANSITIONS.map(([from, event]) => [from, event])).toStrictEqual(
      reference.transitions.map(({ from, event }) => [from, event]),
    );
    expect(TRANSITIONS).toHaveLength(63);
  });

  it('maps the API verbs to the reference events', () => {
    expect(VERBS).toStrictEqual(reference.api_targets.VERBS);
    for (const [verb, event] of Object.entries(reference.api_targets.VERBS)) {
      expect(eventForVerb(verb)).toBe(event);
    }
    expect(eventForVerb('rebuild')).toBe('rebuild');
    expect(eventForVerb('teleport')).toBeUndefined();
    expect(eventForVerb('done')).toBeUndefined();
  });

  it.skipIf(!ironic)("leads where Ironic's installed states.py leads", () => {
    const theirs = (ironic?.transitions ?? []).map((t) => t.join(' | ')).sort();
    expect(TRANSITIONS.map((t) => t.join(' | ')).sort()).toStrictEqual(theirs);
    expect([...WORKING_STATES].sort()).toStrictEqual([...(ironic?.stuck ?? [])].sort());
    expect([...FAILURE_STATES].sort()).toStrictEqual(ironic?.failure);
    expect([...WORKING_STATES, ...WAITING_STATES].sort()).toStrictEqual([...(ironic?.unstable ?? [])].sort());
  });
});

describe('transition', () => {
  it.each(TRANSITIONS.map((t) => [...t]))('%s --%s--> %s', (from, event, to) => {
    expect(canTransition(from, event)).toBe(true);
    expect(transition(from, event)).toBe(to);
  });

  it('refuses every other (state, event) pair with InvalidTransitionError', () => {
    const allowed = new Set(TRANSITIONS.map(([from, event]) => `${from}|${event}`));
    let refused = 0;
    for (const state of PROVISION_STATES) {
      for (const event of PROVISION_EVENTS) {
        if (allowed.has(`${state}|${event}`)) continue;
        refused++;
        expect(canTransition(state, event), `${state} ${event}`).toBe(false);
        expect(() => transition(state, event)).toThrow(InvalidTransitionError);
      }
    }
    expect(refused).toBe(PROVISION_STATES.length * PROVISION_EVENTS.length - 63);
  });

  it('refuses unknown states and events', () => {
    expect(canTransition('enroll', 'teleport')).toBe(false);
    expect(canTransition('limbo', 'manage')).toBe(false);
    const error = (() => {
      try {
        transition('enroll', 'provide');
      } catch (caught) {
        return caught as InvalidTransitionError;
      }
    })();
    expect(error?.state).toBe('enroll');
    expect(error?.event).toBe('provide');
  });

  it('lists the events of a state', () => {
    expect(eventsFrom('manageable')).toStrictEqual(['provide', 'clean', 'inspect', 'adopt']);
    expect(eventsFrom('clean wait')).toStrictEqual(['fail', 'abort', 'resume']);
  });

  it('names the first state of each verb', () => {
    expect(verbTransition('enroll', 'manage')).toBe('verifying');
    expect(verbTransition('available', 'active')).toBe('deploying');
    expect(verbTransition('available', 'deploy')).toBe('deploying');
    expect(verbTransition('active', 'deleted')).toBe('deleting');
    expect(verbTransition('active', 'undeploy')).toBe('deleting');
    expect(verbTransition('deploy failed', 'rebuild')).toBe('deploying');
    expect(() => verbTransition('available', 'done')).toThrow(InvalidTransitionError);
  });

  it('offers each failure state a way out, as the machine allows', () => {
    for (const [state, verbs] of Object.entries(RECOVERY_VERBS)) {
      for (const verb of verbs ?? [])
        expect(() => verbTransition(state, verb), `${state} ${verb}`).not.toThrow();
    }
    for (const state of FAILURE_STATES) expect(RECOVERY_VERBS[state]).toBeDefined();
  });
});

describe('advance (provision_state and target_provision_state as Ironic sets them)', () => {
  it('walks manage, provide, deploy, undeploy', () => {
    let node = advance({ provision_state: 'enroll', target_provision_state: null }, 'manage');
    expect(node).toStrictEqual({ provision_state: 'verifying', target_provision_state: 'manageable' });
    node = advance(node, 'done');
    expect(node).toStrictEqual({ provision_state: 'manageable', target_provision_state: null });
    node = advance(node, 'provide');
    expect(node).toStrictEqual({ provision_state: 'cleaning', target_provision_state: 'available' });
    node = advance(node, 'done');
    expect(node).toStrictEqual({ provision_state: 'available', target_provision_state: null });
    node = advance(node, 'deploy');
    expect(node).toStrictEqual({ provision_state: 'deploying', target_provision_state: 'active' });
    node = advance(node, 'wait');
    expect(node).toStrictEqual({ provision_state: 'wait call-back', target_provision_state: 'active' });
    node = advance(node, 'resume');
    node = advance(node, 'done');
    expect(node).toStrictEqual({ provision_state: 'active', target_provision_state: null });
    node = advance(node, 'delete');
    expect(node).toStrictEqual({ provision_state: 'deleting', target_provision_state: 'available' });
    node = advance(node, 'clean');
    expect(node).toStrictEqual({ provision_state: 'cleaning', target_provision_state: 'available' });
  });

  it('keeps a manual clean aimed at manageable only when told, as Ironic passes target_state', () => {
    const cleaning = advance({ provision_state: 'manageable', target_provision_state: null }, 'clean', {
      target: 'manageable',
    });
    expect(cleaning).toStrictEqual({ provision_state: 'cleaning', target_provision_state: 'manageable' });
    // The FSM resets the target to the new state's own one unless given again.
    expect(advance(cleaning, 'wait').target_provision_state).toBe('available');
    expect(advance(cleaning, 'wait', { target: 'manageable' }).target_provision_state).toBe('manageable');
    expect(advance(cleaning, 'manage')).toStrictEqual({
      provision_state: 'manageable',
      target_provision_state: null,
    });
    expect(() => advance(cleaning, 'wait', { target: 'deploying' as never })).toThrow(/not a 'stable' state/);
  });

  it('fails into the failure state with its target, and back to a stable state with none', () => {
    const failed = advance({ provision_state: 'deploying', target_provision_state: 'active' }, 'fail');
    expect(failed).toStrictEqual({ provision_state: 'deploy failed', target_provision_state: 'active' });
    expect(
      advance({ provision_state: 'verifying', target_provision_state: 'manageable' }, 'fail'),
    ).toStrictEqual({
      provision_state: 'enroll',
      target_provision_state: null,
    });
    expect(
      advance({ provision_state: 'deleting', target_provision_state: 'available' }, 'fail'),
    ).toStrictEqual({
      provision_state: 'error',
      target_provision_state: null,
    });
    expect(() => advance(failed, 'done')).toThrow(InvalidTransitionError);
  });
});
