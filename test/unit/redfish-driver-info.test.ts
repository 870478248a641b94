/** The redfish hardware type's `driver_info` checks (Ironic's `parse_driver_info` messages). */
import { describe, expect, it } from 'vitest';
import {
  redfishAddress,
  redfishDriverInfoProblem,
} from '../../lambda/domain/hardware/redfish/driver-info.ts';
import { redfish } from '../../lambda/domain/hardware/redfish/index.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const problem = (info: Record<string, unknown>) => redfishDriverInfoProblem(NODE, info);

describe('redfish driver_info', () => {
  it('needs redfish_address, as Ironic says it', () => {
    expect(problem({})).toBe(
      `Missing the following Redfish properties in node ${NODE} driver_info: ['redfish_address']`,
    );
    expect(problem({ redfish_address: '' })).toMatch(/^Missing the following Redfish properties/);
  });

  it('takes https when no scheme is given; refuses other schemes, credentials and queries', () => {
    expect(redfishAddress('bmc.example.com')?.href).toBe('https://bmc.example.com/');
    expect(redfishAddress('http://10.0.0.5:8000/redfish/v1')?.pathname).toBe('/redfish/v1');
    expect(redfishAddress('[fd00::5]')?.hostname).toBe('[fd00::5]');
    for (const bad of [
      'ftp://bmc',
      'https://user:pw@bmc',
      'https://bmc/?x=1',
      'https://',
      'http:// spaced',
    ]) {
      expect(problem({ redfish_address: bad })).toBe(
        `Invalid Redfish address ${bad} set in driver_info/redfish_address on node ${NODE}`,
      );
    }
    expect(problem({ redfish_address: 42 })).toMatch(/^Invalid Redfish address 42 /);
  });

  it('checks system id, verify_ca, auth type and credentials with Ironic’s messages', () => {
    const base = { redfish_address: 'https://bmc' };
    expect(problem({ ...base, redfish_system_id: 'Systems/1' })).toMatch(
      /^Invalid value "Systems\/1" set in driver_info\/redfish_system_id on node /,
    );
    expect(problem({ ...base, redfish_system_id: '/redfish/v1/Systems/1' })).toBeUndefined();
    for (const ok of [true, false, 'True', 'no', '0', '/etc/ssl/bmc-ca.pem']) {
      expect(problem({ ...base, redfish_verify_ca: ok })).toBeUndefined();
    }
    for (const bad of ['maybe', 'certs/ca.pem', 3]) {
      expect(problem({ ...base, redfish_verify_ca: bad })).toBe(
        `Invalid value type set in driver_info/redfish_verify_ca on node ${NODE}. The value should be a Boolean or the path to a file/directory, not "${bad}"`,
      );
    }
    for (const ok of ['basic', 'session', 'auto']) {
      expect(problem({ ...base, redfish_auth_type: ok })).toBeUndefined();
    }
    expect(problem({ ...base, redfish_auth_type: 'Basic' })).toMatch(/^Invalid value "Basic" set in/);
    expect(problem({ ...base, redfish_password: 'a\nb' })).toBe(
      'Invalid redfish_password: it must be a string without NUL or newline characters.',
    );
    expect(problem({ ...base, redfish_username: 7 })).toMatch(/^Invalid redfish_username/);
  });

  it('composes power and management redfish with the agent baseline, and virtual media boot', () => {
    expect(redfish.interfaces.power).toStrictEqual({ default: 'redfish', enabled: ['redfish'] });
    expect(redfish.interfaces.management).toStrictEqual({ default: 'redfish', enabled: ['redfish'] });
    expect(redfish.interfaces.boot).toStrictEqual({
      default: 'ipxe',
      enabled: ['ipxe', 'pxe', 'redfish-virtual-media'],
    });
    expect(redfish.interfaces.deploy.default).toBe('direct');
    expect(Object.keys(redfish.properties)).toContain('redfish_verify_ca');
  });
});
