/**
 * Bounded storage's settings (docs/storage.md): defaults as Ironic's
 * `[conductor]node_history_*`, every variable validated with an error naming it, and the
 * TTL values computed from them.
 */
import { describe, expect, it } from 'vitest';
import { commandExpiresAt } from '../../lambda/adapters/dynamo/command-repository.ts';
import { historyEventWrite, historyExpiresAt } from '../../lambda/adapters/dynamo/history-repository.ts';
import { ConfigError, readConfig } from '../../lambda/config.ts';
import { historyEvent } from '../../lambda/domain/history/history.ts';

function configError(env: Record<string, string>): ConfigError {
  try {
    readConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`readConfig accepted ${JSON.stringify(env)}`);
}

describe('bounded storage settings', () => {
  it("default to Ironic's node history settings, a year of TTL, 30 days of commands, 365 of audit", () => {
    const config = readConfig({});
    expect(config.history).toStrictEqual({
      maxEntries: 300,
      cleanupIntervalSeconds: 86_400,
      cleanupBatchCount: 1000,
      minimumDays: 0,
      retentionDays: 365,
    });
    expect(config.commands).toStrictEqual({ retentionDays: 30 });
    expect(config.audit).toStrictEqual({ retentionDays: 365 });
  });

  it('are read from their variables', () => {
    const config = readConfig({
      METALPLANE_NODE_HISTORY_MAX_ENTRIES: '50',
      METALPLANE_NODE_HISTORY_CLEANUP_INTERVAL: '0',
      METALPLANE_NODE_HISTORY_CLEANUP_BATCH_COUNT: '25',
      METALPLANE_NODE_HISTORY_MINIMUM_DAYS: '7',
      METALPLANE_NODE_HISTORY_RETENTION_DAYS: '90',
      METALPLANE_COMMAND_RETENTION_DAYS: '3',
    });
    expect(config.history).toStrictEqual({
      maxEntries: 50,
      cleanupIntervalSeconds: 0,
      cleanupBatchCount: 25,
      minimumDays: 7,
      retentionDays: 90,
    });
    expect(config.commands.retentionDays).toBe(3);
    // Retention 0: no TTL, so any minimum goes.
    expect(
      readConfig({
        METALPLANE_NODE_HISTORY_RETENTION_DAYS: '0',
        METALPLANE_NODE_HISTORY_MINIMUM_DAYS: '9999',
      }).history.minimumDays,
    ).toBe(9999);
  });

  it.each([
    ['METALPLANE_NODE_HISTORY_MAX_ENTRIES', 'lots', /whole number ≥ 0/],
    ['METALPLANE_NODE_HISTORY_MAX_ENTRIES', '-1', /whole number ≥ 0/],
    ['METALPLANE_NODE_HISTORY_CLEANUP_INTERVAL', '1.5', /whole number ≥ 0/],
    ['METALPLANE_NODE_HISTORY_CLEANUP_BATCH_COUNT', '0', /whole number ≥ 1/],
    ['METALPLANE_NODE_HISTORY_MINIMUM_DAYS', 'a week', /whole number ≥ 0/],
    ['METALPLANE_NODE_HISTORY_RETENTION_DAYS', '-3', /whole number ≥ 0/],
    ['METALPLANE_COMMAND_RETENTION_DAYS', '0', /whole number ≥ 1/],
    ['METALPLANE_COMMAND_RETENTION_DAYS', 'forever', /whole number ≥ 1/],
    ['METALPLANE_AUDIT_RETENTION_DAYS', '-1', /positive number of days/],
  ])('refuses %s=%j, naming the variable', (name, value, problem) => {
    const error = configError({ [name]: value });
    expect(error.variable).toBe(name);
    expect(error.message.startsWith(`${name} `)).toBe(true);
    expect(error.message).toMatch(problem);
  });

  it('refuses a minimum the TTL would not keep', () => {
    const error = configError({
      METALPLANE_NODE_HISTORY_MINIMUM_DAYS: '400',
      METALPLANE_NODE_HISTORY_RETENTION_DAYS: '365',
    });
    expect(error.variable).toBe('METALPLANE_NODE_HISTORY_MINIMUM_DAYS');
    expect(error.message).toBe(
      'METALPLANE_NODE_HISTORY_MINIMUM_DAYS (400) must not exceed METALPLANE_NODE_HISTORY_RETENTION_DAYS (365): the TTL would delete events the minimum keeps',
    );
  });
});

describe('TTL values', () => {
  it('of a history event: its created_at plus the retention, none for 0', () => {
    const createdAt = '2026-01-01T00:00:00.123456+00:00';
    expect(historyExpiresAt(createdAt, 365)).toBe(Date.parse('2027-01-01T00:00:00Z') / 1000);
    expect(historyExpiresAt(createdAt, 0)).toBeUndefined();
    const event = historyEvent({ uuid: 'e1', now: createdAt, nodeUuid: 'n1', event: 'x' });
    const write = historyEventWrite({ uuid: 'n1', created_at: createdAt }, event, 0, 2);
    expect(write.expiresAt).toBe(Date.parse('2026-01-03T00:00:00Z') / 1000);
    expect(write.indexes).toStrictEqual({
      parentPk: `node_history@node#n1@${createdAt}`,
      kindPk: 'node_history',
    });
    expect(historyEventWrite({ uuid: 'n1', created_at: createdAt }, event, 0, 0).expiresAt).toBeUndefined();
  });

  it('of a command record: the retention after the given time (deadline or end)', () => {
    expect(commandExpiresAt('2026-03-01T00:10:00.000Z', 30)).toBe(Date.parse('2026-03-31T00:10:00Z') / 1000);
  });
});
