/** The agent's fake-hardware: simulated power, and the fault switch rollouts are rehearsed with. */
import { describe, expect, it } from 'vitest';
import { FakeHardwareState, fakePowerControl } from '../../agent/drivers/fake-hardware/index.ts';

const handle = (driverInfo: Record<string, unknown>) => ({
  node: 'node-1',
  driverInfo,
  signal: new AbortController().signal,
});

describe('fake-hardware power', () => {
  it('powers a node on and reads it back', async () => {
    const control = fakePowerControl(new FakeHardwareState());
    await control.chassis(handle({}), 'on');
    expect(await control.powerState(handle({}))).toBe('power on');
  });

  it('fails every power action of a node with driver_info.fake_fault, and changes nothing', async () => {
    const state = new FakeHardwareState();
    const control = fakePowerControl(state);
    await expect(control.chassis(handle({ fake_fault: 'BMC unreachable' }), 'on')).rejects.toThrow(
      'simulated BMC fault: BMC unreachable',
    );
    expect(await control.powerState(handle({}))).toBe('power off');
    expect(state.actions).toBe(0);
    // An empty text is no fault.
    await control.chassis(handle({ fake_fault: '' }), 'on');
    expect(await control.powerState(handle({}))).toBe('power on');
  });
});
