/**
 * The agent's TFTP server for the TFTP boot root: read requests only.
 *
 * Protocol: RFC 1350 (RRQ, `octet` and `netascii` modes; WRQ refused with "access
 * violation"), RFC 2347 option negotiation (OACK, then the client's ACK 0) with
 * `blksize` (RFC 2348, 8–65464, capped by `maxBlksize`), `tsize` and `timeout`
 * (RFC 2349) and `windowsize` (RFC 7440, capped). Block numbers roll over from 65535 to
 * 0 (what tftpd-hpa, curl, tftp-hpa, atftp and iPXE do), so files of any size are served.
 * Each transfer runs on its own socket bound to an ephemeral port (a new TID, RFC 1350),
 * *connected* to the client: the kernel then drops datagrams from any other peer (the
 * RFC's "unknown transfer ID" case), and sends skip Node's per-send address lookup.
 *
 * Bounds (a slow, vanished or hostile client cannot exhaust the server):
 * - at most `maxTransfers` transfers at once and `maxTransfersPerClient` per client
 *   address; over that a request is answered "server busy" (error 0);
 * - each transfer retransmits its last window after `timeout` (the client's option, else
 *   `retransmitTimeoutMs`) and gives up after `maxRetries` silent timeouts; an ICMP port
 *   unreachable (the client is gone) ends it at once;
 * - a retransmitted RRQ from the same client port while its transfer runs is dropped
 *   (no duplicate transfer); duplicate ACKs are ignored in lock-step mode, which avoids
 *   the Sorcerer's Apprentice bug;
 * - memory per transfer is two read-ahead buffers (256 KiB each for the first 16
 *   transfers at once, 64 KiB beyond; at least one window, at most the file's size and
 *   512 KiB + one block; the second only for files longer than one) and one packet
 *   buffer per window slot; `netascii` (meant for small text files) loads the converted
 *   file into memory, up to `maxNetasciiBytes`;
 * - the file descriptor is closed on every path (done, error, timeout, close()).
 *
 * Speed: TFTP is lock-step, so what counts is the work between an ACK and the next
 * DATA. That path allocates nothing but what Node's `message` event does: the file is
 * read ahead in large chunks into two reused buffers, the next chunk while the current
 * one is sent (no wait for the thread pool at chunk boundaries), DATA packets are built
 * in reused buffers, and there is no per-packet timer: one interval per server (only
 * while transfers run) checks every transfer's last send time.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { closeSync, read, readSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from '../log.ts';
import { openInRoot, RootPathError } from './root-path.ts';

const OP_RRQ = 1;
const OP_WRQ = 2;
const OP_DATA = 3;
const OP_ACK = 4;
const OP_ERROR = 5;
const OP_OACK = 6;

export const TFTP_ERROR = {
  notDefined: 0,
  fileNotFound: 1,
  accessViolation: 2,
  illegalOperation: 4,
  unknownTid: 5,
  optionRefused: 8,
} as const;

/** RFC 2348's range for blksize. */
export const BLKSIZE_MIN = 8;
export const BLKSIZE_MAX = 65464;
const DEFAULT_BLKSIZE = 512;
/**
 * Read-ahead chunk per transfer (rounded to whole blocks, at least one window; two
 * buffers, the next chunk read while the current one is sent). Each read is a trip
 * through libuv's thread pool: 50–70 µs of CPU against 8–10 µs for the `pread` itself,
 * so 256 KiB makes that ≈ 0.4 µs per 1468-byte block instead of 1.3–1.5 µs at 64 KiB.
 * Transfers that start while `BIG_READ_TRANSFERS` or more run get `READ_CHUNK_SMALL`: at
 * most 16 transfers hold 2 × 256 KiB at once, so `maxTransfers` still bounds the
 * read-ahead memory (128 transfers of large files: 8 + 14 MiB; more when clients ask
 * for windows over a chunk, each buffer then holding one window, ≤ 512 KiB).
 */
const READ_CHUNK = 256 * 1024;
const READ_CHUNK_SMALL = 64 * 1024;
const BIG_READ_TRANSFERS = 16;
/** Most bytes one window may hold (windowsize is capped so that window × blksize fits). */
const MAX_WINDOW_BYTES = 512 * 1024;
/** How often running transfers are checked for timeouts. */
const TICK_MS = 50;

export interface TftpServerOptions {
  readonly root: string;
  /** Address to bind (default 127.0.0.1); `0.0.0.0` or `::` for every interface. */
  readonly address?: string;
  /** UDP port (default 69); 0 picks a free one (see `port` after start). */
  readonly port?: number;
  /** Largest blksize granted (default 65464; lower it to stay under the boot network's MTU). */
  readonly maxBlksize?: number;
  /** Largest windowsize granted (default 16; further capped to 512 KiB per window). */
  readonly maxWindowsize?: number;
  /** Transfers at once, server-wide (default 128). */
  readonly maxTransfers?: number;
  /** Transfers at once from one client address (default 8). */
  readonly maxTransfersPerClient?: number;
  /** Retransmission timeout when the client asks none with `timeout` (default 1000 ms). */
  readonly retransmitTimeoutMs?: number;
  /** Timeouts in a row before a transfer is abandoned (default 5). */
  readonly maxRetries?: number;
  /** Largest file served in netascii mode, after conversion (default 16 MiB). */
  readonly maxNetasciiBytes?: number;
  readonly log?: Logger;
}

export interface TftpStats {
  readonly active: number;
  readonly started: number;
  readonly completed: number;
  /** Transfers that started and ended without completing (timeout, client error, I/O error). */
  readonly failed: number;
  /** Requests refused before a transfer started (missing file, access, busy, malformed...). */
  readonly refused: number;
  /** DATA payload bytes sent, retransmissions included. */
  readonly bytesSent: number;
  readonly retransmits: number;
}

interface Requested {
  readonly filename: string;
  readonly mode: string;
  /** Lower-cased option name → value as sent. */
  readonly options: Map<string, string>;
}

/** Parses an RRQ/WRQ body (after the opcode); undefined when malformed. */
function parseRequest(msg: Buffer): Requested | undefined {
  const fields: string[] = [];
  let start = 2;
  // At most 2 + 2·8 fields: nobody needs more options than that, and the loop is bounded.
  for (let i = 0; i < 18 && start < msg.length; i++) {
    const end = msg.indexOf(0, start);
    if (end < 0) return undefined;
    fields.push(msg.toString('latin1', start, end));
    start = end + 1;
  }
  if (start < msg.length) return undefined;
  if (fields.length < 2 || fields.length % 2 !== 0) return undefined;
  const [filename, mode] = fields as [string, string];
  if (filename === '') return undefined;
  const options = new Map<string, string>();
  for (let i = 2; i < fields.length; i += 2) options.set(fields[i]!.toLowerCase(), fields[i + 1]!);
  return { filename, mode: mode.toLowerCase(), options };
}

function errorPacket(code: number, message: string): Buffer {
  const text = Buffer.from(message, 'latin1');
  const packet = Buffer.alloc(5 + text.length);
  packet.writeUInt16BE(OP_ERROR, 0);
  packet.writeUInt16BE(code, 2);
  text.copy(packet, 4);
  return packet;
}

function oackPacket(options: ReadonlyArray<[string, string]>): Buffer {
  const parts = [Buffer.from([0, OP_OACK])];
  for (const [name, value] of options) parts.push(Buffer.from(`${name}\0${value}\0`, 'latin1'));
  return Buffer.concat(parts);
}

const decimal = (value: string | undefined): number | undefined =>
  value !== undefined && /^\d{1,10}$/.test(value) ? Number(value) : undefined;

/** RFC 764 netascii, as tftpd-hpa converts: LF → CR LF, CR → CR NUL. */
export function toNetascii(data: Buffer): Buffer {
  let extra = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0x0a || data[i] === 0x0d) extra++;
  if (extra === 0) return data;
  const out = Buffer.allocUnsafe(data.length + extra);
  let o = 0;
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    if (c === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (c === 0x0d) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else out[o++] = c;
  }
  return out;
}

type Source = { kind: 'file'; fd: number } | { kind: 'memory' };

/** One read request being served, on its own connected socket. */
class Transfer {
  readonly server: TftpServer;
  readonly socket: Socket;
  readonly clientKey: string;
  readonly clientAddress: string;
  readonly filename: string;
  readonly size: number;
  readonly blksize: number;
  readonly windowsize: number;
  readonly timeoutMs: number;
  readonly lastBlock: number;
  readonly startedAt = Date.now();
  source: Source;
  /**
   * Read-ahead: the file in chunks of `chunkBytes` (whole blocks, at least one window, so
   * a window spans at most two chunks), chunk k in buffer k % 2. While the window is in
   * chunk k, chunk k + 1 is read into the other buffer: the transfer does not wait for
   * the thread pool at chunk boundaries. The second buffer exists only for files longer
   * than one chunk.
   */
  readonly chunkBytes: number;
  readonly bufs: [Buffer | undefined, Buffer | undefined] = [undefined, undefined];
  /** Chunk held or being read in each buffer (-1: none). */
  readonly chunkOf: [number, number] = [-1, -1];
  readonly ready: [boolean, boolean] = [false, false];
  readonly inFlight: [boolean, boolean] = [false, false];
  readsInFlight = 0;
  /** sendWindow stopped for a chunk not read yet: that read's completion resumes it. */
  waiting = false;
  readonly packets: Buffer[];
  /** First block not yet acknowledged (absolute, from 1). */
  base = 1;
  /** Next block to send (absolute). */
  next = 1;
  oack: Buffer | undefined;
  sentAt = Date.now();
  retries = 0;
  done = false;

  constructor(init: {
    server: TftpServer;
    socket: Socket;
    clientKey: string;
    clientAddress: string;
    filename: string;
    source: Source;
    data: Buffer | undefined;
    size: number;
    blksize: number;
    windowsize: number;
    timeoutMs: number;
    oack: Buffer | undefined;
    readChunk: number;
  }) {
    this.server = init.server;
    this.socket = init.socket;
    this.clientKey = init.clientKey;
    this.clientAddress = init.clientAddress;
    this.filename = init.filename;
    this.source = init.source;
    this.size = init.size;
    this.blksize = init.blksize;
    this.windowsize = init.windowsize;
    this.timeoutMs = init.timeoutMs;
    this.oack = init.oack;
    // The last block is the short one (possibly empty): it tells the client the file ended.
    this.lastBlock = Math.floor(this.size / this.blksize) + 1;
    if (init.data) {
      // In memory (netascii): one chunk, the whole converted file, already there.
      this.chunkBytes = Math.max(1, init.data.length);
      this.bufs[0] = init.data;
      this.chunkOf[0] = 0;
      this.ready[0] = true;
    } else {
      this.chunkBytes = Math.max(this.windowsize, Math.ceil(init.readChunk / this.blksize)) * this.blksize;
    }
    this.packets = [];
    const slots = Math.min(this.windowsize, this.lastBlock);
    for (let i = 0; i < slots; i++) this.packets.push(Buffer.allocUnsafe(4 + this.blksize));
  }

  start(): void {
    this.socket.on('message', (msg: Buffer) => this.onMessage(msg));
    this.socket.on('error', (error) => this.finish(false, `socket: ${(error as Error).message}`));
    if (this.oack) {
      this.send(this.oack);
      // Read the first chunk while the client answers the OACK.
      if (this.size > 0) this.load(0);
    } else this.sendWindow();
  }

  private send(packet: Buffer): void {
    this.sentAt = Date.now();
    this.socket.send(packet);
  }

  onMessage(msg: Buffer): void {
    if (this.done || msg.length < 4) return;
    const op = (msg[0]! << 8) | msg[1]!;
    if (op === OP_ACK) {
      this.onAck((msg[2]! << 8) | msg[3]!);
    } else if (op === OP_ERROR) {
      // The client gave up, or declined our OACK (error 8): either way it is over.
      const code = (msg[2]! << 8) | msg[3]!;
      const end = msg.indexOf(0, 4);
      this.finish(false, `client error ${code}: ${msg.toString('latin1', 4, end < 0 ? msg.length : end)}`);
    }
    // Anything else on a read transfer is ignored: a stray or duplicated packet.
  }

  private onAck(wire: number): void {
    if (this.oack) {
      if (wire !== 0) return;
      this.oack = undefined;
      this.retries = 0;
      this.sendWindow();
      return;
    }
    const before = this.base - 1;
    const diff = (wire - before) & 0xffff;
    if (diff > this.next - 1 - before) return; // stale or from the future: ignore
    // A duplicate of an ACK already seen is ignored: answering it would double every
    // packet from then on (the Sorcerer's Apprentice bug), and with a window each extra
    // copy would resend a whole window. Our own timeout resends what was lost.
    if (diff === 0) return;
    const acked = before + diff;
    this.retries = 0;
    if (acked >= this.lastBlock) {
      this.finish(true, undefined);
      return;
    }
    this.base = acked + 1;
    // A partial window ACK means the client lost what followed: resend from there.
    if (this.next > this.base && acked < this.next - 1) this.next = this.base;
    if (this.next < this.base) this.next = this.base;
    this.sendWindow();
  }

  /** Sends blocks `next`.. up to the end of the window, then reads the next chunk ahead. */
  sendWindow(): void {
    if (this.done) return;
    this.waiting = false;
    const last = Math.min(this.base + this.windowsize - 1, this.lastBlock);
    const blksize = this.blksize;
    for (; this.next <= last; this.next++) {
      const block = this.next;
      const offset = (block - 1) * blksize;
      const length = Math.min(blksize, this.size - offset);
      const packet = this.packets[block % this.packets.length]!;
      if (length > 0) {
        const chunk = Math.floor(offset / this.chunkBytes);
        const slot = chunk & 1;
        if (this.chunkOf[slot] !== chunk || !this.ready[slot]) {
          this.waiting = true;
          this.load(chunk);
          return;
        }
        const at = offset - chunk * this.chunkBytes;
        this.bufs[slot]!.copy(packet, 4, at, at + length);
      }
      packet[0] = 0;
      packet[1] = OP_DATA;
      packet[2] = (block >> 8) & 0xff;
      packet[3] = block & 0xff;
      this.send(length === blksize ? packet : packet.subarray(0, 4 + length));
      this.server.countSent(length);
    }
    // The chunk after the base's: its buffer held a chunk now wholly acknowledged.
    if (this.source.kind === 'file') {
      const after = Math.floor(((this.base - 1) * blksize) / this.chunkBytes) + 1;
      if (after * this.chunkBytes < this.size) this.load(after);
    }
  }

  /**
   * Reads chunk `chunk` into its buffer, unless it is there or on its way. A buffer is only
   * reused for a chunk two further on, once the base is past its own (every block in it
   * acknowledged, so never resent).
   */
  private load(chunk: number): void {
    const slot = chunk & 1;
    if (this.chunkOf[slot] === chunk || this.inFlight[slot]) return; // its completion resumes us
    if (this.source.kind !== 'file') {
      this.finish(false, 'internal: block outside the in-memory file');
      return;
    }
    const offset = chunk * this.chunkBytes;
    const want = Math.min(this.chunkBytes, this.size - offset);
    const buf = this.bufs[slot] ?? Buffer.allocUnsafe(Math.min(this.chunkBytes, this.size));
    this.bufs[slot] = buf;
    this.chunkOf[slot] = chunk;
    this.ready[slot] = false;
    this.inFlight[slot] = true;
    this.readsInFlight++;
    const fd = this.source.fd;
    read(fd, buf, 0, want, offset, (error, bytesRead) => {
      this.inFlight[slot] = false;
      this.readsInFlight--;
      if (this.done) {
        // finish() left the descriptor open for the reads in flight (its number must not
        // be reused under them): the last one releases it.
        if (this.readsInFlight === 0) closeSync(fd);
        return;
      }
      if (error) return this.finish(false, `read: ${error.message}`);
      if (bytesRead < want) return this.finish(false, 'the file shrank while being sent');
      this.ready[slot] = true;
      if (this.waiting) this.sendWindow();
    });
  }

  /** Called by the server's tick. */
  checkTimeout(now: number, maxRetries: number): void {
    if (this.done || this.waiting || now - this.sentAt < this.timeoutMs) return;
    this.retries++;
    if (this.retries > maxRetries) {
      this.finish(false, `no answer after ${maxRetries} retransmissions`);
      return;
    }
    this.server.countRetransmit();
    if (this.oack) this.send(this.oack);
    else {
      this.next = this.base;
      this.sendWindow();
    }
  }

  finish(ok: boolean, reason: string | undefined): void {
    if (this.done) return;
    this.done = true;
    if (this.source.kind === 'file' && this.readsInFlight === 0) {
      try {
        closeSync(this.source.fd);
      } catch {
        // already closed: nothing to release
      }
    }
    try {
      this.socket.close();
    } catch {
      // already closed
    }
    this.server.ended(this, ok, reason);
  }
}

export class TftpServer {
  private readonly options: Required<Omit<TftpServerOptions, 'log'>>;
  private readonly log: Logger | undefined;
  private socket: Socket | undefined;
  private readonly transfers = new Map<string, Transfer>();
  private readonly perClient = new Map<string, number>();
  /** Requests accepted but whose transfer socket is not bound yet: counted against the caps. */
  private pending = 0;
  private tick: NodeJS.Timeout | undefined;
  private closed = false;
  private counters = { started: 0, completed: 0, failed: 0, refused: 0, bytesSent: 0, retransmits: 0 };
  private boundPort = 0;
  private boundAddress = '';

  private constructor(options: TftpServerOptions) {
    this.options = {
      root: options.root,
      address: options.address ?? '127.0.0.1',
      port: options.port ?? 69,
      maxBlksize: Math.max(BLKSIZE_MIN, Math.min(BLKSIZE_MAX, options.maxBlksize ?? BLKSIZE_MAX)),
      maxWindowsize: Math.max(1, Math.min(65535, options.maxWindowsize ?? 16)),
      maxTransfers: Math.max(1, options.maxTransfers ?? 128),
      maxTransfersPerClient: Math.max(1, options.maxTransfersPerClient ?? 8),
      retransmitTimeoutMs: Math.max(10, options.retransmitTimeoutMs ?? 1000),
      maxRetries: Math.max(0, options.maxRetries ?? 5),
      maxNetasciiBytes: options.maxNetasciiBytes ?? 16 * 1024 * 1024,
    };
    this.log = options.log;
  }

  static async start(options: TftpServerOptions): Promise<TftpServer> {
    const server = new TftpServer(options);
    await server.listen();
    return server;
  }

  get port(): number {
    return this.boundPort;
  }
  get address(): string {
    return this.boundAddress;
  }

  stats(): TftpStats {
    return { active: this.transfers.size + this.pending, ...this.counters };
  }

  private family(): 'udp4' | 'udp6' {
    return isIP(this.options.address) === 6 ? 'udp6' : 'udp4';
  }

  private async listen(): Promise<void> {
    const socket = createSocket({ type: this.family(), reuseAddr: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: this.options.address, port: this.options.port, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (error) => this.log?.warn('tftp socket error', { error: error.message }));
    socket.on('message', (msg, rinfo) => this.onRequest(msg, rinfo));
    this.socket = socket;
    const address = socket.address();
    this.boundPort = address.port;
    this.boundAddress = address.address;
  }

  /** Refuses a request with an error sent from the listening socket (no transfer socket spent on it). */
  private refuse(
    rinfo: RemoteInfo,
    code: number,
    message: string,
    detail?: Record<string, unknown>,
  ): undefined {
    this.counters.refused++;
    this.log?.debug('tftp request refused', { client: rinfo.address, code, reason: message, ...detail });
    this.socket?.send(errorPacket(code, message), rinfo.port, rinfo.address);
    return undefined;
  }

  // `undefined`, not `void`: every refusal is `return this.refuse(...)`.
  private onRequest(msg: Buffer, rinfo: RemoteInfo): undefined {
    if (this.closed || rinfo.port === 0) return;
    const op = msg.length >= 2 ? (msg[0]! << 8) | msg[1]! : -1;
    // Never answer an ERROR: two peers answering each other's errors would loop.
    if (op === OP_ERROR) return;
    if (op === OP_WRQ) return this.refuse(rinfo, TFTP_ERROR.accessViolation, 'write requests are refused');
    if (op === OP_DATA || op === OP_ACK)
      return this.refuse(rinfo, TFTP_ERROR.unknownTid, 'unknown transfer ID');
    if (op !== OP_RRQ) return this.refuse(rinfo, TFTP_ERROR.illegalOperation, 'illegal TFTP operation');
    const request = parseRequest(msg);
    if (!request) return this.refuse(rinfo, TFTP_ERROR.illegalOperation, 'malformed request');
    if (request.mode !== 'octet' && request.mode !== 'netascii') {
      return this.refuse(rinfo, TFTP_ERROR.illegalOperation, `unsupported mode ${request.mode}`);
    }
    const clientKey = `${rinfo.address}|${rinfo.port}`;
    // The client retransmitted its RRQ before our first packet reached it: the running
    // transfer answers it (by its own retransmission); a second one would only compete.
    if (this.transfers.has(clientKey)) return;
    if (this.transfers.size + this.pending >= this.options.maxTransfers) {
      return this.refuse(rinfo, TFTP_ERROR.notDefined, 'server busy, try again later');
    }
    const fromClient = this.perClient.get(rinfo.address) ?? 0;
    if (fromClient >= this.options.maxTransfersPerClient) {
      return this.refuse(rinfo, TFTP_ERROR.notDefined, 'too many transfers from this client');
    }

    let opened: ReturnType<typeof openInRoot>;
    try {
      opened = openInRoot(this.options.root, request.filename);
    } catch (error) {
      if (error instanceof RootPathError) {
        const code = error.kind === 'not-found' ? TFTP_ERROR.fileNotFound : TFTP_ERROR.accessViolation;
        return this.refuse(rinfo, code, error.kind === 'not-found' ? 'file not found' : 'access violation', {
          file: request.filename,
          why: error.message,
        });
      }
      throw error;
    }

    let source: Source = { kind: 'file', fd: opened.fd };
    let data: Buffer | undefined;
    let size = opened.size;
    if (request.mode === 'netascii') {
      // netascii changes lengths, so blocks no longer map to file offsets: convert the
      // whole (small, textual) file up front.
      try {
        // The conversion only grows a file: one over the cap before it is over after it.
        if (opened.size > this.options.maxNetasciiBytes) throw new Error('too large for netascii');
        const raw = Buffer.allocUnsafe(opened.size);
        const n = opened.size === 0 ? 0 : readSync(opened.fd, raw, 0, opened.size, 0);
        data = toNetascii(raw.subarray(0, n));
        if (data.length > this.options.maxNetasciiBytes) throw new Error('too large for netascii');
      } catch (error) {
        closeSync(opened.fd);
        return this.refuse(
          rinfo,
          TFTP_ERROR.notDefined,
          `cannot serve in netascii: ${(error as Error).message}`,
        );
      }
      closeSync(opened.fd);
      source = { kind: 'memory' };
      size = data.length;
    }

    // Option negotiation (RFC 2347): answer only what we understood and accept.
    const accepted: Array<[string, string]> = [];
    let blksize = DEFAULT_BLKSIZE;
    let windowsize = 1;
    let timeoutMs = this.options.retransmitTimeoutMs;
    const wantBlksize = decimal(request.options.get('blksize'));
    if (wantBlksize !== undefined && wantBlksize >= BLKSIZE_MIN) {
      blksize = Math.min(wantBlksize, this.options.maxBlksize);
      accepted.push(['blksize', String(blksize)]);
    }
    const wantTimeout = decimal(request.options.get('timeout'));
    if (wantTimeout !== undefined && wantTimeout >= 1 && wantTimeout <= 255) {
      timeoutMs = wantTimeout * 1000;
      accepted.push(['timeout', String(wantTimeout)]);
    }
    if (decimal(request.options.get('tsize')) !== undefined) accepted.push(['tsize', String(size)]);
    const wantWindow = decimal(request.options.get('windowsize'));
    if (wantWindow !== undefined && wantWindow >= 1 && wantWindow <= 65535) {
      const cap = Math.max(1, Math.min(this.options.maxWindowsize, Math.floor(MAX_WINDOW_BYTES / blksize)));
      windowsize = Math.min(wantWindow, cap);
      accepted.push(['windowsize', String(windowsize)]);
    }

    const release = () => {
      if (source.kind === 'file') closeSync(source.fd);
    };
    this.pending++;
    this.perClient.set(rinfo.address, fromClient + 1);
    const transferSocket = createSocket({ type: rinfo.family === 'IPv6' ? 'udp6' : 'udp4' });
    const bindAddress =
      rinfo.family === 'IPv6'
        ? this.family() === 'udp6'
          ? this.options.address
          : '::'
        : this.options.address;
    const fail = (error: Error) => {
      this.pending--;
      this.dropClient(rinfo.address);
      release();
      try {
        transferSocket.close();
      } catch {
        // not open
      }
      this.refuse(rinfo, TFTP_ERROR.notDefined, 'server error');
      this.log?.warn('tftp transfer socket failed', { client: rinfo.address, error: error.message });
    };
    transferSocket.once('error', fail);
    transferSocket.bind({ address: bindAddress, port: 0 }, () => {
      transferSocket.connect(rinfo.port, rinfo.address, () => {
        transferSocket.off('error', fail);
        this.pending--;
        if (this.closed) {
          this.dropClient(rinfo.address);
          release();
          transferSocket.close();
          return;
        }
        const transfer = new Transfer({
          server: this,
          socket: transferSocket,
          clientKey,
          clientAddress: rinfo.address,
          filename: request.filename,
          source,
          data,
          size,
          blksize,
          windowsize,
          timeoutMs,
          oack: accepted.length > 0 ? oackPacket(accepted) : undefined,
          readChunk: this.transfers.size < BIG_READ_TRANSFERS ? READ_CHUNK : READ_CHUNK_SMALL,
        });
        this.transfers.set(clientKey, transfer);
        this.counters.started++;
        this.log?.debug('tftp transfer started', {
          client: rinfo.address,
          file: request.filename,
          size,
          mode: request.mode,
          options: Object.fromEntries(accepted),
        });
        this.startTick();
        transfer.start();
      });
    });
  }

  private dropClient(address: string): void {
    const n = (this.perClient.get(address) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(address);
    else this.perClient.set(address, n);
  }

  /** @internal called by a transfer when it ends. */
  ended(transfer: Transfer, ok: boolean, reason: string | undefined): void {
    if (this.transfers.get(transfer.clientKey) === transfer) this.transfers.delete(transfer.clientKey);
    this.dropClient(transfer.clientAddress);
    if (ok) this.counters.completed++;
    else this.counters.failed++;
    const fields = {
      client: transfer.clientAddress,
      file: transfer.filename,
      size: transfer.size,
      blksize: transfer.blksize,
      ms: Date.now() - transfer.startedAt,
    };
    if (ok) this.log?.info('tftp transfer done', fields);
    else if (!this.closed) this.log?.info('tftp transfer failed', { ...fields, reason });
    if (this.transfers.size === 0) this.stopTick();
  }

  /** @internal */
  countSent(bytes: number): void {
    this.counters.bytesSent += bytes;
  }
  /** @internal */
  countRetransmit(): void {
    this.counters.retransmits++;
  }

  private startTick(): void {
    if (this.tick) return;
    this.tick = setInterval(() => {
      const now = Date.now();
      for (const transfer of this.transfers.values()) transfer.checkTimeout(now, this.options.maxRetries);
    }, TICK_MS);
    this.tick.unref();
  }

  private stopTick(): void {
    clearInterval(this.tick);
    this.tick = undefined;
  }

  /** Stops listening and ends every running transfer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const transfer of [...this.transfers.values()]) transfer.finish(false, 'server closing');
    this.stopTick();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
