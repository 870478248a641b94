/** The config's `ramdisk` section (agent/config.ts): defaults, values, refusals. */
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../agent/config.ts';

const problems = (raw: unknown): readonly string[] => {
  try {
    validateConfig(raw, 'c.yaml', '/');
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
};

describe('config: ramdisk', () => {
  it('has defaults', () => {
    expect(validateConfig({}, 'c.yaml', '/').ramdisk).toEqual({
      heartbeatIntervalMs: 10_000,
      maxSessions: 256,
      tokenTtlMs: 3_600_000,
    });
  });

  it('takes durations and a bound', () => {
    const config = validateConfig(
      { ramdisk: { heartbeat_interval: '30s', max_sessions: 16, token_ttl: '2h' } },
      'c.yaml',
      '/',
    );
    expect(config.ramdisk).toEqual({ heartbeatIntervalMs: 30_000, maxSessions: 16, tokenTtlMs: 7_200_000 });
  });

  it('refuses what the ramdisk cannot be told, and unknown fields', () => {
    expect(problems({ ramdisk: { heartbeat_interval: '1500ms' } })).toEqual([
      'c.yaml:ramdisk.heartbeat_interval: must be a whole number of seconds (the ramdisk is told seconds)',
    ]);
    expect(problems({ ramdisk: { heartbeat_interval: '10m' } })).toEqual([
      'c.yaml:ramdisk.heartbeat_interval: must be from 1s to 5m',
    ]);
    expect(problems({ ramdisk: { max_sessions: 0 } })).toEqual([
      'c.yaml:ramdisk.max_sessions: must be an integer from 1 to 100000',
    ]);
    expect(problems({ ramdisk: { token_ttl: '10s' } })).toEqual([
      'c.yaml:ramdisk.token_ttl: must be from 1m to 7d',
    ]);
    expect(problems({ ramdisk: { heartbeat: 1 } })[0]).toMatch(/^c\.yaml:ramdisk\.heartbeat: unknown field/);
  });
});
