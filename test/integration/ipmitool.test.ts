/** The agent's ipmitool runner against real simulated BMCs (ipmi_sim, lanplus). */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectionArgs,
  getBootDevice,
  IpmiError,
  Ipmitool,
  powerStatus,
  setBootDevice,
} from '../../agent/drivers/ipmi/ipmitool.ts';
import { type SimulatedBmc, startBmc } from '../support/bmc.ts';

let bmc: SimulatedBmc;
const ipmitool = new Ipmitool({ timeoutMs: 8000, minIntervalMs: 20 });
const target = () => ({
  ipmi_address: '127.0.0.1',
  ipmi_port: bmc.port,
  ipmi_username: 'admin',
  ipmi_password: 'password',
  ipmi_cipher_suite: 3, // ipmi_sim lacks "Get Channel Cipher Suites" (see shared/lab)
});

beforeAll(async () => {
  bmc = await startBmc();
  // ipmi_sim needs a moment to bind its port.
  for (let i = 0; i < 50; i++) {
    try {
      await powerStatus(ipmitool, target());
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}, 30_000);
afterAll(() => bmc?.stop());

describe('ipmitool against ipmi_sim', () => {
  it('powers on and off, and reads the state back', async () => {
    await ipmitool.run(target(), ['power', 'on']);
    expect(await powerStatus(ipmitool, target())).toBe('power on');
    expect(bmc.power()).toBe('1');
    await ipmitool.run(target(), ['power', 'off']);
    expect(await powerStatus(ipmitool, target())).toBe('power off');
    expect(bmc.power()).toBe('0');
  });

  it('sets the boot device, persistent or not, and reads it back', async () => {
    await setBootDevice(ipmitool, target(), 'pxe', true);
    expect(bmc.boot()).toBe('pxe');
    // ipmi_sim keeps the device but not the persistence flag ("Options apply to only next
    // boot" whatever was set): only the device can be read back from it.
    const read = await getBootDevice(ipmitool, target());
    expect(read.device).toBe('pxe');
    expect(typeof read.persistent).toBe('boolean');
    await setBootDevice(ipmitool, target(), 'cdrom', false);
    expect(bmc.boot()).toBe('cdrom');
    expect((await getBootDevice(ipmitool, target())).device).toBe('cdrom');
  });

  it('a wrong password is an auth error, quickly, and the password never reaches the command line', async () => {
    // ipmitool says the same words for a refusal and for silence; only a refusal comes back
    // before its per-try timeout (-N). Made 5 s here, so telling them apart needs no quick machine.
    const patient = new Ipmitool({ timeoutMs: 20_000, retryTimeoutSeconds: 5 });
    const error = await powerStatus(patient, { ...target(), ipmi_password: 'wrong-password' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(IpmiError);
    // 'auth', not 'unreachable': the driver saw the answer come back before a per-try timeout.
    expect((error as IpmiError).kind).toBe('auth');
    expect((error as IpmiError).message).not.toContain('wrong-password');
  });

  it('a BMC that does not answer costs one timeout and does not hold up another BMC', async () => {
    const socket = createSocket('udp4'); // bound, never answers: a hung BMC
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      const silent = { ...target(), ipmi_port: socket.address().port };
      // ipmitool alone would wait 2 × 5 s: the runner's 4 s timeout ends it first.
      let settled = false;
      const slow = powerStatus(new Ipmitool({ timeoutMs: 4000, retryTimeoutSeconds: 5 }), silent)
        .catch((e: unknown) => e)
        .finally(() => {
          settled = true;
        });
      expect(await powerStatus(ipmitool, target())).toMatch(/^power (on|off)$/);
      expect(settled).toBe(false); // the other BMC answered while this one was still silent
      const error = (await slow) as IpmiError;
      expect(error).toBeInstanceOf(IpmiError);
      expect(error.kind).toBe('timeout');
      expect(error.message).toMatch(/within 4000 ms/);
    } finally {
      socket.close();
    }
  });

  it('never puts the password in the arguments (it goes in a 0600 file)', () => {
    const args = connectionArgs({ ...target(), ipmi_password: 's3cret-pw' });
    expect(args.join(' ')).not.toContain('s3cret-pw');
    expect(args).not.toContain('-P');
  });

  it('refuses malformed driver_info before running anything', async () => {
    await expect(powerStatus(ipmitool, { ...target(), ipmi_address: '-H evil' })).rejects.toMatchObject({
      kind: 'invalid',
    });
    await expect(powerStatus(ipmitool, { ...target(), ipmi_port: 70000 })).rejects.toMatchObject({
      kind: 'invalid',
    });
    await expect(
      powerStatus(ipmitool, { ...target(), ipmi_priv_level: 'ROOT' as never }),
    ).rejects.toMatchObject({ kind: 'invalid' });
  });

  it('runs one call at a time per BMC', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => powerStatus(ipmitool, target())));
    expect(new Set(results).size).toBe(1);
    const calls = bmc.power(); // state unchanged by reads
    expect(['0', '1']).toContain(calls);
  });
});
