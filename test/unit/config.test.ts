/**
 * The configuration (`lambda/config.ts`): one typed object, every variable validated with
 * an error naming it, and no other Lambda module reading `process.env`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_INLINE_VERIFY_BYTES,
  DEPLOY_CALLBACK_TIMEOUT_SECONDS,
  IMAGE_WAIT_TIMEOUT_SECONDS,
  readConfig,
  required,
  tableName,
} from '../../lambda/config.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

function lambdaSources(dir = join(root, 'lambda')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return lambdaSources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

function configError(env: Record<string, string>): ConfigError {
  try {
    readConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`readConfig accepted ${JSON.stringify(env)}`);
}

describe('process.env', () => {
  it('is read only by lambda/config.ts (and the entry points)', () => {
    const offenders = lambdaSources()
      .map((path) => relative(root, path))
      .filter((path) => path !== 'lambda/config.ts' && !path.startsWith('lambda/entrypoints/'))
      .flatMap((path) =>
        readFileSync(join(root, path), 'utf8')
          .split('\n')
          .map((line, index) => ({ line, index }))
          .filter(({ line }) => /\bprocess\.env\b/.test(line))
          .map(({ index }) => `${path}:${index + 1}`),
      );
    expect(offenders, `read lambda/config.ts's configuration instead:\n${offenders.join('\n')}`).toEqual([]);
  });
});

describe('readConfig', () => {
  it('gives the defaults for an empty environment', () => {
    const config = readConfig({});
    expect(config.tables).toEqual({
      inventory: undefined,
      commands: undefined,
      connections: undefined,
      audit: undefined,
    });
    expect(config.localStack).toBe(false);
    expect(config.auth.strategy).toBe('credentials');
    expect(config.auth.rateLimit?.ratePerSecond).toBeGreaterThan(0);
    expect(config.audit.retentionDays).toBe(365);
    expect(config.provisioning).toEqual({
      callbackTimeoutSeconds: DEPLOY_CALLBACK_TIMEOUT_SECONDS,
      imageWaitTimeoutSeconds: IMAGE_WAIT_TIMEOUT_SECONDS,
      ramdiskWaitTimeoutSeconds: 1800,
      automatedClean: true,
      eraseDevices: false,
    });
    expect(config.forcePowerStateDuringSync).toBe(false);
    expect(config.images).toEqual({
      inlineVerifyBytes: DEFAULT_INLINE_VERIFY_BYTES,
      s3ForcePathStyle: false,
    });
  });

  it('reads every group from its variable', () => {
    const config = readConfig({
      METALPLANE_INVENTORY_TABLE: 'p-Inventory',
      METALPLANE_COMMANDS_TABLE: 'p-Commands',
      METALPLANE_CONNECTIONS_TABLE: 'p-Connections',
      METALPLANE_AUDIT_TABLE: 'p-Audit',
      METALPLANE_RESOURCE_PREFIX: 'p',
      METALPLANE_COMMANDS_DLQ: 'p-CommandsDeadLetter.fifo',
      METALPLANE_IMAGE_VERIFY_QUEUE: 'p-ImageVerify',
      METALPLANE_IMAGES_BUCKET: 'p-images',
      METALPLANE_SECRETS_KEY: 'alias/p-Secrets',
      METALPLANE_WS_MANAGEMENT_ENDPOINT: 'https://ws.example/prod',
      METALPLANE_WS_URL: 'wss://ws.example/prod',
      METALPLANE_PUBLIC_URL: 'https://metal.example/',
      METALPLANE_LOCAL_STACK: 'true',
      METALPLANE_AUTH_STRATEGY: 'noauth',
      METALPLANE_RATE_LIMIT_RPS: '0',
      METALPLANE_AUDIT_RETENTION_DAYS: '7',
      METALPLANE_DEPLOY_CALLBACK_TIMEOUT: '0.5',
      METALPLANE_IMAGE_WAIT_TIMEOUT: '60',
      METALPLANE_FORCE_POWER_STATE_DURING_SYNC: 'yes',
      METALPLANE_IMAGE_INLINE_VERIFY_BYTES: '0',
      METALPLANE_S3_FORCE_PATH_STYLE: '1',
    });
    expect(tableName(config, 'METALPLANE_INVENTORY_TABLE')).toBe('p-Inventory');
    expect(config.tables.audit).toBe('p-Audit');
    expect(config.resourcePrefix).toBe('p');
    expect(config.queues).toEqual({
      commandsDeadLetter: 'p-CommandsDeadLetter.fifo',
      imageVerify: 'p-ImageVerify',
    });
    expect(config.imagesBucket).toBe('p-images');
    expect(config.secretsKey).toBe('alias/p-Secrets');
    expect(config.webSocket).toEqual({
      managementEndpoint: 'https://ws.example/prod',
      url: 'wss://ws.example/prod',
    });
    expect(config.publicUrl).toBe('https://metal.example');
    expect(config.localStack).toBe(true);
    expect(config.auth).toEqual({ strategy: 'noauth', rateLimit: null });
    expect(config.audit.retentionDays).toBe(7);
    expect(config.provisioning).toMatchObject({ callbackTimeoutSeconds: 0.5, imageWaitTimeoutSeconds: 60 });
    expect(config.forcePowerStateDuringSync).toBe(true);
    expect(config.images).toEqual({ inlineVerifyBytes: 0, s3ForcePathStyle: true });
  });

  it.each([
    ['METALPLANE_LOCAL_STACK', 'maybe', /boolean/],
    ['METALPLANE_FORCE_POWER_STATE_DURING_SYNC', 'sometimes', /boolean/],
    ['METALPLANE_S3_FORCE_PATH_STYLE', '2', /boolean/],
    ['METALPLANE_DEPLOY_CALLBACK_TIMEOUT', 'soon', /positive number of seconds/],
    ['METALPLANE_DEPLOY_CALLBACK_TIMEOUT', '0', /positive number of seconds/],
    ['METALPLANE_IMAGE_WAIT_TIMEOUT', '-5', /positive number of seconds/],
    ['METALPLANE_IMAGE_INLINE_VERIFY_BYTES', '1.5', /whole number/],
    ['METALPLANE_IMAGE_INLINE_VERIFY_BYTES', 'lots', /whole number/],
    ['METALPLANE_AUDIT_RETENTION_DAYS', '0', /positive number of days/],
    ['METALPLANE_RATE_LIMIT_RPS', 'fast', /number/],
    ['METALPLANE_RATE_LIMIT_BURST', '0', /≥ 1/],
    ['METALPLANE_AUTH_STRATEGY', 'keystone', /noauth/],
    ['METALPLANE_PUBLIC_URL', 'metal.example', /absolute URL/],
    ['METALPLANE_WS_URL', 'not a url', /absolute URL/],
  ])('refuses %s=%j, naming the variable', (name, value, problem) => {
    const error = configError({ [name]: value });
    expect(error.variable).toBe(name);
    expect(error.message.startsWith(`${name} `)).toBe(true);
    expect(error.message).toMatch(problem);
  });

  it('says which resource name is missing at its first use', () => {
    const config = readConfig({});
    expect(() => tableName(config, 'METALPLANE_COMMANDS_TABLE')).toThrow(
      /^METALPLANE_COMMANDS_TABLE is not set: the table name comes from the environment$/,
    );
    expect(() =>
      required(config.secretsKey, 'METALPLANE_SECRETS_KEY', 'refusing to store secrets in clear'),
    ).toThrow('METALPLANE_SECRETS_KEY is not set: refusing to store secrets in clear');
  });
});
