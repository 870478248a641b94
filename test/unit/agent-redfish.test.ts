/**
 * The agent's redfish hardware type without a BMC: driver_info parsing (Ironic's messages),
 * the power and boot device mappings, the circuit breaker's states on an injected clock,
 * error formatting, and that the password never shows in a message.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../agent/drivers/redfish/breaker.ts';
import {
  parseRedfishDriverInfo,
  quotePath,
  type RedfishTarget,
  redfishDriverInfoProblem,
} from '../../agent/drivers/redfish/driver-info.ts';
import { bmcMessage, isTlsCode, RedfishError, redact } from '../../agent/drivers/redfish/errors.ts';
import { redfishModule } from '../../agent/drivers/redfish/index.ts';
import {
  BOOT_TARGETS,
  bootDeviceOf,
  bootPatch,
  supportedBootDevicesOf,
} from '../../agent/drivers/redfish/management.ts';
import { POWER_STATE_MAP, powerStateOf, RESET_TYPES } from '../../agent/drivers/redfish/power.ts';
import { defaultDriverContext } from '../../agent/drivers/registry.ts';
import { SUPPORTED_BOOT_DEVICES } from '../../protocol/actions.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const SECRET = 'S3cret-Pa55word';
const dir = mkdtempSync(join(tmpdir(), 'metalplane-redfish-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function target(info: Record<string, unknown>): RedfishTarget {
  const parsed = parseRedfishDriverInfo(info, NODE);
  if ('problem' in parsed) throw new Error(parsed.problem);
  return parsed.target;
}
const problem = (info: Record<string, unknown>) => redfishDriverInfoProblem(info, NODE);

describe('redfish driver_info', () => {
  it('needs redfish_address, in Ironic’s words', () => {
    for (const missing of [{}, { redfish_address: '' }, { redfish_address: null }]) {
      expect(problem(missing)).toBe(
        `Missing the following Redfish properties in node ${NODE} driver_info: ['redfish_address']`,
      );
    }
    // An action's validate does not know the node.
    expect(redfishDriverInfoProblem({})).toBe(
      "Missing the following Redfish properties in node (unknown) driver_info: ['redfish_address']",
    );
  });

  it('assumes https, takes a path as the root prefix (default /redfish/v1), keeps the port', () => {
    expect(target({ redfish_address: 'bmc.example.com' })).toMatchObject({
      address: 'https://bmc.example.com',
      rootPrefix: '/redfish/v1',
    });
    expect(target({ redfish_address: 'http://10.0.0.5:8000' })).toMatchObject({
      address: 'http://10.0.0.5:8000',
      rootPrefix: '/redfish/v1',
    });
    expect(target({ redfish_address: 'https://10.0.0.5/custom/root/' }).rootPrefix).toBe('/custom/root');
    expect(target({ redfish_address: '[fd00::5]:8443' }).address).toBe('https://[fd00::5]:8443');
  });

  it('refuses unusable addresses, never echoing credentials in one', () => {
    for (const bad of ['ftp://bmc', 'https://bmc/?x=1', 'https://', 'http:// spaced', 42]) {
      expect(problem({ redfish_address: bad })).toBe(
        `Invalid Redfish address ${bad} set in driver_info/redfish_address on node ${NODE}`,
      );
    }
    const message = problem({ redfish_address: `https://admin:${SECRET}@bmc` });
    expect(message).toBe(
      `Invalid Redfish address https://***@bmc set in driver_info/redfish_address on node ${NODE}`,
    );
    expect(message).not.toContain(SECRET);
  });

  it('takes redfish_system_id as a path, quoted as urllib.parse.quote does', () => {
    expect(target({ redfish_address: 'bmc', redfish_system_id: '/redfish/v1/Systems/1' }).systemId).toBe(
      '/redfish/v1/Systems/1',
    );
    expect(quotePath('/redfish/v1/Systems/a b/é~')).toBe('/redfish/v1/Systems/a%20b/%C3%A9~');
    expect(target({ redfish_address: 'bmc' }).systemId).toBeUndefined();
    expect(problem({ redfish_address: 'bmc', redfish_system_id: 'Systems/1' })).toBe(
      `Invalid value "Systems/1" set in driver_info/redfish_system_id on node ${NODE}. The value should be a path (string) to the resource that the driver will interact with. For example: /redfish/v1/Systems/1`,
    );
  });

  it('reads redfish_verify_ca as oslo’s strict booleans, or a file or directory on the agent', () => {
    const verify = (value: unknown) => target({ redfish_address: 'bmc', redfish_verify_ca: value }).verify;
    expect(verify(undefined)).toBe(true);
    for (const yes of [true, 'true', 'True', 'yes', 'y', '1', 't', 'on']) expect(verify(yes)).toBe(true);
    for (const no of [false, 'false', 'no', 'N', '0', 'f', 'off']) expect(verify(no)).toBe(false);
    const bundle = join(dir, 'ca.pem');
    writeFileSync(bundle, '-----BEGIN CERTIFICATE-----\n');
    mkdirSync(join(dir, 'cas'), { recursive: true });
    expect(verify(bundle)).toStrictEqual({ ca: bundle });
    expect(verify(join(dir, 'cas'))).toStrictEqual({ ca: join(dir, 'cas') });
    for (const bad of ['maybe', join(dir, 'missing.pem'), 3]) {
      expect(problem({ redfish_address: 'bmc', redfish_verify_ca: bad })).toBe(
        `Invalid value type set in driver_info/redfish_verify_ca on node ${NODE}. The value should be a Boolean or the path to a file/directory, not "${bad}"`,
      );
    }
  });

  it('takes auth type basic, session or auto (the default)', () => {
    expect(target({ redfish_address: 'bmc' }).authType).toBe('auto');
    for (const type of ['basic', 'session', 'auto']) {
      expect(target({ redfish_address: 'bmc', redfish_auth_type: type }).authType).toBe(type);
    }
    expect(problem({ redfish_address: 'bmc', redfish_auth_type: 'x' })).toBe(
      `Invalid value "x" set in driver_info/redfish_auth_type on node ${NODE}. The value should be one of "basic", "session" or "auto".`,
    );
  });

  it('checks credentials without ever printing them', () => {
    const info = { redfish_address: 'bmc', redfish_username: 'admin', redfish_password: SECRET };
    expect(target(info)).toMatchObject({ username: 'admin', password: SECRET });
    const message = problem({ ...info, redfish_password: `${SECRET}\n` });
    expect(message).toBe('Invalid redfish_password: it must be a string without NUL or newline characters.');
    expect(problem({ ...info, redfish_username: 7 })).toMatch(/^Invalid redfish_username: /);
  });
});

describe('redfish power and boot device mappings', () => {
  it('maps PowerState as Ironic’s GET_POWER_STATE_MAP; anything else is an error', () => {
    expect(POWER_STATE_MAP).toStrictEqual({
      On: 'power on',
      PoweringOn: 'power on',
      Off: 'power off',
      PoweringOff: 'power off',
    });
    expect(powerStateOf({ PowerState: 'PoweringOff' }, 'https://bmc')).toBe('power off');
    expect(() => powerStateOf({ PowerState: 'Paused' }, 'https://bmc')).toThrow(
      'Redfish BMC at https://bmc reports an unknown PowerState "Paused"',
    );
    expect(() => powerStateOf({}, 'https://bmc')).toThrow(/unknown PowerState null/);
  });

  it('asks for Ironic’s ResetTypes', () => {
    expect(RESET_TYPES).toStrictEqual({
      on: 'On',
      off: 'ForceOff',
      soft: 'GracefulShutdown',
      reset: 'ForceRestart',
      cycle: 'PowerCycle',
    });
  });

  it('maps boot devices both ways; Disabled is no device; persistence from Enabled', () => {
    expect(BOOT_TARGETS).toStrictEqual({ pxe: 'Pxe', disk: 'Hdd', cdrom: 'Cd', bios: 'BiosSetup' });
    const system = (target: string, enabled?: string) => ({
      Boot: { BootSourceOverrideTarget: target, BootSourceOverrideEnabled: enabled },
    });
    expect(bootDeviceOf(system('Pxe', 'Continuous'))).toStrictEqual({ boot_device: 'pxe', persistent: true });
    expect(bootDeviceOf(system('Hdd', 'Once'))).toStrictEqual({ boot_device: 'disk', persistent: false });
    expect(bootDeviceOf(system('Cd', 'Once'))).toStrictEqual({ boot_device: 'cdrom', persistent: false });
    expect(bootDeviceOf(system('BiosSetup', 'Continuous'))).toStrictEqual({
      boot_device: 'bios',
      persistent: true,
    });
    expect(bootDeviceOf(system('Pxe', 'Disabled'))).toStrictEqual({ boot_device: null, persistent: null });
    expect(bootDeviceOf(system('UefiHttp', 'Once'))).toStrictEqual({ boot_device: null, persistent: false });
    expect(bootDeviceOf({})).toStrictEqual({ boot_device: null, persistent: null });
  });

  it('sends BootSourceOverrideEnabled only when it changes (Ironic’s _set_boot_device)', () => {
    const now = (enabled: string) => ({ Boot: { BootSourceOverrideEnabled: enabled } });
    expect(bootPatch(now('Continuous'), 'pxe', false)).toStrictEqual({
      Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' },
    });
    expect(bootPatch(now('Continuous'), 'disk', true)).toStrictEqual({
      Boot: { BootSourceOverrideTarget: 'Hdd' },
    });
    expect(bootPatch(now('Disabled'), 'cdrom', true)).toStrictEqual({
      Boot: { BootSourceOverrideTarget: 'Cd', BootSourceOverrideEnabled: 'Continuous' },
    });
  });

  it('reads the supported boot devices from AllowableValues (all four when not said)', () => {
    const allowing = (values: string[]) => ({
      Boot: { 'BootSourceOverrideTarget@Redfish.AllowableValues': values },
    });
    expect(supportedBootDevicesOf(allowing(['Pxe', 'Cd', 'Hdd', 'UefiHttp']))).toStrictEqual([
      'pxe',
      'disk',
      'cdrom',
    ]);
    expect(supportedBootDevicesOf({})).toStrictEqual(['pxe', 'disk', 'cdrom', 'bios']);
  });

  it('is the redfish hardware type, with Ironic’s redfish interfaces and boot devices', () => {
    const driver = redfishModule.create(defaultDriverContext());
    try {
      expect(driver.name).toBe('redfish');
      expect(driver.interfaces.power?.name).toBe('redfish');
      expect(driver.interfaces.management?.name).toBe('redfish');
      expect(driver.interfaces.power?.actions.map((a) => a.name)).toStrictEqual(['power.set', 'power.get']);
      const management = driver.interfaces.management?.actions.map((a) => a.name) ?? [];
      expect(management).toEqual(
        expect.arrayContaining([
          'management.set_boot_device',
          'management.get_boot_device',
          'management.inject_nmi',
        ]),
      );
      expect(driver.powerProbe).toBeTypeOf('function');
      const setBoot = driver.interfaces.management?.actions.find(
        (a) => a.name === 'management.set_boot_device',
      );
      const info = { redfish_address: 'bmc' };
      expect(setBoot?.validate?.({ driver_info: info, boot_device: 'safe' })).toBe(
        'Invalid boot device safe specified.',
      );
      for (const device of SUPPORTED_BOOT_DEVICES.redfish) {
        expect(setBoot?.validate?.({ driver_info: info, boot_device: device })).toBeUndefined();
      }
      expect(setBoot?.validate?.({ driver_info: {}, boot_device: 'pxe' })).toMatch(/^Missing the following/);
    } finally {
      driver.close?.();
    }
  });
});

describe('redfish circuit breaker', () => {
  it('opens on a failure for the cool-down, lets one trial through, closes on an answer', () => {
    let now = 1_000_000;
    const breaker = new CircuitBreaker({ cooldownMs: 30_000, now: () => now });
    expect(breaker.state).toBe('closed');
    expect(breaker.peek()).toBeUndefined();
    expect(breaker.enter()).toBeUndefined();

    breaker.failure('connect ECONNREFUSED 10.0.0.5:443');
    expect(breaker.state).toBe('open');
    expect(breaker.peek()).toBe('circuit open, next try in 30s, after: connect ECONNREFUSED 10.0.0.5:443');
    expect(breaker.enter()).toBe(breaker.peek());
    now += 29_500;
    expect(breaker.enter()).toBe('circuit open, next try in 1s, after: connect ECONNREFUSED 10.0.0.5:443');

    now += 500; // cooled down: one trial, the others wait for its verdict
    expect(breaker.peek()).toBeUndefined();
    expect(breaker.enter()).toBeUndefined();
    expect(breaker.state).toBe('half-open');
    expect(breaker.enter()).toMatch(
      /^circuit half-open, a trial call is in flight, after: connect ECONNREFUSED/,
    );

    breaker.failure('timeout'); // the trial failed: open again, for a whole cool-down
    expect(breaker.state).toBe('open');
    expect(breaker.peek()).toBe('circuit open, next try in 30s, after: timeout');

    now += 30_000;
    expect(breaker.enter()).toBeUndefined();
    breaker.success(); // the trial got an answer
    expect(breaker.state).toBe('closed');
    expect(breaker.reason).toBe('');
    expect(breaker.enter()).toBeUndefined();
  });

  it('gives a trial abandoned by its caller to the next call at once', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ cooldownMs: 10_000, now: () => now });
    breaker.failure('timeout');
    now = 10_000;
    expect(breaker.enter()).toBeUndefined();
    breaker.abandon();
    expect(breaker.state).toBe('open');
    expect(breaker.enter()).toBeUndefined(); // no new cool-down
    expect(breaker.state).toBe('half-open');
    breaker.abandon();
    breaker.abandon(); // harmless when not half-open
    expect(breaker.state).toBe('open');
  });
});

describe('redfish error formatting', () => {
  it('takes the BMC’s message from Redfish’s error object', () => {
    const extended = JSON.stringify({
      error: {
        code: 'Base.1.0.GeneralError',
        message: 'A general error has occurred. See ExtendedInfo for more information.',
        '@Message.ExtendedInfo': [
          { MessageId: 'Base.1.0.ActionParameterNotSupported', Message: 'ResetType Bogus is not supported.' },
          { MessageId: 'Base.1.0.Other', Message: 'Second.' },
        ],
      },
    });
    expect(bmcMessage(extended)).toBe('Base.1.0.GeneralError: ResetType Bogus is not supported.; Second.');
    // sushy-emulator's ExtendedInfo has no Message: error.message then.
    const sushy = JSON.stringify({
      error: {
        code: 'Base.1.0.GeneralError',
        message: 'Power state Bogus is not supported',
        '@Message.ExtendedInfo': [{ MessageId: 'Base.1.0.GeneralError' }],
      },
    });
    expect(bmcMessage(sushy)).toBe('Base.1.0.GeneralError: Power state Bogus is not supported');
    expect(bmcMessage(JSON.stringify({ error: { code: 'Only.Code' } }))).toBe('Only.Code');
  });

  it('falls back to a trimmed excerpt of text or HTML; nothing for an empty body', () => {
    expect(bmcMessage('PATCH only works for Boot and IndicatorLED elements')).toBe(
      'PATCH only works for Boot and IndicatorLED elements',
    );
    const html =
      '<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error.</p>';
    expect(bmcMessage(html)).toBe(
      '500 Internal Server Error Internal Server Error The server encountered an internal error.',
    );
    expect(bmcMessage('x'.repeat(500))).toBe(`${'x'.repeat(200)}…`);
    expect(bmcMessage('  \n')).toBeUndefined();
    expect(bmcMessage('[1, 2]')).toBe('[1, 2]');
  });

  it('tells TLS failures from the others by Node’s codes', () => {
    for (const code of [
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'CERT_HAS_EXPIRED',
      'ERR_SSL_WRONG_VERSION_NUMBER',
    ]) {
      expect(isTlsCode(code)).toBe(true);
    }
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', undefined])
      expect(isTlsCode(code)).toBe(false);
  });

  it('scrubs secrets from messages (not ones too short to mean anything)', () => {
    const basic = Buffer.from(`admin:${SECRET}`).toString('base64');
    expect(redact(`echo: ${SECRET} / Basic ${basic}`, [SECRET, basic, undefined])).toBe(
      'echo: *** / Basic ***',
    );
    expect(redact('a bad answer', ['a'])).toBe('a bad answer');
  });

  it('is an ActionFailure carrying its kind and status', () => {
    const error = new RedfishError('http', 'Redfish BMC at https://bmc answered HTTP 500 to GET /x', {
      status: 500,
    });
    expect(error.name).toBe('ActionFailure');
    expect(error).toMatchObject({ kind: 'http', status: 500, detail: error.message });
  });
});
