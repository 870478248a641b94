/**
 * The native power-status read: Ironic `driver_info` in, `'power on' | 'power off'` out,
 * over one RMCP+ session (see session.ts) on the shared UDP transport (transport.ts).
 *
 * `driver_info` handling mirrors ipmitool.ts (same validation, same defaults: port 623,
 * ADMINISTRATOR). What this client does not implement — IPMI 1.5 (`ipmi_protocol_version:
 * '1.5'`), bridging (`ipmi_bridging` other than `no`), cipher suites other than 3 and 17 —
 * is reported as RmcpUnsupportedError before sending anything, so the caller falls back.
 * Without `ipmi_cipher_suite`, suite 17 is proposed first and 3 if the BMC refuses it (as
 * recent ipmitool prefers 17); the suite that worked is remembered per BMC.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { connectionArgs, IpmiError, type IpmiTarget, type PowerState } from '../ipmitool.ts';
import { type PrivilegeName, RmcpSession, RmcpUnsupportedError } from './session.ts';
import { type Endpoint, RmcpTransport } from './transport.ts';

export interface RmcpClientOptions {
  /** Wait for each answer this long before resending (default 1000 ms). */
  readonly attemptTimeoutMs?: number;
  /** Resends per handshake step or request (default 2, so 3 tries). */
  readonly retries?: number;
  /** Share a transport between clients (default: a new one, closed by close()). */
  readonly transport?: RmcpTransport;
}

/** driver_info may carry ipmi_bridging, which ipmitool.ts's IpmiTarget does not type. */
type DriverInfo = IpmiTarget & { readonly ipmi_bridging?: string };

export class RmcpClient {
  readonly #transport: RmcpTransport;
  readonly #ownsTransport: boolean;
  readonly #attemptTimeoutMs: number;
  readonly #retries: number;
  /** Suite that worked for BMCs without ipmi_cipher_suite, so the next read skips the refusal. */
  readonly #suiteFor = new Map<string, 3 | 17>();

  constructor(options: RmcpClientOptions = {}) {
    this.#transport = options.transport ?? new RmcpTransport();
    this.#ownsTransport = options.transport === undefined;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 1000;
    this.#retries = options.retries ?? 2;
  }

  async powerState(target: DriverInfo, signal?: AbortSignal): Promise<PowerState> {
    const session = await this.openSession(target, signal);
    try {
      return (await session.chassisPowerOn()) ? 'power on' : 'power off';
    } finally {
      await session.close();
    }
  }

  /** An authenticated session to the target's BMC; the caller must close() it. */
  async openSession(target: DriverInfo, signal?: AbortSignal): Promise<RmcpSession> {
    connectionArgs(target); // the same validation as the ipmitool runner: throws kind `invalid`
    if (target.ipmi_protocol_version === '1.5')
      throw new RmcpUnsupportedError('ipmi_protocol_version 1.5 is not implemented natively');
    if (target.ipmi_bridging !== undefined && target.ipmi_bridging !== 'no')
      throw new RmcpUnsupportedError('ipmi_bridging is not implemented natively');
    const configured = target.ipmi_cipher_suite === undefined ? undefined : Number(target.ipmi_cipher_suite);
    if (configured !== undefined && configured !== 3 && configured !== 17)
      throw new RmcpUnsupportedError(`cipher suite ${configured} is not implemented natively (3 and 17 are)`);
    const endpoint = await resolve(target.ipmi_address, Number(target.ipmi_port ?? 623));
    const cacheKey = `${endpoint.address}|${endpoint.port}`;
    const suites: Array<3 | 17> =
      configured !== undefined ? [configured] : this.#suiteFor.get(cacheKey) === 3 ? [3] : [17, 3];
    for (const [i, cipherSuite] of suites.entries()) {
      try {
        const session = await RmcpSession.open(this.#transport, {
          endpoint,
          username: target.ipmi_username ?? '',
          password: target.ipmi_password ?? '',
          privilege: (target.ipmi_priv_level ?? 'ADMINISTRATOR') as PrivilegeName,
          cipherSuite,
          attemptTimeoutMs: this.#attemptTimeoutMs,
          retries: this.#retries,
          signal,
        });
        if (configured === undefined) this.#suiteFor.set(cacheKey, cipherSuite);
        return session;
      } catch (error) {
        const last = i === suites.length - 1;
        if (!last && error instanceof RmcpUnsupportedError && error.cipherRefused) continue;
        throw error;
      }
    }
    throw new IpmiError('failed', 'unreachable: no cipher suite tried'); // the loop always returns or throws
  }

  close(): void {
    if (this.#ownsTransport) this.#transport.close();
  }
}

async function resolve(host: string, port: number): Promise<Endpoint> {
  const family = isIP(host);
  if (family === 4 || family === 6) return { address: host, port, family };
  try {
    const found = await lookup(host);
    return { address: found.address, port, family: found.family === 6 ? 6 : 4 };
  } catch (error) {
    throw new IpmiError('unreachable', `cannot resolve ipmi_address ${host}: ${(error as Error).message}`);
  }
}
