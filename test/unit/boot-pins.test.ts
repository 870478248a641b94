/** boot.prepare pins the images it boots from; boot.clean (or a new prepare) releases them. */
import { describe, expect, it } from 'vitest';
import { withImagePins } from '../../agent/boot/pins.ts';
import type { Action, ActionContext } from '../../agent/drivers/types.ts';

const NODE = '11111111-2222-3333-4444-555555555555';
const K = 'aaaaaaaa-0000-0000-0000-000000000001';
const R = 'aaaaaaaa-0000-0000-0000-000000000002';
const ISO = 'aaaaaaaa-0000-0000-0000-000000000003';

const action = (name: string, fail = false): Action => ({
  name,
  description: name,
  async run() {
    if (fail) throw new Error('boom');
    return {};
  },
});

const ctx = (args: Record<string, unknown>) => ({ args }) as unknown as ActionContext;

describe('withImagePins', () => {
  it('pins on prepare, moves pins on a new prepare, releases on clean, never on failure', async () => {
    const pinned = new Map<string, Set<string>>();
    const pins = {
      pin: (uuid: string, holder: string) => pinned.set(uuid, (pinned.get(uuid) ?? new Set()).add(holder)),
      unpin: (uuid: string, holder: string) => pinned.get(uuid)?.delete(holder),
    };
    const [prepare, clean] = withImagePins([action('boot.prepare'), action('boot.clean')], () => pins);
    await prepare!.run(ctx({ node_uuid: NODE, kernel: K, ramdisk: R }));
    expect([...(pinned.get(K) ?? [])]).toEqual([`node:${NODE}`]);
    expect([...(pinned.get(R) ?? [])]).toEqual([`node:${NODE}`]);
    await prepare!.run(ctx({ node_uuid: NODE, iso: ISO }));
    expect(pinned.get(K)?.size).toBe(0);
    expect(pinned.get(ISO)?.size).toBe(1);
    await clean!.run(ctx({ node_uuid: NODE }));
    expect(pinned.get(ISO)?.size).toBe(0);

    const [failing] = withImagePins([action('boot.prepare', true)], () => pins);
    await expect(failing!.run(ctx({ node_uuid: NODE, iso: ISO }))).rejects.toThrow('boom');
    expect(pinned.get(ISO)?.size).toBe(0);
  });
});
