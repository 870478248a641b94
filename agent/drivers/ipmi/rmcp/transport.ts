/**
 * One UDP socket per address family shared by every RMCP+ session of the agent: a sweep
 * over hundreds of BMCs costs one file descriptor and no process spawns. Datagrams are
 * demultiplexed by the sender's address and port, then by each waiter's own `accept`
 * predicate (which checks the session ID, message tag or rqSeq, and the integrity code):
 * anything no waiter accepts — junk, late duplicates, forgeries — is dropped.
 *
 * An exchange is: send a request, wait `attemptTimeoutMs` for an accepted reply, resend
 * (rebuilt, so a new session sequence number) at most `retries` times, then fail with
 * kind `timeout`. An AbortSignal ends it earlier.
 */
import { createSocket, type Socket } from 'node:dgram';
import { IpmiError } from '../ipmitool.ts';

export interface Endpoint {
  /** A literal IPv4 or IPv6 address (resolve names before). */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface ExchangeOptions {
  readonly attemptTimeoutMs: number;
  readonly retries: number;
  readonly signal?: AbortSignal | undefined;
  /** What the request was, for error messages ("RAKP 1", "Get Chassis Status"). */
  readonly what: string;
}

/**
 * Decides whether a datagram from the endpoint answers this exchange: a value ends the
 * exchange with it, `undefined` ignores the datagram, a thrown IpmiError fails the exchange.
 */
export type Accept<T> = (datagram: Buffer) => T | undefined;

interface Waiter {
  readonly accept: Accept<unknown>;
  readonly settle: (error: Error | null, value?: unknown) => void;
}

const key = (address: string, port: number) => `${address}|${port}`;

export class RmcpTransport {
  readonly #sockets = new Map<4 | 6, Socket>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #recvBufferSize: number;
  #closed = false;

  constructor(options: { recvBufferSize?: number } = {}) {
    this.#recvBufferSize = options.recvBufferSize ?? 4 * 1024 * 1024;
  }

  /** Sends without waiting for anything (RAKP 3 with an error status, best-effort Close Session). */
  send(endpoint: Endpoint, datagram: Buffer): void {
    if (this.#closed) return;
    this.#socket(endpoint.family).send(datagram, endpoint.port, endpoint.address, () => undefined);
  }

  exchange<T>(
    endpoint: Endpoint,
    build: () => Buffer,
    accept: Accept<T>,
    options: ExchangeOptions,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new IpmiError('failed', 'the RMCP+ transport is closed'));
    if (options.signal?.aborted) return Promise.reject(abortError(options.signal, options.what));
    const socket = this.#socket(endpoint.family);
    const k = key(endpoint.address, endpoint.port);
    return new Promise<T>((resolve, reject) => {
      let attemptsLeft = options.retries;
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => waiter.settle(abortError(options.signal, options.what));
      const waiter: Waiter = {
        accept,
        settle: (error, value) => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          const set = this.#waiters.get(k);
          if (!set?.delete(waiter)) return; // already settled
          if (set.size === 0) this.#waiters.delete(k);
          if (error) reject(error);
          else resolve(value as T);
        },
      };
      const set = this.#waiters.get(k) ?? new Set<Waiter>();
      this.#waiters.set(k, set);
      set.add(waiter);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const attempt = () => {
        let datagram: Buffer;
        try {
          datagram = build();
        } catch (error) {
          waiter.settle(error as Error);
          return;
        }
        socket.send(datagram, endpoint.port, endpoint.address, (error) => {
          // Local send errors (no route, bad address): no point retrying.
          if (error)
            waiter.settle(
              new IpmiError(
                'unreachable',
                `cannot send to ${endpoint.address}:${endpoint.port}: ${error.message}`,
              ),
            );
        });
        timer = setTimeout(() => {
          if (attemptsLeft-- > 0) attempt();
          else
            waiter.settle(
              new IpmiError(
                'timeout',
                `no answer to ${options.what} from the BMC at ${endpoint.address}:${endpoint.port} ` +
                  `(${options.retries + 1} tries, ${options.attemptTimeoutMs} ms each)`,
              ),
            );
        }, options.attemptTimeoutMs);
      };
      attempt();
    });
  }

  /** Stops listening; pending exchanges fail. */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#waiters.values()])
      for (const waiter of [...set]) waiter.settle(new IpmiError('failed', 'the RMCP+ transport was closed'));
    for (const socket of this.#sockets.values()) socket.close();
    this.#sockets.clear();
  }

  /** Exchanges in flight (for tests and metrics). */
  get pending(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  #socket(family: 4 | 6): Socket {
    let socket = this.#sockets.get(family);
    if (socket) return socket;
    socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', recvBufferSize: this.#recvBufferSize });
    socket.on('message', (datagram, remote) => this.#dispatch(datagram, remote.address, remote.port));
    // Unconnected UDP sockets see no ICMP errors; anything reported here is local and is
    // surfaced by the send callbacks. Never let it crash the agent.
    socket.on('error', () => undefined);
    // The socket alone must not keep the agent alive; pending exchanges hold timers that do.
    socket.unref();
    this.#sockets.set(family, socket);
    return socket;
  }

  #dispatch(datagram: Buffer, address: string, port: number): void {
    const set = this.#waiters.get(key(address, port));
    if (!set) return;
    for (const waiter of [...set]) {
      let value: unknown;
      try {
        value = waiter.accept(datagram);
      } catch (error) {
        waiter.settle(error instanceof IpmiError ? error : new IpmiError('failed', String(error)));
        return;
      }
      if (value !== undefined) {
        waiter.settle(null, value);
        return;
      }
    }
  }
}

function abortError(signal: AbortSignal | undefined, what: string): IpmiError {
  const reason: unknown = signal?.reason;
  if (reason instanceof IpmiError) return reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return new IpmiError(
    timedOut ? 'timeout' : 'failed',
    `${what} ${timedOut ? 'timed out' : 'was cancelled'}`,
  );
}
