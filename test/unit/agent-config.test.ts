import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  deriveWebSocketUrl,
  isLoopbackHost,
  loadConfig,
  parseConfig,
  parseDuration,
} from '../../agent/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'agent-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(yaml: string, file = '/etc/metalplane-agent/config.yaml'): string[] {
  try {
    parseConfig(yaml, file);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe('agent config', () => {
  it('fills every default from a file that only names the control plane', () => {
    const config = parseConfig('url: https://metal.example.com/\n', '/etc/metalplane-agent/config.yaml');
    expect(config).toMatchObject({
      file: '/etc/metalplane-agent/config.yaml',
      url: 'https://metal.example.com',
      websocketUrl: undefined,
      transport: 'auto',
      stateDir: '/var/lib/metalplane-agent',
      drivers: ['fake-hardware'],
      logLevel: 'info',
      heartbeatIntervalMs: 30_000,
      pullIntervalMs: 30_000,
      idlePullIntervalMs: 300_000,
      shutdownGraceMs: 20_000,
      journalRetentionMs: 14 * 86_400_000,
      maxCommands: 8,
      reconnect: {
        initialDelayMs: 500,
        maxDelayMs: 30_000,
        websocketFailuresBeforePolling: 3,
        websocketRetryIntervalMs: 300_000,
      },
      pollWaitSeconds: 20,
      status: { host: '127.0.0.1', port: 9469 },
      tftp: { enabled: true, root: '/var/lib/tftpboot', port: 69 },
      http: { enabled: true, root: '/var/www/html/pxe', port: 8080 },
    });
  });

  it('reads every field, durations in both forms, paths relative to the file', () => {
    const config = parseConfig(
      [
        'url: http://127.0.0.1:6385',
        'websocket_url: ws://127.0.0.1:6386/local',
        'transport: polling',
        'state_dir: state',
        'hostname: fra1-agent-1',
        'drivers: [fake-hardware]',
        'log_level: debug',
        'heartbeat_interval: 10',
        'pull_interval: 1m',
        'idle_pull_interval: 15m',
        'shutdown_grace: 1m',
        'journal_retention: 2d',
        'concurrency: {max_commands: 32}',
        'reconnect: {initial_delay: 250ms, max_delay: 1m, websocket_failures_before_polling: 5, websocket_retry_interval: 10m}',
        'polling: {wait: 10s}',
        'status: {address: "[::1]:9100"}',
        'tftp: {enabled: false, root: tftp, port: 6969}',
        'http: {root: /srv/http, port: 8081}',
      ].join('\n'),
      '/opt/agent/config.yaml',
    );
    expect(config).toMatchObject({
      url: 'http://127.0.0.1:6385',
      websocketUrl: 'ws://127.0.0.1:6386/local',
      transport: 'polling',
      stateDir: '/opt/agent/state',
      hostname: 'fra1-agent-1',
      logLevel: 'debug',
      heartbeatIntervalMs: 10_000,
      pullIntervalMs: 60_000,
      idlePullIntervalMs: 900_000,
      shutdownGraceMs: 60_000,
      journalRetentionMs: 2 * 86_400_000,
      maxCommands: 32,
      reconnect: {
        initialDelayMs: 250,
        maxDelayMs: 60_000,
        websocketFailuresBeforePolling: 5,
        websocketRetryIntervalMs: 600_000,
      },
      pollWaitSeconds: 10,
      status: { host: '::1', port: 9100 },
      tftp: { enabled: false, root: '/opt/agent/tftp', port: 6969 },
      http: { enabled: true, root: '/srv/http', port: 8081 },
    });
    // The idle pull is never more frequent than the active one.
    expect(
      parseConfig('url: http://localhost:1\npull_interval: 2m\nidle_pull_interval: 1m', '/x.yaml'),
    ).toMatchObject({ pullIntervalMs: 120_000, idlePullIntervalMs: 120_000 });
    expect(
      parseConfig('url: http://localhost:1\nstatus: {address: "off"}', '/x.yaml').status,
    ).toBeUndefined();
  });

  it('names the file and the field of every problem, all at once', () => {
    const found = problems(
      [
        'url: ftp://metal.example.com',
        'transport: carrier-pigeon',
        'concurrency: {max_commands: 0}',
        'heartbeat_interval: soon',
        'drivers: [ipmi-magic]',
        'reconnect: {initial_delay: 5s, max_delay: 1s}',
        'statuss: {}',
      ].join('\n'),
    );
    const f = '/etc/metalplane-agent/config.yaml';
    expect(found).toEqual(
      expect.arrayContaining([
        `${f}:url: must be a http: or https: URL`,
        `${f}:transport: must be one of websocket, polling, auto`,
        `${f}:concurrency.max_commands: must be an integer from 1 to 256`,
        expect.stringMatching(new RegExp(`^${f}:heartbeat_interval: must be a duration`)),
        `${f}:drivers[0]: unknown driver "ipmi-magic" (known: fake-hardware, ipmi, redfish)`,
        `${f}:reconnect.max_delay: must not be less than reconnect.initial_delay`,
        expect.stringMatching(new RegExp(`^${f}:statuss: unknown field`)),
      ]),
    );
    expect(found).toHaveLength(7);
  });

  it('refuses a status endpoint that is not on loopback', () => {
    for (const address of ['0.0.0.0:9469', '10.0.0.5:9469', '[::]:9469', 'metal.example.com:80']) {
      const found = problems(`url: https://m.example.com\nstatus: {address: "${address}"}`);
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(/:status\.address: must be a loopback address/);
    }
    expect(problems('url: https://m.example.com\nstatus: {address: "127.0.0.2:1"}')).toEqual([]);
    expect(problems('url: https://m.example.com\nstatus: {address: "localhost:99999"}')[0]).toMatch(/port/);
  });

  it('refuses plain http off loopback, and a WebSocket URL that is not ws(s)', () => {
    expect(problems('url: http://metal.example.com')).toEqual([
      '/etc/metalplane-agent/config.yaml:url: plain http is only allowed to a loopback host; use https',
    ]);
    expect(problems('url: https://m.example.com\nwebsocket_url: https://m.example.com/ws')[0]).toMatch(
      /:websocket_url: must be a ws: or wss: URL$/,
    );
  });

  it('reports YAML syntax errors with their line, and unreadable files', () => {
    const found = problems('url: https://m.example.com\nconcurrency:\n  max_commands: [1\n', '/c.yaml');
    expect(found[0]).toMatch(/^\/c\.yaml:\d+:\d+: /);
    expect(() => loadConfig(join(dir, 'missing.yaml'), { required: true })).toThrow(
      /missing\.yaml: cannot read: ENOENT/,
    );
    // Not required (enroll on a fresh host): defaults plus overrides.
    const fresh = loadConfig(join(dir, 'missing.yaml'), {
      url: 'https://m.example.com',
      stateDir: join(dir, 's'),
    });
    expect(fresh).toMatchObject({ url: 'https://m.example.com', stateDir: join(dir, 's') });
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, 'url: https://m.example.com\nstate_dir: st\n');
    expect(loadConfig(file, { required: true }).stateDir).toBe(join(dir, 'st'));
  });

  it('parses durations and derives the WebSocket URL', () => {
    expect(parseDuration(1.5)).toBe(1500);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('2 weeks')).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
    expect(deriveWebSocketUrl('https://metal.example.com/base')).toBe(
      'wss://metal.example.com/base/v1/agent/ws',
    );
    expect(deriveWebSocketUrl('http://127.0.0.1:6385')).toBe('ws://127.0.0.1:6385/v1/agent/ws');
    expect(isLoopbackHost('127.9.9.9')).toBe(true);
    expect(isLoopbackHost('::1')).toBe(true);
    expect(isLoopbackHost('128.0.0.1')).toBe(false);
  });

  it('the example config in the repository is valid', () => {
    const example = new URL('../../agent/metalplane-agent.example.yaml', import.meta.url).pathname;
    const config = loadConfig(example, { required: true });
    expect(config.status).toEqual({ host: '127.0.0.1', port: 9469 });
    expect(config.url).toBe('https://metalplane.example.com');
  });
});
