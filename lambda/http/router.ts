/**
 * A small path router: patterns like `/v1/nodes/{node}/ports`, exact segments, one
 * handler per method. Unknown paths are 404, known paths with another method 405,
 * as Ironic (pecan) answers.
 */
import { MethodNotAllowed, NotFound } from './errors.ts';
import type { RouteHandler } from './request.ts';

interface Route {
  readonly segments: readonly string[];
  readonly handlers: Map<string, RouteHandler>;
}

export interface RouteMatch {
  readonly handler: RouteHandler;
  readonly params: Record<string, string>;
  /** The pattern that matched (`/v1/nodes/{node}`), for the audit trail. */
  readonly pattern: string;
}

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: RouteHandler): this {
    const segments = splitPath(pattern);
    let route = this.routes.find((candidate) => sameShape(candidate.segments, segments));
    if (!route) {
      route = { segments, handlers: new Map() };
      this.routes.push(route);
    }
    route.handlers.set(method.toUpperCase(), handler);
    return this;
  }

  /** Every registered pattern with its methods (for the OpenAPI parity test). */
  patterns(): Array<{ pattern: string; methods: string[] }> {
    return this.routes.map((route) => ({
      pattern: `/${route.segments.join('/')}`,
      methods: [...route.handlers.keys()],
    }));
  }

  match(method: string, path: string): RouteMatch {
    const segments = splitPath(path);
    // Literal segments beat parameters: `/v1/nodes/detail` before `/v1/nodes/{node}`.
    const candidates = this.routes
      .map((route) => ({ route, params: bind(route.segments, segments) }))
      .filter((candidate) => candidate.params !== undefined)
      .sort((a, b) => paramCount(a.route) - paramCount(b.route));
    if (candidates.length === 0) throw new NotFound();
    for (const { route, params } of candidates) {
      const handler = route.handlers.get(method.toUpperCase());
      if (handler && params) return { handler, params, pattern: `/${route.segments.join('/')}` };
    }
    const allowed = new Set(candidates.flatMap(({ route }) => [...route.handlers.keys()]));
    throw new MethodNotAllowed([...allowed]);
  }
}

export function normalizePath(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

function splitPath(path: string): string[] {
  return normalizePath(path).split('/').filter(Boolean);
}

function isParam(segment: string): boolean {
  return segment.startsWith('{') && segment.endsWith('}');
}

function sameShape(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((segment, i) => segment === b[i]);
}

function paramCount(route: Route): number {
  return route.segments.filter(isParam).length;
}

function bind(pattern: readonly string[], actual: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== actual.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, segment] of pattern.entries()) {
    const value = actual[i] as string;
    if (isParam(segment)) {
      try {
        params[segment.slice(1, -1)] = decodeURIComponent(value);
      } catch {
        return undefined;
      }
    } else if (segment !== value) {
      return undefined;
    }
  }
  return params;
}
