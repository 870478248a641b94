/**
 * The query parameters every Ironic collection shares — `limit`, `marker`, `sort_key`,
 * `sort_dir`, `fields`, `detail` — parsed and checked as Ironic does, and the `next`
 * link of a page.
 */
import { invalid } from '../domain/errors.ts';
import { canonicalUuid, isUuidLike } from '../domain/identifiers.ts';
import { encodingProblem, textProblem } from '../http/json-shape.ts';
import type { ApiRequest } from '../http/request.ts';

/** Ironic's `[api]max_limit` default. */
export const MAX_LIMIT = 1000;

export interface ListParams {
  readonly limit: number;
  readonly marker?: string;
  readonly sortKey: string;
  readonly descending: boolean;
  /** Fields to show, or undefined for the full objects (`detail`). */
  readonly fields?: string[];
  readonly detail: boolean;
}

export interface ListOptions {
  /** Sort keys an index serves; the first is the default (`id` means creation order). */
  readonly sortKeys: readonly string[];
  /** Fields a client may name in `fields`. */
  readonly selectable: readonly string[];
  /** The fields shown without `fields` or `detail`. */
  readonly defaultFields: readonly string[];
  /** `/detail` path: full objects, and `fields`/`detail` refused. */
  readonly detailPath: boolean;
}

export function parseLimit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return MAX_LIMIT;
  if (!/^-?\d+$/.test(raw.trim())) throw invalid(`Invalid value for limit: ${raw}. It must be an integer.`);
  const limit = Number(raw);
  if (limit <= 0) throw invalid('Limit must be positive');
  return Math.min(limit, MAX_LIMIT);
}

/** Ironic's `args.boolean` (oslo's strict bool_from_string), with its message. */
export function parseBoolean(raw: string | undefined, name: string): boolean | undefined {
  if (raw === undefined) return undefined;
  const text = raw.trim().toLowerCase();
  if (['1', 't', 'true', 'on', 'y', 'yes'].includes(text)) return true;
  if (['0', 'f', 'false', 'off', 'n', 'no'].includes(text)) return false;
  throw invalid(
    `Invalid ${name}: Unrecognized value '${raw}', acceptable values are: '0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'`,
  );
}

export function parseListParams(request: ApiRequest, options: ListOptions): ListParams {
  const { query } = request;
  const limit = parseLimit(query.limit);
  const marker = query.marker;
  if (marker !== undefined && !isUuidLike(marker))
    throw invalid(`Invalid marker ${marker}: it must be a UUID.`);
  const sortDir = query.sort_dir ?? 'asc';
  if (sortDir !== 'asc' && sortDir !== 'desc') {
    throw invalid(`Invalid sort direction: ${sortDir}. Acceptable values are 'asc' or 'desc'`);
  }
  const sortKey = query.sort_key ?? 'id';
  if (!options.sortKeys.includes(sortKey)) {
    throw invalid(
      `The sort_key value "${sortKey}" is an invalid field for sorting. Metalplane's indexes sort by: ${options.sortKeys.join(', ')}`,
    );
  }
  const detailQuery = parseBoolean(query.detail, 'detail');
  if (options.detailPath && (query.fields !== undefined || detailQuery !== undefined)) {
    throw invalid('Can not specify ?detail=True and fields in the same request.');
  }
  if (detailQuery !== undefined && request.version.minor < 43) {
    throw invalid(`Invalid query parameter ?detail=${query.detail} received.`);
  }
  const detail = options.detailPath || detailQuery === true;
  if (detail && query.fields !== undefined)
    throw invalid('Can not specify ?detail=True and fields in the same request.');
  const fields = detail
    ? undefined
    : query.fields !== undefined
      ? parseFields(query.fields, options.selectable)
      : [...options.defaultFields];
  return {
    limit,
    ...(marker ? { marker: canonicalUuid(marker) } : {}),
    sortKey,
    descending: sortDir === 'desc',
    fields,
    detail,
  };
}

/** `fields=a,b`: each must be a field of the resource at this version. */
export function parseFields(raw: string, selectable: readonly string[]): string[] {
  const fields = raw
    .split(',')
    .map((field) => field.trim())
    .filter(Boolean);
  for (const field of fields) {
    if (!selectable.includes(field)) throw invalid(`Field ${field} is not a valid field.`);
  }
  return fields;
}

/**
 * The `next` link: the same request from just after the last item, with the parameters
 * Ironic writes into it (sort, fields, limit, marker).
 */
export function nextLink(
  request: ApiRequest,
  resourcePath: string,
  params: ListParams,
  lastUuid: string,
): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(request.query)) {
    if (!['limit', 'marker', 'sort_key', 'sort_dir', 'fields'].includes(name)) query.set(name, value);
  }
  query.set('sort_key', params.sortKey);
  query.set('sort_dir', params.descending ? 'desc' : 'asc');
  if (params.fields && !params.detail) query.set('fields', params.fields.join(','));
  query.set('limit', String(params.limit));
  query.set('marker', lastUuid);
  return `${request.baseUrl}/v1/${resourcePath}?${query.toString().replaceAll('%2C', ',')}`;
}

/** A JSON body, or Ironic-style 400 for malformed JSON (Ironic itself answers 500 there). */
export function jsonBody(request: ApiRequest): unknown {
  if (request.body === undefined || request.body.trim() === '')
    throw invalid('The request body is empty: a JSON document is required.');
  return parseJsonText(request.body);
}

/**
 * A request body's JSON, or 400: malformed, not UTF-8, a number beyond a double's range, a
 * NUL or an unpaired surrogate in a string (`http/json-shape.ts`).
 */
export function parseJsonText(text: string): unknown {
  const encoding = encodingProblem(text);
  if (encoding) throw invalid(encoding);
  let parsed: unknown;
  let outOfRange = false;
  let problem: string | undefined;
  try {
    // A number beyond a double's range (1e400) parses as Infinity, which no store can keep.
    parsed = JSON.parse(text, (key, value: unknown) => {
      if (typeof value === 'number' && !Number.isFinite(value)) outOfRange = true;
      problem ??= textProblem(key) ?? (typeof value === 'string' ? textProblem(value) : undefined);
      return value;
    });
  } catch (error) {
    throw invalid(`Malformed JSON in the request body: ${(error as Error).message}`);
  }
  if (outOfRange) throw invalid('A number in the request body is out of range.');
  if (problem) throw invalid(problem);
  return parsed;
}
