/**
 * A WebSocket proxy between the agent and the local WebSocket gateway that misbehaves as
 * a lossy network path would: it drops or duplicates a fraction of the frames, both ways
 * (seeded, so a run replays), and cuts every connection on demand. The upgrade is only
 * answered once the gateway accepted (or refused: its status is passed on), so the agent
 * sees the gateway's own answers to its handshake.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { type RawData, WebSocketServer } from 'ws';
import type { Random } from './random.ts';

export interface FrameFaults {
  /** Fraction of frames dropped, each direction. */
  drop: number;
  /** Fraction of frames sent twice, each direction. */
  duplicate: number;
}

export class WebSocketChaosProxy {
  readonly #upstream: string;
  readonly #random: Random;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #pairs = new Set<{ down: WebSocket; up: WebSocket }>();
  #server: Server | undefined;
  faults: FrameFaults = { drop: 0, duplicate: 0 };
  readonly counts = { dropped: 0, duplicated: 0, forwarded: 0, cuts: 0 };
  url = '';

  /** `upstream`: the gateway's ws:// URL (its stage path is kept from the agent's request). */
  constructor(upstream: string, random: Random) {
    this.#upstream = upstream.replace(/\/[^/]*$/, '');
    this.#random = random;
  }

  async start(): Promise<this> {
    const server = createServer((_req, res) => {
      res.writeHead(426);
      res.end();
    });
    server.on('clientError', (_error, socket) => socket.destroy());
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.#server = server;
    this.url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/local`;
    return this;
  }

  /** Cuts every open connection (both sides see an abnormal close). */
  cut(): void {
    for (const pair of this.#pairs) {
      pair.down.terminate();
      pair.up.terminate();
    }
    this.#pairs.clear();
    this.counts.cuts++;
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // The agent may die (SIGKILL) while the gateway is being dialled: a reset, not a crash.
    socket.on('error', () => socket.destroy());
    const headers: Record<string, string> = {};
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const up = new WebSocket(`${this.#upstream}${req.url ?? '/'}`, { headers, handshakeTimeout: 5000 });
    const early: Array<{ data: RawData; binary: boolean }> = [];
    const refuse = (status: number) => {
      socket.end(`HTTP/1.1 ${status} Chaos Proxy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    up.once('unexpected-response', (_request, response) => {
      response.resume();
      refuse(response.statusCode ?? 502);
      up.terminate();
    });
    up.once('error', () => {
      if (up.readyState !== WebSocket.OPEN && !socket.destroyed) refuse(502);
    });
    up.on('message', (data, binary) => early.push({ data, binary }));
    up.once('open', () => {
      if (socket.destroyed) {
        up.terminate();
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (down) => {
        const pair = { down, up };
        this.#pairs.add(pair);
        up.removeAllListeners('message');
        up.on('message', (data, binary) => this.#relay(down, data, binary));
        for (const { data, binary } of early) this.#relay(down, data, binary);
        down.on('message', (data, binary) => this.#relay(up, data, binary));
        const closeBoth = () => {
          this.#pairs.delete(pair);
          down.terminate();
          up.terminate();
        };
        down.once('close', closeBoth);
        up.once('close', closeBoth);
        down.on('error', closeBoth);
        up.on('error', closeBoth);
      });
    });
  }

  #relay(to: WebSocket, data: RawData, binary: boolean): void {
    if (to.readyState !== WebSocket.OPEN) return;
    const roll = this.#random();
    if (roll < this.faults.drop) {
      this.counts.dropped++;
      return;
    }
    const payload = binary ? data : data.toString();
    to.send(payload, { binary });
    this.counts.forwarded++;
    if (roll < this.faults.drop + this.faults.duplicate) {
      to.send(payload, { binary });
      this.counts.duplicated++;
    }
  }
}
