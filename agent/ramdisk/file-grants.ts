/**
 * Files granted to one node's ramdisk for one step (the deploy's whole-disk image, its
 * config drive), served on the agent's HTTP boot server under capability URLs:
 * `GET <http url>/ramdisk/v1/files/<id>`, the id 32 random bytes in base64url.
 *
 * - The id is the only thing that opens a file: it maps, in memory, to an absolute path
 *   the agent chose. The URL is never turned into a path, so no request can name another
 *   file (a traversal-looking id simply is not a known id).
 * - GET streams the file with backpressure (`pipeline`), `Content-Length` from the opened
 *   file; HEAD answers the headers alone; other methods 405. An unknown id and a revoked
 *   one get the same 404: a client cannot tell whether an id ever existed.
 * - `revoke()` (the step ended: success, failure or abort) and `revokeNode(node)` (the
 *   node's session ended) forget the id and cut the downloads in progress.
 * - The ids are capabilities: never logged, never in a command result.
 *
 * The ramdisk needs no session id for these GETs (its HTTP client downloads the URL it was
 * given, as IPA downloads an image URL); 256 random bits make the id unguessable.
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { errorMessage, type Logger } from '../log.ts';

/** Where granted files are served (under the ramdisk protocol's `/ramdisk/v1`). */
export const FILES_PATH = '/ramdisk/v1/files/';
/** What an id looks like: 32 bytes in base64url, no padding. */
const ID = /^[A-Za-z0-9_-]{43}$/;
/** Read size when streaming (as the HTTP boot server streams its large files). */
const STREAM_CHUNK = 1024 * 1024;

export interface FileGrant {
  /** The capability URL the ramdisk downloads. */
  readonly url: string;
  /** Ends the grant: the URL answers 404 from now on; downloads in progress are cut. */
  revoke(): void;
}

interface Entry {
  readonly node: string;
  readonly file: string;
  /** Responses streaming this file now (cut on revoke). */
  readonly active: Set<ServerResponse>;
}

export interface FileGrantsOptions {
  /** The URL nodes reach the agent's HTTP boot server at (as `mp.url` is made). */
  readonly httpBaseUrl: string;
  readonly log?: Logger;
  /** The ramdisk sessions: a node's grants end with its session. */
  readonly sessions?: { onSessionEnd(listener: (node: string) => void): unknown };
}

export class FileGrants {
  readonly #base: string;
  readonly #log: Logger | undefined;
  /** id → what it grants. */
  readonly #grants = new Map<string, Entry>();

  constructor(options: FileGrantsOptions) {
    this.#base = `${options.httpBaseUrl.replace(/\/+$/, '')}${FILES_PATH}`;
    this.#log = options.log?.child({ component: 'ramdisk-files' });
    options.sessions?.onSessionEnd((node) => this.revokeNode(node));
  }

  /** Grants `file` (an absolute path the agent chose) to `node`'s ramdisk. */
  grant(node: string, file: string): FileGrant {
    const id = randomBytes(32).toString('base64url');
    this.#grants.set(id, { node, file, active: new Set() });
    return { url: `${this.#base}${id}`, revoke: () => this.#revoke(id) };
  }

  /** Ends every grant of `node` (its ramdisk session ended). */
  revokeNode(node: string): void {
    for (const [id, entry] of this.#grants) if (entry.node === node) this.#revoke(id);
  }

  /** Grants held now (for tests and stats). */
  get size(): number {
    return this.#grants.size;
  }

  #revoke(id: string): void {
    const entry = this.#grants.get(id);
    if (!entry) return;
    this.#grants.delete(id);
    for (const res of entry.active) res.destroy();
  }

  /**
   * The HTTP route for the boot server's `extraRoutes`: handles everything under
   * `/ramdisk/v1/files/`, leaves every other path to the next route (false).
   */
  route(): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
    return async (req, res) => {
      const target = req.url ?? '/';
      const q = target.search(/[?#]/);
      const path = q < 0 ? target : target.slice(0, q);
      if (!path.startsWith(FILES_PATH)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        reply(res, 405, 'method not allowed: GET or HEAD', { Allow: 'GET, HEAD' });
        return true;
      }
      const id = path.slice(FILES_PATH.length);
      // Checked before the map is consulted: nothing but a well-formed id is ever looked up.
      const entry = ID.test(id) ? this.#grants.get(id) : undefined;
      if (!entry) {
        reply(res, 404, 'not found');
        return true;
      }
      await this.#serve(id, entry, req, res);
      return true;
    };
  }

  async #serve(id: string, entry: Entry, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(entry.file, 'r');
    } catch (error) {
      this.#log?.warn('granted file could not be opened', { node: entry.node, error: errorMessage(error) });
      reply(res, 404, 'not found');
      return;
    }
    try {
      const stat = await handle.stat();
      // Revoked while opening: as unknown as any other revoked id.
      if (!stat.isFile() || this.#grants.get(id) !== entry) {
        reply(res, 404, 'not found');
        return;
      }
      res.writeHead(200, {
        'Content-Type': 'application/octet-stream',
        'Content-Length': stat.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      entry.active.add(res);
      try {
        // The read stream borrows the handle; the `finally` below closes it.
        await pipeline(handle.createReadStream({ highWaterMark: STREAM_CHUNK, autoClose: false }), res);
      } catch (error) {
        // The ramdisk went away, or the grant was revoked mid-way: the response is destroyed.
        this.#log?.debug('granted file transfer cut', { node: entry.node, error: errorMessage(error) });
      } finally {
        entry.active.delete(res);
      }
    } finally {
      await handle.close().catch(() => {});
    }
  }
}

function reply(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
