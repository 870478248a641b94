/**
 * The native RMCP+ power-status client and the power sweep, against real simulated BMCs
 * (OpenIPMI's ipmi_sim, lanplus, cipher suite 3), with ipmitool as the reference.
 */

import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpmiError, type IpmiTarget, Ipmitool, powerStatus } from '../../agent/drivers/ipmi/ipmitool.ts';
import {
  IpmitoolPowerProbe,
  NativePowerProbe,
  type SweepTarget,
  sweepPowerStates,
} from '../../agent/drivers/ipmi/power-probe.ts';
import { RmcpClient } from '../../agent/drivers/ipmi/rmcp/client.ts';
import { type SimulatedBmc, startBmc } from '../support/bmc.ts';

const ipmitool = new Ipmitool({ timeoutMs: 8000, minIntervalMs: 10 });
const bmcs: SimulatedBmc[] = [];
const sockets: Socket[] = [];
const native = new NativePowerProbe({ attemptTimeoutMs: 400, retries: 2 });

const target = (bmc: SimulatedBmc, extra: Partial<IpmiTarget> = {}): IpmiTarget => ({
  ipmi_address: '127.0.0.1',
  ipmi_port: bmc.port,
  ipmi_username: 'admin',
  ipmi_password: 'password',
  ipmi_cipher_suite: 3, // ipmi_sim lacks "Get Channel Cipher Suites" (see shared/lab)
  ...extra,
});

/** What a client datagram is: the handshake step it belongs to. */
function step(datagram: Buffer): string {
  if (datagram.length < 6) return 'junk';
  if (datagram.readUInt8(4) === 0x00) return 'channel auth capabilities'; // IPMI v1.5 framing
  const type = datagram.readUInt8(5) & 0x3f; // RMCP+ payload type
  if (type === 0x10) return 'open session';
  if (type === 0x12) return 'rakp 1';
  if (type === 0x14) return 'rakp 3';
  return `payload ${type}`;
}

/** A UDP proxy in front of a BMC port that records the steps it forwards to the BMC. */
async function countingProxy(bmcPort: number): Promise<{ port: number; requests: string[] }> {
  const front = createSocket('udp4');
  const back = createSocket('udp4');
  sockets.push(front, back);
  let client: { address: string; port: number } | undefined;
  const requests: string[] = [];
  front.on('message', (datagram, from) => {
    requests.push(step(datagram));
    client = { address: from.address, port: from.port };
    back.send(datagram, bmcPort, '127.0.0.1');
  });
  back.on('message', (answer) => {
    if (client) front.send(answer, client.port, client.address);
  });
  await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => back.bind(0, '127.0.0.1', resolve));
  return { port: front.address().port, requests };
}

/** A UDP port that is bound but never answers: a hung BMC. */
async function silentPort(): Promise<number> {
  const socket = createSocket('udp4');
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket.address().port;
}

beforeAll(async () => {
  bmcs.push(...(await Promise.all([startBmc(), startBmc(), startBmc()])));
  // ipmi_sim needs a moment to bind its port: bounded wait until each answers.
  const client = new RmcpClient({ attemptTimeoutMs: 200, retries: 0 });
  try {
    for (const bmc of bmcs) {
      for (let i = 0; i < 50; i++) {
        const ok = await client.powerState(target(bmc)).then(
          () => true,
          () => false,
        );
        if (ok) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  } finally {
    client.close();
  }
}, 30_000);

afterAll(async () => {
  native.close();
  for (const socket of sockets) socket.close();
  await Promise.all(bmcs.map((bmc) => bmc.stop()));
});

describe('native RMCP+ power status against ipmi_sim', () => {
  it('reads the same power state as ipmitool, on and off', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    for (const command of ['on', 'off', 'on'] as const) {
      await ipmitool.run(target(bmc), ['power', command]);
      const expected = command === 'on' ? 'power on' : 'power off';
      expect(await powerStatus(ipmitool, target(bmc))).toBe(expected);
      expect(await native.powerState(target(bmc))).toBe(expected);
    }
  });

  it('reads several BMCs in different states concurrently, each its own', async () => {
    const states = ['on', 'off', 'on'] as const;
    await Promise.all(bmcs.map((bmc, i) => ipmitool.run(target(bmc), ['power', states[i] as string])));
    // Several sessions per BMC and several BMCs at once, all on the one shared socket.
    const reads = await Promise.all(
      Array.from({ length: 4 }, () => bmcs.map((bmc) => native.powerState(target(bmc)))).flat(),
    );
    reads.forEach((state, i) => {
      expect(state).toBe(`power ${states[i % bmcs.length]}`);
    });
    expect(bmcs.map((bmc) => bmc.power())).toEqual(['1', '0', '1']);
  });

  it('a wrong password is an auth error, at once, without the password in the message', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    // Counted in front of the BMC: one datagram per handshake step, none sent again.
    const proxy = await countingProxy(bmc.port);
    const attemptTimeoutMs = 5000;
    const probe = new NativePowerProbe({ attemptTimeoutMs, retries: 2, fallback: null });
    const error = await probe
      .powerState({ ...target(bmc, { ipmi_password: 'wrong-password' }), ipmi_port: proxy.port })
      .catch((e: unknown) => e)
      .finally(() => probe.close());
    expect(error).toBeInstanceOf(IpmiError);
    expect((error as IpmiError).kind).toBe('auth');
    // Each step sent once: nothing resent, so no step waited for its attempt timeout. (The
    // RAKP 3 telling the BMC to drop the session is sent unanswered, just before the error:
    // it may still be on its way through the proxy.)
    expect(proxy.requests.filter((r) => r !== 'rakp 3')).toEqual([
      'channel auth capabilities',
      'open session',
      'rakp 1',
    ]);
    expect((error as IpmiError).message).not.toContain('wrong-password');
    // Refused handshakes do not leak BMC session slots (RAKP 3 with an error status tells
    // the BMC to drop them): more refusals than ipmi_sim's 63 slots, then a good read.
    for (let i = 0; i < 70; i++)
      await expect(native.powerState(target(bmc, { ipmi_password: `wrong-${i}` }))).rejects.toMatchObject({
        kind: 'auth',
      });
    expect(await native.powerState(target(bmc))).toMatch(/^power (on|off)$/);
    // An unknown user is refused by the BMC itself (RAKP 2 status): also `auth`.
    await expect(native.powerState(target(bmc, { ipmi_username: 'nobody' }))).rejects.toMatchObject({
      kind: 'auth',
    });
  });

  it('closes its sessions: more reads than the BMC has session slots keep working', async () => {
    const [, bmc] = bmcs as [SimulatedBmc, SimulatedBmc];
    // ipmi_sim refuses the 64th concurrent session ("insufficient resources", measured).
    const client = new RmcpClient({ attemptTimeoutMs: 400, retries: 1 });
    try {
      let ok = 0;
      for (let i = 0; i < 80; i++) {
        expect(await client.powerState(target(bmc))).toBe('power off');
        ok++;
      }
      expect(ok).toBe(80);
    } finally {
      client.close();
    }
  });

  it('without ipmi_cipher_suite, proposes 17, then 3 when the BMC refuses 17', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    const client = new RmcpClient({ attemptTimeoutMs: 400, retries: 1 });
    try {
      const expected = await powerStatus(ipmitool, target(bmc));
      expect(await client.powerState(target(bmc, { ipmi_cipher_suite: undefined }))).toBe(expected);
      // Asked for 17 explicitly, ipmi_sim refuses it: not natively supported → RmcpUnsupportedError.
      await expect(client.powerState(target(bmc, { ipmi_cipher_suite: 17 }))).rejects.toMatchObject({
        unsupported: true,
        cipherRefused: true,
      });
    } finally {
      client.close();
    }
  });

  it('falls back to ipmitool for what it does not implement (cipher suite 2), once per BMC', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    const fallbacks: string[] = [];
    const probe = new NativePowerProbe({
      attemptTimeoutMs: 400,
      fallback: new IpmitoolPowerProbe(ipmitool),
      onFallback: (_info, reason) => fallbacks.push(reason),
    });
    try {
      const info = target(bmc, { ipmi_cipher_suite: 2 });
      const expected = await powerStatus(ipmitool, info);
      expect(await probe.powerState(info)).toBe(expected);
      expect(await probe.powerState(info)).toBe(expected);
      expect(fallbacks).toHaveLength(1); // the second read went straight to ipmitool
      expect(fallbacks[0]).toMatch(/cipher suite 2/);
      // Auth failures do not fall back (ipmitool would only fail the same way, later).
      await expect(probe.powerState(target(bmc, { ipmi_password: 'nope' }))).rejects.toMatchObject({
        kind: 'auth',
      });
      expect(fallbacks).toHaveLength(1);
      // Without a fallback, an unsupported BMC is a `failed` read that says why.
      const noFallback = new NativePowerProbe({ attemptTimeoutMs: 400, fallback: null });
      await expect(noFallback.powerState(info)).rejects.toMatchObject({
        kind: 'failed',
        message: expect.stringMatching(/cipher suite 2/),
      });
      noFallback.close();
    } finally {
      probe.close();
    }
  });

  it('refuses malformed driver_info before sending anything', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    await expect(native.powerState(target(bmc, { ipmi_address: '-H evil' }))).rejects.toMatchObject({
      kind: 'invalid',
    });
    await expect(native.powerState(target(bmc, { ipmi_port: 70000 }))).rejects.toMatchObject({
      kind: 'invalid',
    });
    await expect(native.powerState(target(bmc, { ipmi_username: 'x'.repeat(17) }))).rejects.toMatchObject({
      kind: 'invalid',
    });
  });
});

describe('power sweep', () => {
  it('a silent BMC costs its own timeout and does not hold up the others', async () => {
    const silent = [await silentPort(), await silentPort()];
    await Promise.all(bmcs.map((bmc) => ipmitool.run(target(bmc), ['power', 'off'])));
    const targets: SweepTarget[] = [
      ...silent.map((port, i) => ({
        nodeId: `silent-${i}`,
        driverInfo: { ...target(bmcs[0] as SimulatedBmc), ipmi_port: port },
      })),
      ...bmcs.map((bmc, i) => ({ nodeId: `node-${i}`, driverInfo: target(bmc) })),
    ];
    // Seconds between a read and a deadline: the order of the ends this test checks never
    // depends on how busy the machine is.
    const timeoutMs = 3000;
    // The probe alone would try for 3 × 5000 ms: the sweep's per-BMC deadline ends it first.
    const probe = new NativePowerProbe({ attemptTimeoutMs: 5000, retries: 2, fallback: null });
    // Every end of a read, in order: the good BMCs' answers and the silent BMCs' deadlines.
    const ends: string[] = [];
    // Every start of a read, with how many reads had ended by then.
    const starts: { id: string; endsSoFar: number }[] = [];
    const recording = {
      powerState: (info: SweepTarget['driverInfo'], signal?: AbortSignal) => {
        const id = targets.find((t) => t.driverInfo.ipmi_port === info.ipmi_port)?.nodeId ?? '?';
        starts.push({ id, endsSoFar: ends.length });
        signal?.addEventListener('abort', () => ends.push(`deadline ${id}`));
        return probe.powerState(info, signal).then((state) => {
          ends.push(`answer ${id}`);
          return state;
        });
      },
    };
    // Concurrency 3: each silent BMC holds one worker, the three others go through the third.
    const results = await sweepPowerStates(targets, { probe: recording, concurrency: 3, timeoutMs }).finally(
      () => probe.close(),
    );
    const [first, second, ...rest] = results;
    for (const [i, result] of [first, second].entries()) {
      expect(result).toMatchObject({ nodeId: `silent-${i}`, ok: false, kind: 'timeout' });
      // The sweep's own deadline, not the probe's retries, ended it.
      expect(result?.ok === false && result.message).toMatch(/within 3000 ms/);
      expect(result?.elapsedMs).toBeGreaterThanOrEqual(timeoutMs - 50);
    }
    for (const result of rest) expect(result).toMatchObject({ ok: true, state: 'power off' });
    // The good BMCs all answered before either silent BMC's deadline.
    expect(ends.slice(0, 3).sort()).toEqual(['answer node-0', 'answer node-1', 'answer node-2']);
    expect(ends.slice(3).sort()).toEqual(['deadline silent-0', 'deadline silent-1']);
    // One timeout, not one per silent BMC: both silent reads began before anything ended.
    expect(starts.filter((s) => s.id.startsWith('silent-'))).toEqual([
      { id: 'silent-0', endsSoFar: 0 },
      { id: 'silent-1', endsSoFar: 0 },
    ]);
  });

  it('reports each failure with its kind and keeps going', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    const results = await sweepPowerStates(
      [
        { nodeId: 'bad-pw', driverInfo: target(bmc, { ipmi_password: 'nope' }) },
        { nodeId: 'bad-info', driverInfo: target(bmc, { ipmi_port: 0 }) },
        { nodeId: 'good', driverInfo: target(bmc) },
      ],
      { probe: native, concurrency: 3, timeoutMs: 2000 },
    );
    expect(results.map((r) => (r.ok ? r.state : r.kind))).toEqual(['auth', 'invalid', 'power off']);
  });

  it('works the same with the ipmitool probe', async () => {
    const results = await sweepPowerStates(
      bmcs.map((bmc, i) => ({ nodeId: `n${i}`, driverInfo: target(bmc) })),
      { probe: new IpmitoolPowerProbe(ipmitool), concurrency: 2, timeoutMs: 8000 },
    );
    expect(results.map((r) => r.ok && r.state)).toEqual(['power off', 'power off', 'power off']);
  });
});

describe('hostile or broken UDP peers', () => {
  it('ignores junk and tampered datagrams around the real answers', async () => {
    const [bmc] = bmcs as [SimulatedBmc];
    await ipmitool.run(target(bmc), ['power', 'on']);
    // A proxy in front of the BMC that precedes every real answer with junk: random bytes,
    // an empty datagram, the answer cut short, the answer with its message tag or session
    // ID changed (another session's), and, for integrity-protected answers, the answer
    // with a flipped byte (must fail the HMAC check and be dropped, not decrypted).
    const front = createSocket('udp4');
    const back = createSocket('udp4');
    sockets.push(front, back);
    let client: { address: string; port: number } | undefined;
    let junkSent = 0;
    front.on('message', (datagram, from) => {
      client = { address: from.address, port: from.port };
      back.send(datagram, bmc.port, '127.0.0.1');
    });
    back.on('message', (answer) => {
      if (!client) return;
      const { address, port } = client;
      const variants: Buffer[] = [
        randomBytes(1 + (answer.length % 60)),
        Buffer.alloc(0),
        answer.subarray(0, 12),
      ];
      if (answer.length > 20 && answer.readUInt8(4) === 0x06) {
        const otherTag = Buffer.from(answer);
        otherTag[16] = (otherTag.readUInt8(16) + 1) & 0xff; // payload byte 0: tag (pre-session)
        variants.push(otherTag);
        const otherSession = Buffer.from(answer);
        otherSession[6] = (otherSession.readUInt8(6) + 1) & 0xff; // header session ID
        variants.push(otherSession);
        if (answer.readUInt8(5) & 0x40) {
          const flipped = Buffer.from(answer);
          flipped[20] = flipped.readUInt8(20) ^ 0x01; // inside the encrypted payload
          variants.push(flipped);
        }
      }
      for (const junk of variants) front.send(junk, port, address);
      junkSent += variants.length;
      front.send(answer, port, address);
    });
    await new Promise<void>((resolve) => front.bind(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => back.bind(0, '127.0.0.1', resolve));
    const probe = new NativePowerProbe({ attemptTimeoutMs: 400, retries: 2, fallback: null });
    try {
      const proxied = { ...target(bmc), ipmi_port: front.address().port };
      for (let i = 0; i < 3; i++) expect(await probe.powerState(proxied)).toBe('power on');
      expect(junkSent).toBeGreaterThan(3 * 6 * 3); // junk around each of ≥ 6 answers per read
    } finally {
      probe.close();
    }
  });

  it('a peer answering only junk is a timeout, not a crash', async () => {
    const peer = createSocket('udp4');
    sockets.push(peer);
    let received = 0;
    peer.on('message', (datagram, from) => {
      received++;
      const reply = Buffer.from(datagram); // an echo looks like RMCP+ but is a request
      peer.send(reply, from.port, from.address);
      peer.send(randomBytes(40), from.port, from.address);
      const truncated = Buffer.from([0x06, 0x00, 0xff, 0x07, 0x06, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
      peer.send(truncated, from.port, from.address); // claims a 64 KiB payload it lacks
    });
    await new Promise<void>((resolve) => peer.bind(0, '127.0.0.1', resolve));
    const probe = new NativePowerProbe({ attemptTimeoutMs: 200, retries: 1, fallback: null });
    try {
      const error = await probe
        .powerState({ ...target(bmcs[0] as SimulatedBmc), ipmi_port: peer.address().port })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'timeout' });
      expect(received).toBe(2); // first try and one retry, then it gave up
    } finally {
      probe.close();
    }
  });
});
