/**
 * Secret masking. Expected values were produced by oslo.utils 10.2.0
 * `strutils.mask_dict_password(value, "******")` / `mask_password(text, "******")`
 * (the version in the pinned client virtualenv), so these pin our port to Ironic's
 * behaviour, quirks included.
 */
import { describe, expect, it } from 'vitest';
import {
  MASK,
  maskDriverInfo,
  maskDriverInternalInfo,
  maskInstanceInfo,
  maskPassword,
  maskSecrets,
  SANITIZE_KEYS,
} from '../../lambda/domain/auth/secrets.ts';

const OSLO_DICTS: [Record<string, unknown>, Record<string, unknown>][] = [
  [
    { ipmi_password: 'p', ipmi_username: 'admin', ipmi_address: '10.0.0.1' },
    { ipmi_password: '******', ipmi_username: 'admin', ipmi_address: '10.0.0.1' },
  ],
  [
    {
      IPMI_Password: 'x',
      redfish_password: 'y',
      snmp_auth_key: 'k',
      snmp_priv_key: 'k2',
      my_secret_thing: 1,
      api_token: null,
      x_configdrive: ['a'],
      kg_key: 'kg',
      ssh_key_contents: 'c',
    },
    {
      IPMI_Password: '******',
      redfish_password: '******',
      snmp_auth_key: 'k',
      snmp_priv_key: 'k2',
      my_secret_thing: '******',
      api_token: '******',
      x_configdrive: '******',
      kg_key: 'kg',
      ssh_key_contents: 'c',
    },
  ],
  [
    { nested: { password: 'a', deeper: { token: 'b', ok: 'c' } }, password: { inner: 'kept?' } },
    { nested: { password: '******', deeper: { token: '******', ok: 'c' } }, password: { inner: 'kept?' } },
  ],
  [
    { list: ['password=abc def', { secret: 1 }, ['--password xyz'], 5, null, true], n: 3.5, b: false },
    {
      list: ['password=****** def', { secret: '******' }, ['--password ******'], 5, null, true],
      n: 3.5,
      b: false,
    },
  ],
  [
    {
      cmd: '--password hunter2 --user bob',
      cfg: 'password = s3cret',
      q: "password='quoted val'",
      dq: 'password="dq val"',
      xml: '<password>x</password>',
      json: '{"password": "v", "user": "u"}',
    },
    {
      cmd: '--password ****** --user bob',
      cfg: 'password = ******',
      q: "password='******'",
      dq: 'password="******"',
      xml: '<password>******</password>',
      json: '{"password": "******", "user": "}',
    },
  ],
  [
    {
      s: 'admin_pass=foo adminPass=bar token=t1',
      t: "'auth_token' : 'tt'",
      u: "'original_password' : 'aaaaa'",
      v: 'PASSWORD1=abc',
      w: 'password --foo bar',
    },
    {
      s: 'admin_pass=****** adminPass=****** token=******',
      t: "'auth_token' : '******'",
      u: "'original_password' : '******'",
      v: 'PASSWORD1=******',
      w: 'password --foo ******',
    },
  ],
  [
    {
      wild: `{'password': 'a"b', 'x': 'y'}`,
      tuple: "('password', '--pw', u'val')",
      none: 'nothing here',
      emptys: '',
    },
    {
      wild: `{'password': '******"b', 'x': '}`,
      tuple: "('password', '--pw', u'******')",
      none: 'nothing here',
      emptys: '',
    },
  ],
  [
    {
      image_url: 'http://x/y?temp_url_sig=abc',
      image_source: 'glance://uuid',
      configdrive: { meta_data: {} },
      kernel_append_params: 'nofb password=zz',
    },
    {
      image_url: 'http://x/y?temp_url_sig=abc',
      image_source: 'glance://uuid',
      configdrive: { meta_data: {} },
      kernel_append_params: 'nofb password=******',
    },
  ],
  [
    { '': 'empty key', Secret_UUID: 'u', chapSecret: 'c', passphrase2: 'p' },
    { '': 'empty key', Secret_UUID: '******', chapSecret: '******', passphrase2: '******' },
  ],
  [
    { deploy: `ssh -o password=1 'token': "x" secret="y" --secret z` },
    { deploy: `ssh -o password=****** 'token': "******" secret=" --secret ******` },
  ],
];

const OSLO_STRINGS: [string, string][] = [
  ['password=abc', 'password=******'],
  ['--password hunter2 --user bob', '--password ****** --user bob'],
  ["'adminPass' : 'aaaaa'", "'adminPass' : '******'"],
  ['"password" : "aaaaa"', '"password" : "******"'],
  ['<password>x</password>', '<password>******</password>'],
  ['no secret', 'no secret'],
  ['mysecret=1 token=abc other', 'mysecret=****** token=****** other'],
  ["{'password': 'a', 'token': 'b'}", "{'password': '******', 'token': '}"],
  // Python's \s includes \x1c..\x1f and \x85 but not \ufeff.
  ['PASSWORD\u001c=\u001cx', 'PASSWORD\u001c=\u001c******'],
  ['token\ufeff=\ufeffx', 'token\ufeff=\ufeffx'],
  ['--secret\u0085 v', '--secret\u0085 ******'],
  // Python's case-insensitive [A-z] matches U+0130.
  ['adm\u0130n_pass=1 password -\u0130 x', 'adm\u0130n_pass=1 password -\u0130 ******'],
];

describe('maskSecrets (oslo.utils mask_dict_password)', () => {
  it.each(OSLO_DICTS.map(([input, expected], index) => ({ index, input, expected })))(
    'matches oslo.utils on case $index',
    ({ input, expected }) => {
      expect(maskSecrets(input)).toEqual(expected);
    },
  );

  it('masks any key containing a sanitize key, case-insensitively, whatever the value type', () => {
    const masked = maskSecrets({ ipmi_password: 'x', ILO_PASSWORD: 2, auth_token: [1], n: null, ok: 'fine' });
    expect(masked).toEqual({
      ipmi_password: MASK,
      ILO_PASSWORD: MASK,
      auth_token: MASK,
      n: null,
      ok: 'fine',
    });
  });

  it('recurses into a dict even under a secret key, as oslo does', () => {
    expect(maskSecrets({ password: { user: 'u', password: 'p' } })).toEqual({
      password: { user: 'u', password: MASK },
    });
  });

  it('returns a copy and leaves the input untouched', () => {
    const input = { ipmi_password: 'p', nested: { token: 't' }, list: ['password=x'] };
    const before = structuredClone(input);
    const masked = maskSecrets(input);
    expect(input).toEqual(before);
    expect(masked.nested).not.toBe(input.nested);
    expect(masked.list).not.toBe(input.list);
  });

  it('keeps a `__proto__` key as data and does not touch the prototype', () => {
    const input = JSON.parse('{"__proto__": {"password": "p", "x": 1}, "a": 1}') as Record<string, unknown>;
    const masked = maskSecrets(input);
    expect(Object.getPrototypeOf(masked)).toBe(Object.prototype);
    expect(Object.hasOwn(masked, '__proto__')).toBe(true);
    expect(JSON.parse(JSON.stringify(masked))).toEqual(
      JSON.parse('{"__proto__": {"password": "******", "x": 1}, "a": 1}'),
    );
  });

  it('throws a TypeError for a non-object, as oslo does', () => {
    expect(() => maskSecrets(null as any)).toThrow(TypeError);
    expect(() => maskSecrets([] as any)).toThrow(TypeError);
    expect(() => maskSecrets('x' as any)).toThrow(TypeError);
  });

  it('uses the oslo.utils 10.2.0 key list', () => {
    expect(SANITIZE_KEYS).toHaveLength(35);
    expect(SANITIZE_KEYS).toEqual(
      expect.arrayContaining(['password', 'secret', 'token', 'private_key', 'chapsecret']),
    );
  });
});

describe('maskPassword (oslo.utils mask_password)', () => {
  it.each(OSLO_STRINGS)('%j → %j', (input, expected) => {
    expect(maskPassword(input)).toBe(expected);
  });

  it('uses the secret it is given', () => {
    expect(maskPassword('password=abc', '???')).toBe('password=???');
  });
});

describe('node fields as Ironic shows them', () => {
  it('driver_info: masked', () => {
    expect(maskDriverInfo({ ipmi_address: '10.1.1.1', ipmi_password: 'hunter2' })).toEqual({
      ipmi_address: '10.1.1.1',
      ipmi_password: MASK,
    });
  });

  it('instance_info: masked, and a non-empty image_url hidden', () => {
    expect(maskInstanceInfo({ image_url: 'http://s/x?sig=1', configdrive: 'abc', root_gb: 10 })).toEqual({
      image_url: MASK,
      configdrive: MASK,
      root_gb: 10,
    });
    expect(maskInstanceInfo({ image_url: '' })).toEqual({ image_url: '' });
    expect(maskInstanceInfo({ image_source: 'http://x' })).toEqual({ image_source: 'http://x' });
  });

  it('driver_internal_info: only a set agent_secret_token is hidden, nothing else is masked', () => {
    const internal = {
      agent_secret_token: 's3',
      agent_url: 'http://10.0.0.9:9999',
      clean_steps: null,
      password: 'x',
    };
    expect(maskDriverInternalInfo(internal)).toEqual({ ...internal, agent_secret_token: MASK });
    expect(maskDriverInternalInfo({ agent_secret_token: null })).toEqual({ agent_secret_token: null });
    expect(internal.agent_secret_token).toBe('s3');
  });
});
