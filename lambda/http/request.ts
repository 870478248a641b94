/**
 * The request and response shapes route handlers work with, independent of API
 * Gateway's event format (the adapter in `middlewares.ts` converts).
 */
import { environmentConfig } from '../config.ts';
import type { ApiVersion } from './microversion.ts';

export interface ApiRequest {
  readonly method: string;
  /** Path without a trailing slash ('/' stays '/'). */
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string>>;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  readonly version: ApiVersion;
  /** Scheme, host and port the client used, for `links` (`http://127.0.0.1:6385`). */
  readonly baseUrl: string;
  readonly requestId: string;
  /** Who is asking, set by authentication (undefined only on the public routes). */
  readonly principal?: unknown;
}

export interface ApiResponse {
  readonly status: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Serialized as JSON; undefined means no body (202, 204). */
  readonly body?: unknown;
}

export type RouteHandler = (request: ApiRequest) => Promise<ApiResponse>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): ApiResponse {
  return { status, body, headers };
}

export function noContent(status: 202 | 204 = 204, headers: Record<string, string> = {}): ApiResponse {
  return { status, headers };
}

const SAFE_HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * The base URL links are built from, as Ironic builds them from the request's host:
 * `METALPLANE_PUBLIC_URL` when set (behind a custom domain), else the forwarded
 * proto/host a proxy set, else the Host header. A host that is not a plain host[:port]
 * is ignored, so a forged header cannot inject markup or paths into links.
 */
export function baseUrlOf(
  headers: Readonly<Record<string, string>>,
  fallbackHost: string,
  configured: string | undefined = environmentConfig().publicUrl,
): string {
  if (configured) return configured.replace(/\/+$/, '');
  const first = (value: string | undefined) => value?.split(',')[0]?.trim();
  const proto = first(headers['x-forwarded-proto']);
  const scheme = proto === 'http' || proto === 'https' ? proto : 'https';
  const candidates = [first(headers['x-forwarded-host']), headers.host, fallbackHost];
  const host = candidates.find((candidate) => candidate !== undefined && SAFE_HOST.test(candidate));
  return `${scheme}://${host ?? 'localhost'}`;
}
