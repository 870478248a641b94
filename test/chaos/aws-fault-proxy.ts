/**
 * A fault-injecting HTTP proxy between the control plane's AWS SDK clients and moto: the
 * handlers find AWS through `AWS_ENDPOINT_URL`, which points here. Armed with a fault, it
 * answers one chosen request with a 500 on every attempt the SDK makes (its retries carry
 * the same `amz-sdk-invocation-id`), so the Lambda invocation fails at exactly that point
 * of a command's life, as a crash of the store or queue would make it; everything else is
 * passed through untouched.
 *
 * Fault points (requests recognised by `X-Amz-Target` and the JSON body):
 *  - `record→message`: the `SendMessage` that follows a command's `PutItem`;
 *  - `result→node`: the write of a node that follows a result's command update (a
 *    `power.set` moved to succeeded/failed: its response names the node).
 * A node's update and its history event go in one `TransactWriteItems` here, so there is
 * no write between them to fail: `result→node` fails both at once.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type AwsFaultKind = 'record→message' | 'result→node';

interface Armed {
  readonly kind: AwsFaultKind;
}

/** A `result→node` waits for its node's write this long after the result, then lapses. */
const NODE_WRITE_WINDOW_MS = 3000;
const NODE_WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'TransactWriteItems']);

export class AwsFaultProxy {
  readonly #upstream: URL;
  #server: Server | undefined;
  #armed: Armed[] = [];
  /** Invocation ids whose every attempt fails. */
  readonly #failing = new Map<string, AwsFaultKind>();
  /** Node uuid → until when its next write fails (a result of its task was just stored). */
  readonly #nodeWrites = new Map<string, number>();
  /** Faults that hit a request (an invocation failed), by kind. */
  readonly injected = new Map<AwsFaultKind, number>();
  /** The commands table's name (results are recognised on it). */
  commandsTable = '';
  endpoint = '';

  constructor(upstream: string) {
    this.#upstream = new URL(upstream);
  }

  async start(): Promise<this> {
    const server = createServer((req, res) => {
      // A client that gave up (an SDK timeout) resets its socket: nothing to answer.
      req.on('error', () => undefined);
      res.on('error', () => undefined);
      this.#handle(req).then(
        ({ status, headers, body }) => {
          res.writeHead(status, headers);
          res.end(body);
        },
        (error: Error) => {
          res.writeHead(502, { 'content-type': 'text/plain' });
          res.end(`chaos proxy: ${error.message}`);
        },
      );
    });
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    this.#server = server;
    this.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this;
  }

  /** The next request at this point fails (all its attempts). */
  arm(kind: AwsFaultKind): void {
    this.#armed.push({ kind });
  }

  /** Forgets armed faults that have not fired (a run's end); counters stay. */
  disarm(): void {
    this.#armed = [];
    this.#nodeWrites.clear();
  }

  resetCounts(): void {
    this.injected.clear();
  }

  get pending(): number {
    return this.#armed.length + this.#nodeWrites.size;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(
    req: IncomingMessage,
  ): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.slice(target.indexOf('.') + 1);
    const invocation = String(req.headers['amz-sdk-invocation-id'] ?? '');
    const kind = this.#faultFor(invocation, operation, body);
    if (kind) {
      const error = JSON.stringify({ __type: 'InternalServerError', message: `chaos: injected ${kind}` });
      return {
        status: 500,
        headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-errortype': 'InternalServerError' },
        body: Buffer.from(error),
      };
    }
    const answer = await this.#forward(req, body);
    if (
      operation === 'UpdateItem' &&
      answer.status === 200 &&
      this.#armed.some((a) => a.kind === 'result→node')
    )
      this.#watchResult(body, answer.body);
    return answer;
  }

  /** Whether this request fails, and as which fault. */
  #faultFor(invocation: string, operation: string, body: Buffer): AwsFaultKind | undefined {
    const already = invocation ? this.#failing.get(invocation) : undefined;
    if (already) return already;
    let hit: AwsFaultKind | undefined;
    if (operation === 'SendMessage') {
      const index = this.#armed.findIndex((a) => a.kind === 'record→message');
      if (index >= 0) {
        this.#armed.splice(index, 1);
        hit = 'record→message';
      }
    } else if (NODE_WRITES.has(operation) && this.#nodeWrites.size > 0) {
      const text = body.toString('utf8');
      const now = Date.now();
      for (const [node, until] of this.#nodeWrites) {
        if (until < now) {
          this.#nodeWrites.delete(node);
          continue;
        }
        // The node's item key (`pk = node#<uuid>`); a command record names it too (nodePk).
        if (text.includes(`node#${node}`) && !text.includes(`"TableName":"${this.commandsTable}"`)) {
          this.#nodeWrites.delete(node);
          hit = 'result→node';
          break;
        }
      }
    }
    if (!hit) return undefined;
    if (invocation) this.#failing.set(invocation, hit);
    this.injected.set(hit, (this.injected.get(hit) ?? 0) + 1);
    return hit;
  }

  /** A `power.set` command just stored its result: the write of its node that follows fails. */
  #watchResult(request: Buffer, response: Buffer): void {
    try {
      const sent = JSON.parse(request.toString('utf8')) as {
        TableName?: string;
        ExpressionAttributeValues?: Record<string, { S?: string }>;
      };
      if (sent.TableName !== this.commandsTable) return;
      const to = sent.ExpressionAttributeValues?.[':to']?.S;
      if (to !== 'succeeded' && to !== 'failed') return;
      const { Attributes } = JSON.parse(response.toString('utf8')) as {
        Attributes?: Record<string, { S?: string }>;
      };
      const node = Attributes?.node?.S;
      if (Attributes?.action?.S !== 'power.set' || !node) return;
      const index = this.#armed.findIndex((a) => a.kind === 'result→node');
      if (index < 0) return;
      this.#armed.splice(index, 1);
      this.#nodeWrites.set(node, Date.now() + NODE_WRITE_WINDOW_MS);
    } catch {
      // Not a JSON exchange we know: pass.
    }
  }

  #forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string | string[]>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers = { ...req.headers };
      delete headers.connection;
      const upstream = httpRequest(
        {
          host: this.#upstream.hostname,
          port: this.#upstream.port,
          method: req.method,
          path: req.url,
          headers,
        },
        (response) => {
          const parts: Buffer[] = [];
          response.on('data', (chunk: Buffer) => parts.push(chunk));
          response.on('error', reject);
          response.on('end', () => {
            const out: Record<string, string | string[]> = {};
            for (const [name, value] of Object.entries(response.headers)) {
              if (value === undefined || name === 'connection' || name === 'transfer-encoding') continue;
              out[name] = value;
            }
            const payload = Buffer.concat(parts);
            out['content-length'] = String(payload.length);
            resolve({ status: response.statusCode ?? 502, headers: out, body: payload });
          });
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  }
}
