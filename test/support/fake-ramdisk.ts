/**
 * A fake Metalplane ramdisk for tests: the protocol's client side (protocol/ramdisk.ts)
 * over HTTP to an agent's `/ramdisk/v1`, as `ramdisk/` speaks it. It reads `mp.url` and
 * `mp.token` from the kernel line of the iPXE script the agent wrote for its MAC (as the
 * real one reads /proc/cmdline), says hello, heartbeats, and answers each step it is given
 * with `run(step)`. Every message it sends and every answer is checked against the
 * protocol's schemas.
 */
import { expect } from 'vitest';
import {
  type Inventory,
  type RamdiskAnswer,
  type RamdiskRequest,
  type RamdiskStep,
  validateRamdiskAnswer,
  validateRamdiskRequest,
} from '../../protocol/ramdisk.ts';

export const FAKE_RAMDISK_MAC = '52:54:00:00:00:01';

/** An inventory as the ramdisk reports it: 4 CPUs, 8 GiB, one 20 GiB disk, one NIC (`mac`). */
export function fakeInventory(mac: string = FAKE_RAMDISK_MAC): Inventory {
  return {
    cpu: {
      model_name: 'QEMU Virtual CPU',
      frequency: '2400',
      count: 4,
      architecture: 'x86_64',
      flags: ['sse2'],
      socket_count: 1,
    },
    memory: { total: 8 * 1024 ** 3, physical_mb: 8192 },
    disks: [
      {
        name: '/dev/vda',
        model: null,
        size: 20 * 1024 ** 3,
        rotational: false,
        wwn: null,
        serial: 'abc',
        vendor: null,
        by_path: null,
      },
    ],
    interfaces: [
      {
        name: 'eth0',
        mac_address: mac,
        ipv4_address: '10.0.0.20',
        has_carrier: true,
        driver: 'virtio_net',
        speed_mbps: 1000,
      },
    ],
    system_vendor: { product_name: 'Standard PC', serial_number: null, manufacturer: 'QEMU' },
    boot: { current_boot_mode: 'bios', pxe_interface: mac },
    hostname: null,
  };
}

/** The `key=value` words of an iPXE script's kernel line (what the ramdisk reads from /proc/cmdline). */
export function kernelParamsOf(script: string): Map<string, string> | undefined {
  const line = script.split('\n').find((l) => l.startsWith('kernel '));
  if (!line) return undefined;
  const params = new Map<string, string>();
  for (const word of line
    .replace(/ \|\| goto retry$/, '')
    .split(' ')
    .slice(2)) {
    const eq = word.indexOf('=');
    if (eq > 0) params.set(word.slice(0, eq), word.slice(eq + 1));
  }
  return params;
}

export type StepOutcome =
  | { status: 'succeeded'; result: Record<string, unknown> }
  | { status: 'failed'; error: string };

export class FakeRamdisk {
  session: string | undefined;
  readonly ran: RamdiskStep[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** Steps given (a heartbeat repeats a step until its result is in: it runs once). */
  readonly #seen = new Set<string>();
  #stopped = false;
  /** What went wrong in the background heartbeats (before `stop`): a test may check it is empty. */
  readonly errors: unknown[] = [];
  readonly url: string;
  readonly run: (step: RamdiskStep) => StepOutcome;
  readonly bootMac: string;

  constructor(url: string, run: FakeRamdisk['run'], bootMac: string = FAKE_RAMDISK_MAC) {
    this.url = url;
    this.run = run;
    this.bootMac = bootMac;
  }

  async send(message: RamdiskRequest): Promise<{ status: number; answer: RamdiskAnswer }> {
    expect(validateRamdiskRequest(message)).toBe(true);
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(message),
    });
    const answer = (await res.json()) as RamdiskAnswer;
    expect(validateRamdiskAnswer(answer)).toBe(true);
    return { status: res.status, answer };
  }

  /** Says hello with the boot's token; on success, heartbeats until `stop`. */
  async hello(token: string): Promise<number> {
    const { status, answer } = await this.send({
      v: 1,
      type: 'hello',
      token,
      version: 'fake-1',
      boot_mac: this.bootMac,
    });
    if (answer.type !== 'hello') return status;
    this.session = answer.session;
    // Heartbeats faster than asked, as a test can afford.
    this.#timer = setInterval(
      () =>
        void this.beat().catch((error: unknown) => {
          // A beat in flight when the test stopped it (or closed the agent) is no failure.
          if (!this.#stopped) this.errors.push(error);
        }),
      Math.min(50, answer.heartbeat_interval_s * 1000),
    );
    return status;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async beat(): Promise<void> {
    const session = this.session as string;
    const { answer } = await this.send({ v: 1, type: 'heartbeat', session });
    if (answer.type !== 'heartbeat') return;
    for (const step of answer.steps) {
      if (this.#seen.has(step.id)) continue;
      this.#seen.add(step.id);
      this.ran.push(step);
      await this.send({
        v: 1,
        type: 'log',
        session,
        lines: [
          {
            at: new Date().toISOString(),
            level: 'info',
            message: `running ${step.name}`,
            step: step.id,
            progress: 0,
          },
        ],
      });
      const outcome = this.run(step);
      const { status } = await this.send({ v: 1, type: 'result', session, step: step.id, ...outcome });
      expect(status).toBe(200);
    }
  }
}
