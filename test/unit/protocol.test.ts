/** protocol/messages.ts: what each side accepts, and that anything else is refused. */
import { describe, expect, it } from 'vitest';
import {
  MAX_MESSAGE_BYTES,
  ProtocolError,
  parseAgentMessage,
  parseServerMessage,
} from '../../protocol/messages.ts';

const now = '2026-11-25T10:00:00.000Z';
const command = {
  id: 'c-1',
  node: '7d4c9e0a-0b1f-4d3e-9a3c-1f2e3d4c5b6a',
  action: 'power.set',
  args: { target: 'power on' },
  deadline: now,
  attempt: 1,
  receipt: 'r',
};

describe('agent messages', () => {
  it.each([
    {
      v: 1,
      type: 'hello',
      hostname: 'fra1-agent-1',
      agent_version: '0.1.0',
      drivers: ['ipmi', 'fake-hardware'],
    },
    { v: 1, type: 'heartbeat', sent_at: now },
    { v: 1, type: 'pull', max: 10 },
    { v: 1, type: 'command_ack', command_id: 'c-1', receipt: 'r' },
    {
      v: 1,
      type: 'command_result',
      command_id: 'c-1',
      receipt: 'r',
      status: 'failed',
      error: 'BMC timeout',
      finished_at: now,
    },
    { v: 1, type: 'power_report', reports: [{ node: 'n-1', power_state: 'power on', observed_at: now }] },
  ])('accepts $type', (message) => {
    expect(parseAgentMessage(JSON.stringify(message))).toStrictEqual(message);
  });

  it.each([
    ['not JSON', '{'],
    ['another version', JSON.stringify({ v: 2, type: 'heartbeat', sent_at: now })],
    ['an unknown type', JSON.stringify({ v: 1, type: 'shutdown' })],
    ['an extra field', JSON.stringify({ v: 1, type: 'pull', max: 1, sudo: true })],
    ['a pull of 11', JSON.stringify({ v: 1, type: 'pull', max: 11 })],
    [
      'a bad status',
      JSON.stringify({
        v: 1,
        type: 'command_result',
        command_id: 'c',
        receipt: 'r',
        status: 'maybe',
        finished_at: now,
      }),
    ],
    ['an id with a slash', JSON.stringify({ v: 1, type: 'command_ack', command_id: '../x', receipt: 'r' })],
    [
      'a bad power state',
      JSON.stringify({
        v: 1,
        type: 'power_report',
        reports: [{ node: 'n', power_state: 'on', observed_at: now }],
      }),
    ],
    [
      'a hostname with spaces',
      JSON.stringify({ v: 1, type: 'hello', hostname: 'a b', agent_version: '1', drivers: [] }),
    ],
    [
      'an oversize message',
      JSON.stringify({ v: 1, type: 'heartbeat', sent_at: now, pad: 'x'.repeat(MAX_MESSAGE_BYTES) }),
    ],
  ])('refuses %s', (_what, text) => {
    expect(() => parseAgentMessage(text)).toThrow(ProtocolError);
  });
});

describe('server messages', () => {
  it('accepts wake, commands and error', () => {
    expect(parseServerMessage('{"v":1,"type":"wake"}')).toStrictEqual({ v: 1, type: 'wake' });
    expect(parseServerMessage(JSON.stringify({ v: 1, type: 'commands', commands: [command] }))).toMatchObject(
      { commands: [command] },
    );
    expect(parseServerMessage(Buffer.from('{"v":1,"type":"error","message":"x"}'))).toMatchObject({
      type: 'error',
    });
  });

  it('refuses a command without a receipt or with an odd action', () => {
    const { receipt: _r, ...noReceipt } = command;
    expect(() =>
      parseServerMessage(JSON.stringify({ v: 1, type: 'commands', commands: [noReceipt] })),
    ).toThrow(ProtocolError);
    expect(() =>
      parseServerMessage(
        JSON.stringify({ v: 1, type: 'commands', commands: [{ ...command, action: 'rm -rf' }] }),
      ),
    ).toThrow(ProtocolError);
    expect(() =>
      parseServerMessage(JSON.stringify({ v: 1, type: 'commands', commands: Array(11).fill(command) })),
    ).toThrow(ProtocolError);
  });
});
