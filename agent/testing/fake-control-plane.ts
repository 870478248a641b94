/**
 * A small in-process stand-in for the control plane's agent-facing side, speaking
 * `protocol/messages.ts`: for the agent's integration tests and for hacking on the
 * agent without the real stack. Not used by the daemon.
 *
 * - `POST /v1/agents/enroll` trades `enrollToken` for `credential`;
 * - the WebSocket at `/ws` (bearer credential), or a refusal of every upgrade
 *   (`refuseWebSocket`);
 * - `GET /v1/agent/commands?wait=&max=` and `POST /v1/agent/messages` (long polling);
 * - a queue with SQS FIFO's semantics as far as the agent can tell: per node, one
 *   message in flight at a time, in order; a received message is invisible for
 *   `visibilityMs`, then delivered again with a new receipt; a result deletes it.
 *
 * - `images_pull` answered with `images` pages (`imagesPageSize` each, `cursor` between
 *   them) of `images` (a list, or a function called at each first page, e.g. to presign
 *   fresh URLs); `wakeImages()` sends `wake {topic: 'images'}`.
 *
 * Every message the agent sends is validated with `parseAgentMessage`; invalid ones are
 * counted in `invalid`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import {
  type AgentMessage,
  type Command,
  type ImageAssignment,
  type ImageReport,
  parseAgentMessage,
  type ServerMessage,
} from '../../protocol/messages.ts';

export interface FakeControlPlaneOptions {
  enrollToken?: string;
  credential?: string;
  site?: string;
  /** Answer every WebSocket upgrade with this HTTP status (e.g. 403), as a proxy that blocks them would. */
  refuseWebSocket?: number;
  visibilityMs?: number;
  images?: ImagesSource;
  /** Images per `images` page (default 20, the protocol's maximum). */
  imagesPageSize?: number;
  /**
   * Answer `hello` with `welcome` (a control plane of protocol 2, which acknowledges
   * results once their message is deleted); default: no answer, as a protocol-1 one.
   */
  welcome?: boolean;
}

export type ImagesSource =
  | readonly ImageAssignment[]
  | (() => ImageAssignment[] | Promise<ImageAssignment[]>);

type Received = { at: number; via: 'ws' | 'http'; msg: AgentMessage };
type Result = Extract<AgentMessage, { type: 'command_result' }>;

interface Queued {
  command: Omit<Command, 'receipt' | 'attempt'>;
  attempt: number;
  receipt: string | undefined;
  invisibleUntil: number;
}

export class FakeControlPlane {
  readonly options: FakeControlPlaneOptions;
  readonly credential: string;
  readonly enrollToken: string;
  readonly received: Received[] = [];
  readonly #receipts = new Map<string, string[]>();
  readonly enrollRequests: unknown[] = [];
  readonly connections = new Set<WebSocket>();
  upgradesRefused = 0;
  connectsAccepted = 0;
  invalid = 0;
  refuseWebSocket: number | undefined;
  /** The site's images, as `images_pull` answers them. */
  images: ImagesSource;
  /** `images_pull` messages answered (pages included). */
  imagesPulls = 0;
  /** The next N `command_result` frames are lost on the way in (never seen, never acknowledged). */
  loseResults = 0;
  /** The next N `commands` answers are lost on the way out (their messages stay in flight). */
  loseCommandAnswers = 0;
  /** The next N `result_ack` answers are lost on the way out (their results are stored). */
  loseResultAcks = 0;
  /** Frames lost by the counters above. */
  lost = 0;
  #imageLists = new Map<string, ImageAssignment[]>();
  #server: Server;
  #wss = new WebSocketServer({ noServer: true });
  #queue: Queued[] = [];
  #pollers: Array<() => void> = [];
  url = '';
  websocketUrl = '';

  constructor(options: FakeControlPlaneOptions = {}) {
    this.options = options;
    this.credential = options.credential ?? `mpa_${'A'.repeat(22)}_${'s'.repeat(43)}`;
    this.enrollToken = options.enrollToken ?? `mpe_${'B'.repeat(22)}_${'t'.repeat(43)}`;
    this.refuseWebSocket = options.refuseWebSocket;
    this.images = options.images ?? [];
    this.#server = createServer((req, res) => void this.#http(req, res));
    this.#server.on('upgrade', (req, socket, head) => this.#upgrade(req, socket, head));
  }

  async start(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve));
    const { port: p } = this.#server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${p}`;
    this.websocketUrl = `ws://127.0.0.1:${p}/ws`;
    return this;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const ws of this.connections) ws.terminate();
    for (const wake of this.#pollers.splice(0)) wake();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // --- what tests drive ---

  /** Queues commands (FIFO per node) and wakes the agent. */
  enqueue(...commands: Array<Omit<Command, 'receipt' | 'attempt'>>): void {
    for (const command of commands)
      this.#queue.push({ command, attempt: 0, receipt: undefined, invisibleUntil: 0 });
    this.wake();
  }

  /** Delivers a command again (as SQS does after its visibility timeout), even one already answered. */
  redeliver(command: Omit<Command, 'receipt' | 'attempt'>): void {
    this.#queue.unshift({ command, attempt: 1, receipt: undefined, invisibleUntil: 0 });
    this.wake();
  }

  wake(): void {
    this.broadcast({ v: 1, type: 'wake' });
    for (const wake of this.#pollers.splice(0)) wake();
  }

  /** Tells the agent that the site's image list changed. */
  wakeImages(): void {
    this.broadcast({ v: 1, type: 'wake', topic: 'images' });
  }

  /** Every `image_report` entry received, oldest first. */
  imageReports(image?: string): ImageReport[] {
    return this.messages('image_report')
      .flatMap((m) => m.reports)
      .filter((r) => image === undefined || r.image === image);
  }

  broadcast(msg: ServerMessage | string): void {
    const text = typeof msg === 'string' ? msg : JSON.stringify(msg);
    for (const ws of this.connections) ws.send(text);
  }

  /** Cuts every WebSocket (no close handshake). */
  dropConnections(): void {
    for (const ws of this.connections) ws.terminate();
  }

  messages<T extends AgentMessage['type']>(type: T): Array<Extract<AgentMessage, { type: T }>> {
    return this.received
      .filter((r) => r.msg.type === type)
      .map((r) => r.msg as Extract<AgentMessage, { type: T }>);
  }

  results(id?: string): Result[] {
    return this.messages('command_result').filter((r) => id === undefined || r.command_id === id);
  }

  /** The receipts handed out with command `id`, one per delivery, in order. */
  receipts(id: string): string[] {
    return [...(this.#receipts.get(id) ?? [])];
  }

  /** Messages still queued or in flight. */
  get backlog(): number {
    return this.#queue.length;
  }

  // --- queue ---

  #receive(max: number): Command[] {
    const now = Date.now();
    const out: Command[] = [];
    const busy = new Set<string>();
    for (const q of this.#queue) {
      if (out.length >= max) break;
      if (busy.has(q.command.node)) continue;
      busy.add(q.command.node); // FIFO: a node's later messages wait for this one
      if (q.receipt !== undefined && q.invisibleUntil > now) continue;
      q.attempt++;
      q.receipt = `rcpt-${randomUUID()}`;
      const receipts = this.#receipts.get(q.command.id) ?? [];
      receipts.push(q.receipt);
      this.#receipts.set(q.command.id, receipts);
      q.invisibleUntil = now + (this.options.visibilityMs ?? 30_000);
      out.push({ ...q.command, attempt: q.attempt, receipt: q.receipt });
    }
    return out;
  }

  async #imagesPage(cursor: string | undefined): Promise<ServerMessage> {
    this.imagesPulls++;
    const size = this.options.imagesPageSize ?? 20;
    let listId: string;
    let offset = 0;
    if (cursor === undefined || !this.#imageLists.has(cursor.split(':')[0] ?? '')) {
      listId = randomUUID();
      const source = this.images;
      this.#imageLists.set(listId, [...(typeof source === 'function' ? await source() : source)]);
    } else {
      [listId, offset] = [cursor.split(':')[0]!, Number(cursor.split(':')[1])];
    }
    const list = this.#imageLists.get(listId)!;
    const images = list.slice(offset, offset + size);
    const more = offset + size < list.length;
    if (!more) this.#imageLists.delete(listId);
    return { v: 1, type: 'images', images, ...(more ? { cursor: `${listId}:${offset + size}` } : {}) };
  }

  async #handle(msg: AgentMessage, reply: (m: ServerMessage) => void): Promise<void> {
    if (msg.type === 'hello' && this.options.welcome) {
      reply({
        v: 1,
        type: 'welcome',
        protocol_version: msg.protocol_version ?? 1,
        oldest_supported_protocol: 1,
        missing_features: [],
      });
    } else if (msg.type === 'images_pull') reply(await this.#imagesPage(msg.cursor));
    else if (msg.type === 'pull') reply({ v: 1, type: 'commands', commands: this.#receive(msg.max) });
    else if (msg.type === 'command_result') {
      const i = this.#queue.findIndex((q) => q.command.id === msg.command_id);
      if (i >= 0) this.#queue.splice(i, 1);
      reply({ v: 1, type: 'result_ack', command_id: msg.command_id });
    }
  }

  #record(text: string, via: 'ws' | 'http'): AgentMessage | undefined {
    try {
      const msg = parseAgentMessage(text);
      this.received.push({ at: Date.now(), via, msg });
      return msg;
    } catch {
      this.invalid++;
      return undefined;
    }
  }

  // --- transport ---

  #authorized(req: IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${this.credential}`;
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number) => {
      socket.end(`HTTP/1.1 ${status} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (this.refuseWebSocket) {
      this.upgradesRefused++;
      refuse(this.refuseWebSocket);
      return;
    }
    if (!req.url?.startsWith('/ws')) {
      refuse(404);
      return;
    }
    if (!this.#authorized(req)) {
      refuse(401);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.connectsAccepted++;
      this.connections.add(ws);
      ws.on('close', () => this.connections.delete(ws));
      ws.on('message', (data) => {
        const text = data.toString();
        if (this.loseResults > 0 && text.includes('"type":"command_result"')) {
          this.loseResults--;
          this.lost++;
          return;
        }
        const msg = this.#record(text, 'ws');
        if (!msg) return;
        void this.#handle(msg, (m) => {
          if (m.type === 'commands' && this.loseCommandAnswers > 0) {
            this.loseCommandAnswers--;
            this.lost++;
            return;
          }
          if (m.type === 'result_ack' && this.loseResultAcks > 0) {
            this.loseResultAcks--;
            this.lost++;
            return;
          }
          ws.send(JSON.stringify(m));
        });
      });
    });
  }

  async #http(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, value?: unknown) => {
      res.writeHead(status, value === undefined ? {} : { 'Content-Type': 'application/json' });
      res.end(value === undefined ? undefined : JSON.stringify(value));
    };
    if (req.method === 'POST' && url.pathname === '/v1/agents/enroll') {
      let parsed: { token?: unknown } = {};
      try {
        parsed = JSON.parse(body) as { token?: unknown };
      } catch {
        return json(400, { error_message: JSON.stringify({ faultstring: 'body is not JSON' }) });
      }
      this.enrollRequests.push(parsed);
      if (parsed.token !== this.enrollToken) {
        return json(401, {
          error_message: JSON.stringify({ faultstring: 'enrollment token is invalid or used' }),
        });
      }
      return json(201, {
        credential: this.credential,
        site: this.options.site ?? 'test',
        websocket_url: this.websocketUrl,
      });
    }
    if (!url.pathname.startsWith('/v1/agent/')) return json(404, {});
    if (!this.#authorized(req)) return json(401, {});
    if (req.method === 'POST' && url.pathname === '/v1/agent/messages') {
      const msg = this.#record(body, 'http');
      if (!msg) return json(400, { error_message: JSON.stringify({ faultstring: 'invalid message' }) });
      let answer: ServerMessage | undefined;
      await this.#handle(msg, (m) => {
        answer = m;
      });
      return answer ? json(200, answer) : json(202);
    }
    if (req.method === 'GET' && url.pathname === '/v1/agent/commands') {
      const max = Math.min(10, Math.max(1, Number(url.searchParams.get('max') ?? 1)));
      const waitMs = Math.min(20, Number(url.searchParams.get('wait') ?? 0)) * 1000;
      const until = Date.now() + waitMs;
      let gone = false;
      res.on('close', () => {
        gone = true;
      });
      for (;;) {
        if (gone) return; // the agent hung up: receive nothing for it
        const commands = this.#receive(max);
        if (commands.length > 0 || Date.now() >= until) {
          this.received.push({ at: Date.now(), via: 'http', msg: { v: 1, type: 'pull', max } });
          return commands.length > 0 ? json(200, { v: 1, type: 'commands', commands }) : json(204);
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, Math.max(1, until - Date.now()));
          function done() {
            clearTimeout(t);
            resolve();
          }
          this.#pollers.push(done);
        });
      }
    }
    return json(404, {});
  }
}
