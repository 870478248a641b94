/**
 * protocol/versions.ts and the version fields of protocol/messages.ts: which protocols are
 * served, what an agent of each lacks, and that the previous release's messages still
 * validate (docs/upgrades.md).
 */
import { describe, expect, it } from 'vitest';
import { ACTION_NAMES } from '../../protocol/actions.ts';
import { parseAgentMessage, parseServerMessage, WIRE_VERSION } from '../../protocol/messages.ts';
import {
  agentFeatures,
  CURRENT_FEATURES,
  hasFeature,
  isSupportedProtocol,
  missingFeatures,
  OLDEST_SUPPORTED_PROTOCOL,
  PROTOCOL_1_FEATURES,
  PROTOCOL_FEATURES,
  PROTOCOL_VERSION,
  protocolRefusal,
  unsupportedActionError,
  unsupportedHelloProtocol,
} from '../../protocol/versions.ts';

/** The `hello` the previous release (agent 0.1.0, protocol 1) sends, byte for byte. */
const PREVIOUS_HELLO = {
  v: 1,
  type: 'hello',
  hostname: 'fra1-agent-1',
  agent_version: '0.1.0',
  drivers: ['fake-hardware', 'ipmi'],
};

describe('versions', () => {
  it('serves this protocol and the one before, and no other', () => {
    expect(WIRE_VERSION).toBe(1);
    expect(OLDEST_SUPPORTED_PROTOCOL).toBe(PROTOCOL_VERSION - 1);
    expect([0, 1, 2, 3].map(isSupportedProtocol)).toEqual([false, true, true, false]);
    const agent = { hostname: 'a', agent_version: '1.0.0' };
    expect(protocolRefusal(agent, PROTOCOL_VERSION)).toBeUndefined();
    expect(protocolRefusal(agent, PROTOCOL_VERSION - 1)).toBeUndefined();
    expect(protocolRefusal(agent, PROTOCOL_VERSION - 2)).toBe(
      'agent a (version 1.0.0, protocol 0) is too old: this control plane serves protocols 1 to 2; upgrade the agent',
    );
    expect(protocolRefusal({ hostname: 'b' }, PROTOCOL_VERSION + 1)).toBe(
      'agent b (version unknown, protocol 3) is newer than the control plane: this control plane serves protocols 1 to 2; upgrade the control plane or roll the agent back',
    );
  });

  it('features: the catalog and the protocol features; protocol 1 keeps its frozen catalog', () => {
    expect(CURRENT_FEATURES).toEqual(
      [...new Set([...ACTION_NAMES, ...Object.keys(PROTOCOL_FEATURES)])].sort(),
    );
    // Nothing a protocol-1 agent could run has left the catalog while protocol 1 is served.
    for (const action of PROTOCOL_1_FEATURES) expect(CURRENT_FEATURES).toContain(action);
    expect(new Set(PROTOCOL_1_FEATURES).size).toBe(PROTOCOL_1_FEATURES.length);
    // Every protocol feature came with a protocol this build speaks.
    for (const since of Object.values(PROTOCOL_FEATURES)) expect(since).toBeLessThanOrEqual(PROTOCOL_VERSION);
  });

  it('what an agent lacks: the baseline of its protocol, or what it announced', () => {
    expect(missingFeatures(1)).toEqual(
      CURRENT_FEATURES.filter((feature) => !PROTOCOL_1_FEATURES.includes(feature)),
    );
    expect(missingFeatures(1)).toContain('welcome');
    expect(missingFeatures(2)).toEqual([]);
    expect(
      missingFeatures(
        2,
        CURRENT_FEATURES.filter((f) => f !== 'boot.prepare'),
      ),
    ).toEqual(['boot.prepare']);
    expect(agentFeatures(1, null)).toBe(PROTOCOL_1_FEATURES);
    expect(hasFeature(1, undefined, 'welcome')).toBe(false);
    expect(hasFeature(1, undefined, 'power.set')).toBe(true);
    expect(hasFeature(2, ['noop'], 'power.set')).toBe(false);
    expect(unsupportedActionError({ hostname: 'x', agent_version: '0.1.0' }, 1, 'ramdisk.wait')).toBe(
      'agent x (version 0.1.0, protocol 1) does not support action ramdisk.wait: upgrade the agent',
    );
  });
});

describe('hello and welcome', () => {
  it("accepts the previous release's hello and today's", () => {
    expect(parseAgentMessage(JSON.stringify(PREVIOUS_HELLO))).toStrictEqual(PREVIOUS_HELLO);
    const today = { ...PREVIOUS_HELLO, protocol_version: 2, features: [...CURRENT_FEATURES] };
    expect(parseAgentMessage(JSON.stringify(today))).toStrictEqual(today);
    // An unsupported protocol still parses: the channel refuses it with its reason.
    expect(parseAgentMessage(JSON.stringify({ ...PREVIOUS_HELLO, protocol_version: 0 }))).toMatchObject({
      protocol_version: 0,
    });
  });

  it.each([
    ['a feature that is no name', { features: ['Power Set'] }],
    ['a protocol that is no integer', { protocol_version: 1.5 }],
    ['too many features', { features: Array.from({ length: 257 }, (_, i) => `f${i}`) }],
  ])('refuses %s', (_what, extra) => {
    expect(() => parseAgentMessage(JSON.stringify({ ...PREVIOUS_HELLO, ...extra }))).toThrow(/invalid hello/);
  });

  it('the welcome message', () => {
    const welcome = {
      v: 1,
      type: 'welcome',
      protocol_version: 2,
      oldest_supported_protocol: 1,
      missing_features: ['power.set'],
    };
    expect(parseServerMessage(JSON.stringify(welcome))).toStrictEqual(welcome);
    expect(() => parseServerMessage(JSON.stringify({ ...welcome, missing_features: undefined }))).toThrow();
  });

  it('names the protocol of a hello no schema of this build accepts', () => {
    const future = { ...PREVIOUS_HELLO, protocol_version: 3, novelty: { x: 1 } };
    expect(unsupportedHelloProtocol(JSON.stringify(future))).toBe(3);
    expect(unsupportedHelloProtocol(Buffer.from(JSON.stringify({ ...future, protocol_version: 0 })))).toBe(0);
    expect(unsupportedHelloProtocol(JSON.stringify({ v: 7, type: 'hello' }))).toBe(7);
    // Served protocols, other messages and non-JSON are left to the usual refusal.
    expect(unsupportedHelloProtocol(JSON.stringify({ ...future, protocol_version: 2 }))).toBeUndefined();
    expect(unsupportedHelloProtocol(JSON.stringify({ v: 1, type: 'hello', bogus: 1 }))).toBeUndefined();
    expect(unsupportedHelloProtocol(JSON.stringify({ v: 3, type: 'pull', max: 1 }))).toBeUndefined();
    expect(unsupportedHelloProtocol('{')).toBeUndefined();
    expect(unsupportedHelloProtocol('null')).toBeUndefined();
  });
});
