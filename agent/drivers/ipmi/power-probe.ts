/**
 * Power-state reads for the power-state sync: a small probe interface, two implementations
 * (the native RMCP+ client of rmcp/, and the ipmitool runner), and a bounded sweep.
 *
 * Why native: spawning `ipmitool` per BMC is CPU-bound on process start (≈ 37 BMCs/s with
 * 8 workers on 2 cores); one shared UDP socket and a few HMACs per BMC are not (figures in
 * docs/agent.md). Why ipmitool stays: BMCs or settings the native client does not speak
 * (IPMI 1.5, bridging, cipher suites other than 3/17, no RMCP+) fall back to it per BMC.
 * Authentication failures and silence never fall back: ipmitool would fail the same way,
 * only later (a silent BMC would cost two timeouts instead of one).
 */
import {
  IpmiError,
  type IpmiErrorKind,
  type IpmiTarget,
  Ipmitool,
  type PowerState,
  powerStatus,
} from './ipmitool.ts';
import { RmcpClient, type RmcpClientOptions } from './rmcp/client.ts';
import { RmcpUnsupportedError } from './rmcp/session.ts';

export type { PowerState } from './ipmitool.ts';

/** Reads a node's power state from its BMC; rejects with an IpmiError (`kind`). */
export interface PowerStatusProbe {
  powerState(driverInfo: IpmiTarget, signal?: AbortSignal): Promise<PowerState>;
}

/** Rejects as soon as the signal aborts, whether or not `work` listens to it. */
function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(toIpmiError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(toIpmiError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function toIpmiError(reason: unknown): IpmiError {
  if (reason instanceof IpmiError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError')
    return new IpmiError('timeout', 'no answer within the time allowed');
  return new IpmiError('failed', `cancelled: ${reason instanceof Error ? reason.message : String(reason)}`);
}

/** `ipmitool ... power status` through the shared runner (serialized per BMC, killed when hung). */
export class IpmitoolPowerProbe implements PowerStatusProbe {
  readonly #ipmitool: Ipmitool;

  constructor(ipmitool: Ipmitool = new Ipmitool()) {
    this.#ipmitool = ipmitool;
  }

  powerState(driverInfo: IpmiTarget, signal?: AbortSignal): Promise<PowerState> {
    // The runner has its own hard timeout (the process is killed); the signal only stops
    // the caller from waiting for it.
    return abortable(powerStatus(this.#ipmitool, driverInfo), signal);
  }
}

export interface NativeProbeOptions extends RmcpClientOptions {
  /** Where BMCs the native client cannot talk to go (default: an IpmitoolPowerProbe; null: none). */
  readonly fallback?: PowerStatusProbe | null;
  /** Told when a BMC is handed to the fallback (e.g. to log it once). No secrets in `reason`. */
  readonly onFallback?: (driverInfo: IpmiTarget, reason: string) => void;
  /** How long a BMC found unsupported goes straight to the fallback (default 1 hour). */
  readonly unsupportedTtlMs?: number;
}

/**
 * Native RMCP+ reads, one at a time per BMC (BMCs have few session slots, and the ipmitool
 * runner keeps the same rule), falling back to ipmitool per BMC when unsupported.
 */
export class NativePowerProbe implements PowerStatusProbe {
  readonly #client: RmcpClient;
  readonly #fallback: PowerStatusProbe | null;
  readonly #onFallback: ((driverInfo: IpmiTarget, reason: string) => void) | undefined;
  readonly #unsupportedTtlMs: number;
  /** BMC → until when it goes straight to the fallback. */
  readonly #unsupported = new Map<string, number>();
  readonly #queues = new Map<string, Promise<unknown>>();

  constructor(options: NativeProbeOptions = {}) {
    this.#client = new RmcpClient(options);
    this.#fallback = options.fallback === undefined ? new IpmitoolPowerProbe() : options.fallback;
    this.#onFallback = options.onFallback;
    this.#unsupportedTtlMs = options.unsupportedTtlMs ?? 3_600_000;
  }

  powerState(driverInfo: IpmiTarget, signal?: AbortSignal): Promise<PowerState> {
    const key = `${driverInfo.ipmi_address}|${driverInfo.ipmi_port ?? 623}|${driverInfo.ipmi_cipher_suite ?? ''}`;
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.#read(key, driverInfo, signal));
    this.#queues.set(key, next);
    void next
      .finally(() => {
        if (this.#queues.get(key) === next) this.#queues.delete(key);
      })
      .catch(() => undefined);
    return abortable(next, signal);
  }

  async #read(key: string, driverInfo: IpmiTarget, signal?: AbortSignal): Promise<PowerState> {
    if (signal?.aborted) throw toIpmiError(signal.reason);
    const until = this.#unsupported.get(key);
    if (until !== undefined && until > Date.now() && this.#fallback)
      return this.#fallback.powerState(driverInfo, signal);
    try {
      return await this.#client.powerState(driverInfo, signal);
    } catch (error) {
      if (!(error instanceof RmcpUnsupportedError) || !this.#fallback) throw error;
      this.#unsupported.set(key, Date.now() + this.#unsupportedTtlMs);
      this.#onFallback?.(driverInfo, error.message);
      return this.#fallback.powerState(driverInfo, signal);
    }
  }

  /** Closes the UDP socket; the probe is unusable afterwards. */
  close(): void {
    this.#client.close();
  }
}

export interface SweepTarget {
  readonly nodeId: string;
  readonly driverInfo: IpmiTarget;
}

export type SweepResult =
  | { readonly nodeId: string; readonly ok: true; readonly state: PowerState; readonly elapsedMs: number }
  | {
      readonly nodeId: string;
      readonly ok: false;
      readonly kind: IpmiErrorKind;
      readonly message: string;
      readonly elapsedMs: number;
    };

export interface SweepOptions {
  readonly probe: PowerStatusProbe;
  /** BMC reads in flight at once (default 32). */
  readonly concurrency?: number;
  /** Per-BMC deadline: a BMC still unanswered then is a `timeout` result (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Stops the sweep: reads not started yet are reported as `failed` ("cancelled"). */
  readonly signal?: AbortSignal;
}

/**
 * Reads every target's power state with at most `concurrency` reads in flight. Each read
 * has its own deadline, enforced here whatever the probe does with its signal, so a silent
 * BMC holds one worker for `timeoutMs` and never the sweep. Results are in target order;
 * it never rejects.
 */
export async function sweepPowerStates(
  targets: readonly SweepTarget[],
  options: SweepOptions,
): Promise<SweepResult[]> {
  const concurrency = Math.max(1, Math.min(options.concurrency ?? 32, targets.length || 1));
  const timeoutMs = options.timeoutMs ?? 5000;
  const results = new Array<SweepResult>(targets.length);
  let nextIndex = 0;

  const readOne = async (target: SweepTarget): Promise<SweepResult> => {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const deadline = new AbortController();
    const timer = setTimeout(
      () =>
        deadline.abort(
          new IpmiError(
            'timeout',
            `no power state from the BMC of node ${target.nodeId} within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
    const signal = options.signal ? AbortSignal.any([options.signal, deadline.signal]) : deadline.signal;
    try {
      const state = await abortable(options.probe.powerState(target.driverInfo, signal), signal);
      return { nodeId: target.nodeId, ok: true, state, elapsedMs: elapsed() };
    } catch (error) {
      const e = error instanceof IpmiError ? error : new IpmiError('failed', String(error));
      return { nodeId: target.nodeId, ok: false, kind: e.kind, message: e.message, elapsedMs: elapsed() };
    } finally {
      clearTimeout(timer);
    }
  };

  const worker = async () => {
    // Each worker takes the next target until none are left: bounded by targets.length.
    while (nextIndex < targets.length) {
      const index = nextIndex++;
      const target = targets[index] as SweepTarget;
      if (options.signal?.aborted) {
        results[index] = {
          nodeId: target.nodeId,
          ok: false,
          kind: 'failed',
          message: 'sweep cancelled',
          elapsedMs: 0,
        };
        continue;
      }
      results[index] = await readOne(target);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}
