/**
 * The deploy callback on the agent's side (DESIGN.md, "Callback"): the control plane
 * sends `boot.prepare` a single-use `callback_token`; the agent turns it into a URL on
 * its own HTTP server — `<http_url>/v1/callback/<node uuid>?token=<token>` — that goes
 * on the booted kernel's command line (`callback=`); when the booted system fetches it
 * (GET or POST), the agent relays `deploy_callback` to the control plane, which moves
 * the node from `wait call-back` to `active`. The agent keeps each node's current token
 * (a 0600 file in its state directory, so a restart loses none) and refuses a wrong or
 * used one itself (403) — a scanner on the boot network never reaches the control plane,
 * which checks the token again (its SHA-256) anyway. A token is used once.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AgentMessage } from '../../protocol/messages.ts';
import type { Action } from '../drivers/types.ts';
import type { Logger } from '../log.ts';
import { writeFileAtomic } from '../state.ts';

const PATH = /^\/v1\/callback\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/?$/;
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

export function callbackUrl(httpBaseUrl: string, node: string, token: string): string {
  return `${httpBaseUrl.replace(/\/+$/, '')}/v1/callback/${node}?token=${token}`;
}

/** The callback tokens of this agent's nodes (node UUID → token), persisted. */
export class CallbackTokens {
  readonly #file: string | undefined;
  readonly #tokens = new Map<string, string>();
  #writing: Promise<void> = Promise.resolve();

  constructor(file?: string) {
    this.#file = file;
    if (!file) return;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      for (const [node, token] of Object.entries(saved)) {
        if (typeof token === 'string' && TOKEN.test(token)) this.#tokens.set(node, token);
      }
    } catch {
      // No file yet (or a damaged one): no callbacks pending.
    }
  }

  async set(node: string, token: string): Promise<void> {
    this.#tokens.set(node, token);
    await this.#save();
  }

  async forget(node: string): Promise<void> {
    if (this.#tokens.delete(node)) await this.#save();
  }

  /** Takes the node's token if `token` is it (single use); false otherwise. */
  async take(node: string, token: string): Promise<boolean> {
    const expected = this.#tokens.get(node);
    if (!expected || expected.length !== token.length) return false;
    if (!timingSafeEqual(Buffer.from(expected), Buffer.from(token))) return false;
    this.#tokens.delete(node);
    await this.#save();
    return true;
  }

  #save(): Promise<void> {
    const file = this.#file;
    if (!file) return Promise.resolve();
    const data = JSON.stringify(Object.fromEntries(this.#tokens));
    this.#writing = this.#writing.catch(() => undefined).then(() => writeFileAtomic(file, data));
    return this.#writing;
  }
}

/**
 * `boot.prepare` taking `callback_token` (what the control plane sends) instead of a
 * URL (what the boot files need): the token becomes this agent's callback URL.
 */
export function withCallbackUrls(
  actions: readonly Action[],
  httpBaseUrl: string,
  tokens: CallbackTokens = new CallbackTokens(),
): Action[] {
  return actions.map((action) => {
    if (action.name === 'boot.clean') {
      return {
        ...action,
        run: async (ctx) => {
          const result = await action.run(ctx);
          await tokens.forget(String(ctx.args.node_uuid));
          return result;
        },
      };
    }
    if (action.name !== 'boot.prepare') return action;
    const translate = (args: Record<string, unknown>): Record<string, unknown> => {
      const { callback_token: token, ...rest } = args;
      if (token === undefined) return rest;
      if (typeof token !== 'string' || !TOKEN.test(token)) return { ...rest, callback_url: 'invalid token' };
      return { ...rest, callback_url: callbackUrl(httpBaseUrl, String(args.node_uuid), token) };
    };
    return {
      ...action,
      ...(action.validate
        ? { validate: (args: Record<string, unknown>) => action.validate?.(translate(args)) }
        : {}),
      run: async (ctx) => {
        const result = await action.run({ ...ctx, args: translate(ctx.args) });
        const node = String(ctx.args.node_uuid).toLowerCase();
        if (typeof ctx.args.callback_token === 'string') await tokens.set(node, ctx.args.callback_token);
        else await tokens.forget(node);
        return result;
      },
    };
  });
}

/**
 * The HTTP route of the callback, for the agent's HTTP boot server (`extraRoutes`):
 * answers 200 once relayed, 400 for a malformed request, 503 when the control plane
 * cannot be told now (the booted system should retry).
 */
export function callbackRoute(
  send: (message: AgentMessage) => Promise<void>,
  log: Logger,
  tokens: CallbackTokens,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent.invalid');
    const match = PATH.exec(url.pathname);
    if (!match) return false;
    const answer = (status: number, text: string) => {
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(`${text}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'POST') {
      answer(405, 'method not allowed');
      return true;
    }
    const node = match[1] as string;
    const token = url.searchParams.get('token') ?? '';
    if (!TOKEN.test(token)) {
      answer(400, 'a callback needs its token');
      return true;
    }
    if (!(await tokens.take(node, token))) {
      log.warn('deploy callback refused: unknown or used token', { node, from: req.socket.remoteAddress });
      answer(403, 'refused');
      return true;
    }
    try {
      await send({ v: 1, type: 'deploy_callback', node, token });
      log.info('deploy callback relayed', { node, from: req.socket.remoteAddress });
      answer(200, 'ok');
    } catch (error) {
      log.warn('deploy callback not relayed: the control plane is unreachable', {
        node,
        error: (error as Error).message,
      });
      // Not lost: the token is given back, so the booted system's retry works.
      await tokens.set(node, token);
      answer(503, 'try again later');
    }
    return true;
  };
}
