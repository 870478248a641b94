/**
 * The audit trail (issue 12): one record per change made through the API — who (the
 * authenticated principal), what (method, route pattern, resource, a summary of the
 * change), when, from which address, under which request id. Pure logic, no AWS: the
 * middleware (`lambda/http/middlewares.ts`) builds a record from each request with these
 * functions, the repository (`adapters/dynamo/audit-repository.ts`) stores it.
 *
 * What is recorded of a change is its *shape*, never its values: the top-level field
 * names of a POST/PUT/merge-PATCH body, the `op` and `path` of each JSON Patch operation.
 * A short allow-list of fields whose value is the change itself and never a secret
 * (`target` of a state change, a user's `role` ...) keeps its scalar value, masked by
 * `maskSecrets` all the same. A secret can therefore reach a record only as a key name.
 */
import { maskSecrets } from '../auth/secrets.ts';
import { canonicalUuid, isUuidLike } from '../identifiers.ts';

export const AUDITED_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Default retention (days) of a record; `METALPLANE_AUDIT_RETENTION_DAYS` overrides it. */
export const DEFAULT_RETENTION_DAYS = 365;
export const RETENTION_ENV = 'METALPLANE_AUDIT_RETENTION_DAYS';

/** Bounds of what one record may hold (a hostile body must not make a record huge). */
const MAX_FIELDS = 50;
const MAX_PATCH_OPS = 50;
const MAX_TEXT = 256;

export interface AuditActor {
  /** `user`, `token`, `agent`, `noauth`; `anonymous` on the public enrollment route. */
  readonly kind: string;
  readonly name: string | null;
  readonly role: string | null;
  readonly project: string | null;
  /** Agents only: the site they serve. */
  readonly site?: string | null;
}

export interface AuditChange {
  /** Top-level field names of an object body (POST, PUT, merge-style PATCH). */
  readonly fields?: readonly string[];
  /** `op` and `path` of each JSON Patch operation; values are never kept. */
  readonly patch?: ReadonlyArray<{ readonly op: string; readonly path: string }>;
  /** The allow-listed scalar values (`target`, `role` ...), masked. */
  readonly values?: Readonly<Record<string, string | number | boolean | null>>;
  /** The body named more fields or operations than a record keeps. */
  readonly truncated?: boolean;
}

export interface AuditRecord {
  /** A UUIDv7: time-ordered, so the store sorts records newest-first by it. */
  readonly id: string;
  /** ISO 8601 (UTC, milliseconds). */
  readonly created_at: string;
  readonly actor: AuditActor;
  readonly source_ip: string | null;
  readonly user_agent: string | null;
  /** The id the API answered in `X-OpenStack-Request-Id` (and logged). */
  readonly request_id: string;
  /** API Gateway's own request id (`requestContext.requestId`), for its access logs. */
  readonly gateway_request_id: string | null;
  readonly method: string;
  /** The route pattern (`/v1/nodes/{node}`). */
  readonly route: string;
  /** The path as requested. */
  readonly path: string;
  readonly status: number;
  readonly resource_type: string | null;
  /** The resource's UUID when the request or its answer names one, else its name or id. */
  readonly resource: string | null;
  readonly resource_name: string | null;
  readonly change: AuditChange;
}

/**
 * Is this request audited? Every successful change, except the agents' own channel
 * (`/v1/agent/...`: long polls, messages, command results, heartbeats), which is high
 * volume and whose effects are recorded where they matter (node history). The agents'
 * enrollment and credential routes (`/v1/agents/...`) are audited.
 */
export function isAudited(method: string, path: string, status: number): boolean {
  if (!AUDITED_METHODS.has(method.toUpperCase())) return false;
  if (status >= 400) return false;
  // A node enrolled by discovery is a change like `POST /v1/nodes` (its actor: the agent).
  if (path === '/v1/agent/discoveries') return status === 201;
  return !(path === '/v1/agent' || path.startsWith('/v1/agent/'));
}

/** Collection segments of the routes, and the kind of resource each one holds. */
const COLLECTIONS: Readonly<Record<string, string>> = {
  nodes: 'node',
  ports: 'port',
  portgroups: 'portgroup',
  chassis: 'chassis',
  allocations: 'allocation',
  deploy_templates: 'deploy_template',
  connectors: 'volume_connector',
  targets: 'volume_target',
  users: 'user',
  tokens: 'token',
  sites: 'site',
  agents: 'agent',
  images: 'image',
  commands: 'command',
  /** `POST /v1/agent/discoveries` creates a node. */
  discoveries: 'node',
};

/** The kinds a client may filter on (`resource_type`). */
export const RESOURCE_TYPES: readonly string[] = [...new Set(Object.values(COLLECTIONS))].sort();

/** Body fields naming a created resource, in the order they are tried. */
const CREATED_ID_FIELDS = ['uuid', 'id', 'hostname', 'name'] as const;

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}

function identifier(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  return clip(isUuidLike(value) ? canonicalUuid(value) : value);
}

export interface ResourceRef {
  readonly type: string | null;
  readonly id: string | null;
  readonly name: string | null;
}

/**
 * Which resource a request changed, from its route pattern, path parameters and answer:
 * the last `<collection>/{param}` pair of the pattern (`/v1/nodes/{node}/states/power` →
 * the node, `/v1/users/{user}/tokens/{token}` → the token). A pattern ending in a
 * collection (`POST /v1/nodes`, `POST /v1/users/{user}/tokens`, `POST /v1/agents/enroll`)
 * creates: the created object's uuid/id/hostname/name comes from the answer; an answer
 * without one (`POST /v1/sites/{site}/agents` mints a token, not an object) falls back to
 * the pair before (the site).
 */
export function resourceOf(
  pattern: string,
  params: Readonly<Record<string, string>>,
  responseBody: unknown,
): ResourceRef {
  const segments = pattern.split('/').filter(Boolean);
  const pairs: Array<{ type: string; param?: string; last: boolean }> = [];
  for (const [i, segment] of segments.entries()) {
    const type = COLLECTIONS[segment];
    if (!type) continue;
    const next = segments[i + 1];
    const param = next?.startsWith('{') && next.endsWith('}') ? next.slice(1, -1) : undefined;
    // Does the answer describe this pair's object? Only when the pattern names nothing
    // after it: `/v1/nodes/{node}`, `/v1/nodes`, `/v1/agents/enroll` (an action on the
    // collection), not `/v1/images/{image}/files/{role}/upload`.
    const rest = segments.slice(param ? i + 2 : i + 1);
    const last = param ? rest.length === 0 : !rest.some((s) => s.startsWith('{'));
    pairs.push({ type, ...(param ? { param } : {}), last });
  }
  const body = isMapping(responseBody) ? responseBody : {};
  for (let i = pairs.length - 1; i >= 0; i--) {
    const pair = pairs[i] as (typeof pairs)[number];
    const addressed = pair.param ? identifier(params[pair.param]) : undefined;
    // The answer is the object itself when the route names it last (PATCH answers it)
    // or creates it (POST answers the new object).
    const answered = pair.last && i === pairs.length - 1;
    if (addressed !== undefined) {
      const uuid = answered ? identifier(body.uuid) : undefined;
      const bodyName = answered ? identifier(body.name) : undefined;
      const byName = isUuidLike(addressed) ? undefined : addressed;
      return { type: pair.type, id: uuid ?? addressed, name: byName ?? bodyName ?? null };
    }
    if (!answered) continue;
    for (const field of CREATED_ID_FIELDS) {
      const created = identifier(body[field]);
      if (created === undefined) continue;
      const name = identifier(body.name);
      return { type: pair.type, id: created, name: name ?? (isUuidLike(created) ? null : created) };
    }
  }
  return { type: null, id: null, name: null };
}

/**
 * Fields whose value *is* the change and is never a secret: kept (scalars only, masked).
 * `target` (provision, power, RAID ...), `boot_device`, a user's `role` and `project`,
 * node ownership, maintenance reasons are not: they are free text.
 */
const VALUE_FIELDS = new Set(['target', 'boot_device', 'persistent', 'role', 'project', 'owner', 'lessee']);

function scalar(value: unknown): value is string | number | boolean | null {
  return value === null || ['string', 'number', 'boolean'].includes(typeof value);
}

/**
 * What changed, from a request body (already parsed, or undefined): its shape only.
 * A JSON Patch (an array of operations) keeps each `op` and `path`; an object keeps its
 * top-level field names and the allow-listed values; anything else keeps nothing.
 */
export function summarizeChange(method: string, body: unknown): AuditChange {
  if (Array.isArray(body)) {
    if (method.toUpperCase() !== 'PATCH') return {};
    const patch = body
      .slice(0, MAX_PATCH_OPS)
      .filter(isMapping)
      .map((operation) => ({
        op: typeof operation.op === 'string' ? clip(operation.op) : '?',
        path: typeof operation.path === 'string' ? clip(operation.path) : '?',
      }));
    return { patch, ...(body.length > MAX_PATCH_OPS ? { truncated: true } : {}) };
  }
  if (!isMapping(body)) return {};
  const keys = Object.keys(body);
  const fields = keys.slice(0, MAX_FIELDS).map(clip);
  const picked: Record<string, unknown> = {};
  for (const key of keys) {
    const value = body[key];
    if (VALUE_FIELDS.has(key) && scalar(value)) picked[key] = typeof value === 'string' ? clip(value) : value;
  }
  const masked = maskSecrets(picked) as Record<string, string | number | boolean | null>;
  return {
    fields,
    ...(Object.keys(masked).length > 0 ? { values: masked } : {}),
    ...(keys.length > MAX_FIELDS ? { truncated: true } : {}),
  };
}

/** A JSON request body, or undefined when there is none or it is not JSON. */
export function parseBody(text: string | undefined): unknown {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface PrincipalLike {
  readonly kind?: unknown;
  readonly name?: unknown;
  readonly role?: unknown;
  readonly project?: unknown;
  readonly site?: unknown;
}

const text = (value: unknown): string | null =>
  typeof value === 'string' && value !== '' ? clip(value) : null;

/** The actor of a request: its principal, or `anonymous` on a public route. */
export function actorOf(principal: unknown): AuditActor {
  if (!isMapping(principal)) return { kind: 'anonymous', name: null, role: null, project: null };
  const p = principal as PrincipalLike;
  return {
    kind: text(p.kind) ?? 'unknown',
    name: text(p.name),
    role: text(p.role),
    project: text(p.project),
    ...(p.kind === 'agent' ? { site: text(p.site) } : {}),
  };
}

/** Retention in days from the environment's value; a missing or invalid one is the default. */
export function retentionDays(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return DEFAULT_RETENTION_DAYS;
  const days = Number(raw);
  if (!Number.isInteger(days) || days <= 0) {
    throw new Error(`${RETENTION_ENV} must be a positive number of days, not ${JSON.stringify(raw)}`);
  }
  return days;
}

/** The TTL (epoch seconds) of a record created at `createdAt`. */
export function expiresAt(createdAt: string, days: number): number {
  return Math.floor(Date.parse(createdAt) / 1000) + days * 86_400;
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Its text sorts as
 * its time, which gives newest-first listings and time bounds without another attribute.
 */
export function newAuditId(at: Date, random: Uint8Array): string {
  if (random.length < 10) throw new Error('newAuditId needs 10 random bytes');
  const ms = at.getTime().toString(16).padStart(12, '0').slice(-12);
  const hex = Array.from(random.slice(0, 10), (byte) => byte.toString(16).padStart(2, '0')).join('');
  const randA = `7${hex.slice(0, 3)}`;
  const variant = ((Number.parseInt(hex.slice(3, 4), 16) & 0x3) | 0x8).toString(16);
  const randB = `${variant}${hex.slice(4, 7)}`;
  return `${ms.slice(0, 8)}-${ms.slice(8, 12)}-${randA}-${randB}-${hex.slice(7, 19)}`;
}

/** The smallest and the largest audit id of a millisecond (inclusive bounds for `since`/`until`). */
export function auditIdBounds(at: Date): { lowest: string; highest: string } {
  const ms = at.getTime().toString(16).padStart(12, '0').slice(-12);
  const prefix = `${ms.slice(0, 8)}-${ms.slice(8, 12)}`;
  return { lowest: `${prefix}-7000-8000-000000000000`, highest: `${prefix}-7fff-bfff-ffffffffffff` };
}

export interface RecordInput {
  readonly id: string;
  readonly createdAt: string;
  readonly principal: unknown;
  readonly sourceIp: string | undefined;
  readonly userAgent: string | undefined;
  readonly requestId: string;
  readonly gatewayRequestId: string | undefined;
  readonly method: string;
  readonly route: string;
  readonly path: string;
  readonly params: Readonly<Record<string, string>>;
  readonly status: number;
  readonly requestBody: string | undefined;
  readonly responseBody: string | undefined;
}

/** Builds the record of one request (the caller decided it is audited: `isAudited`). */
export function buildAuditRecord(input: RecordInput): AuditRecord {
  const method = input.method.toUpperCase();
  const resource = resourceOf(input.route, input.params, parseBody(input.responseBody));
  return {
    id: input.id,
    created_at: input.createdAt,
    actor: actorOf(input.principal),
    source_ip: text(input.sourceIp),
    user_agent: text(input.userAgent),
    request_id: input.requestId,
    gateway_request_id: text(input.gatewayRequestId),
    method,
    route: input.route,
    path: clip(input.path),
    status: input.status,
    resource_type: resource.type,
    resource: resource.id,
    resource_name: resource.name,
    change: summarizeChange(method, parseBody(input.requestBody)),
  };
}
