/** Node history records and their rendering, as Ironic's NodeHistoryController shows them. */
import { describe, expect, it } from 'vitest';
import {
  errorRecord,
  eventTypeOfTransition,
  historyEvent,
  renderHistoryEvent,
  transitionRecord,
} from '../../lambda/domain/history/history.ts';

const NODE = '84ad7549-afa9-4cd1-94b0-ad2d01fae276';
const EVENT = '2b0c1b7e-7f73-4b39-9d5d-0b7f2d5b8c11';
const NOW = '2026-11-24T15:20:17.497000+00:00';
const BASE = 'http://127.0.0.1:6385';

describe('records', () => {
  it('records an error with severity ERROR and the last_error the node takes', () => {
    const { event, lastError } = errorRecord({
      uuid: EVENT,
      now: NOW,
      nodeUuid: NODE,
      event: 'Timed out waiting for a callback',
      eventType: 'deploying',
      conductor: 'fra1-agent-1',
      user: 'alice',
    });
    expect(event).toStrictEqual({
      uuid: EVENT,
      created_at: NOW,
      node_uuid: NODE,
      severity: 'ERROR',
      event_type: 'deploying',
      event: 'Timed out waiting for a callback',
      conductor: 'fra1-agent-1',
      user: 'alice',
    });
    expect(lastError).toBe('Timed out waiting for a callback');
  });

  it('records a notice as INFO, of type UNKNOWN when none is given (node_history_record)', () => {
    const event = historyEvent({ uuid: EVENT, now: NOW, nodeUuid: NODE, event: 'Console enabled' });
    expect(event).toMatchObject({ severity: 'INFO', event_type: 'UNKNOWN', conductor: null, user: null });
  });

  it("records a transition in the words Ironic's task manager logs it", () => {
    const event = transitionRecord({
      uuid: EVENT,
      now: NOW,
      nodeUuid: NODE,
      from: 'available',
      event: 'deploy',
      to: 'deploying',
      target: 'active',
      conductor: 'fra1-agent-1',
    });
    expect(event.event).toBe(
      `Node ${NODE} moved to provision state "deploying" from state "available"; target provision state is "active" (event "deploy")`,
    );
    expect(event).toMatchObject({ severity: 'INFO', event_type: 'deploying', conductor: 'fra1-agent-1' });
    const done = transitionRecord({
      uuid: EVENT,
      now: NOW,
      nodeUuid: NODE,
      from: 'deploying',
      event: 'done',
      to: 'active',
      target: null,
    });
    expect(done.event).toContain('target provision state is "None"');
  });

  it('types a transition by the activity it starts or ends', () => {
    expect(eventTypeOfTransition('enroll', 'verifying')).toBe('verify');
    expect(eventTypeOfTransition('deploying', 'active')).toBe('deploying');
    expect(eventTypeOfTransition('active', 'deleting')).toBe('unprovision');
    expect(eventTypeOfTransition('deleting', 'cleaning')).toBe('cleaning');
    expect(eventTypeOfTransition('manageable', 'inspecting')).toBe('introspection');
    expect(eventTypeOfTransition('adopting', 'active')).toBe('adoption');
    expect(eventTypeOfTransition('active', 'rescuing')).toBe('rescue');
    expect(eventTypeOfTransition('available', 'manageable')).toBe('provisioning');
  });
});

describe('rendering', () => {
  const event = historyEvent({
    uuid: EVENT,
    now: NOW,
    nodeUuid: NODE,
    event: 'Failed to deploy',
    eventType: 'deploying',
    error: true,
    conductor: 'fra1-agent-1',
    user: 'alice',
  });
  const self = [{ href: `${BASE}/v1/nodes/${NODE}/history/${EVENT}`, rel: 'self' }];

  it('shows the standard fields in Ironic order, with a self link only', () => {
    const shown = renderHistoryEvent(event, { baseUrl: BASE, detail: false });
    expect(shown).toStrictEqual({
      uuid: EVENT,
      created_at: NOW,
      severity: 'ERROR',
      event: 'Failed to deploy',
      links: self,
    });
    expect(Object.keys(shown)).toStrictEqual(['uuid', 'created_at', 'severity', 'event', 'links']);
  });

  it('shows every field with detail', () => {
    const shown = renderHistoryEvent(event, { baseUrl: BASE, detail: true });
    expect(Object.keys(shown)).toStrictEqual([
      'uuid',
      'created_at',
      'severity',
      'event_type',
      'event',
      'conductor',
      'user',
      'links',
    ]);
    expect(shown).toMatchObject({ event_type: 'deploying', conductor: 'fra1-agent-1', user: 'alice' });
  });

  it('truncates a long event to 251 characters and an ellipsis outside detail, by code point', () => {
    const long = { ...event, event: `${'é'.repeat(250)}${'😀'.repeat(6)}` };
    const summary = renderHistoryEvent(long, { baseUrl: BASE, detail: false }).event as string;
    expect(Array.from(summary)).toHaveLength(254);
    expect(summary.endsWith('😀...')).toBe(true);
    expect(renderHistoryEvent(long, { baseUrl: BASE, detail: true }).event).toBe(long.event);
    const exact = { ...event, event: 'x'.repeat(255) };
    expect(renderHistoryEvent(exact, { baseUrl: BASE, detail: false }).event).toBe(exact.event);
  });

  it('shows the chosen fields only (fields=)', () => {
    const shown = renderHistoryEvent(event, { baseUrl: BASE, detail: false, fields: ['user', 'uuid'] });
    expect(shown).toStrictEqual({ uuid: EVENT, user: 'alice', links: self });
  });
});
