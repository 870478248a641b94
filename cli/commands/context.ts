/** What every command group needs: the API client, the output, and cliff's output options. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type Client, CommandError, type Response, UsageError } from '../os-config.ts';
import { FORMATS, type Format, formatList, formatOne, type OutputOptions } from '../output.ts';

/** Options as commander parses them: strings, booleans, numbers, repeated strings. */
export type Options = OutputOptions & {
  [option: string]: string | string[] | number | boolean | undefined;
};

export interface Context {
  /** The negotiated client, built at first use from the global options. */
  client(): Promise<Client>;
  out(text: string): void;
  /** Progress and notes: stderr. */
  note(text: string): void;
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** A resource as the API answers it. */
export type Row = Record<string, unknown>;

/** The record without these fields (`links`, sub-resource links...). */
export function without(record: Row, hidden: string[]): Row {
  return Object.fromEntries(Object.entries(record).filter(([key]) => !hidden.includes(key)));
}

/** The given fields, '' for those the API did not answer (as `getattr(resource, field, '')`). */
export function detailed(record: Row, fields: string[]): Row {
  return Object.fromEntries(fields.map((field) => [field, field in record ? record[field] : '']));
}

/** The record's fields in alphabetical order (python-ironicclient's `show`: `sorted(info.items())`). */
export function sortedFields(record: Row): string[] {
  return Object.keys(record).sort();
}

/**
 * `DELETE` each resource in turn, as python-ironicclient's delete commands: `Deleted KIND ID`
 * on stdout for each one done, the failures on stderr, and exit 1 when any failed.
 */
export async function deleteEach(
  context: Context,
  kind: string,
  ids: string[],
  pathOf: (id: string) => string,
  plural = `${kind}s`,
): Promise<void> {
  const client = await context.client();
  let failed = 0;
  for (const id of ids) {
    try {
      await client.request('DELETE', pathOf(id));
      context.out(`Deleted ${kind} ${id}`);
    } catch (error) {
      failed++;
      context.note(`Failed to delete ${kind} ${id}: ${(error as Error).message}`);
    }
  }
  if (failed > 0) throw new CommandError(`${failed} of ${ids.length} ${plural} failed to delete.`);
}

/**
 * JSON patch operations from options, as python-ironicclient's `set`/`unset`: `maps` are
 * repeatable `key=value` options (`--extra` → `/extra/key`), `scalars` single fields.
 */
export function patchOps(
  op: 'add' | 'remove',
  options: Record<string, unknown>,
  maps: Record<string, string>,
  scalars: Record<string, string>,
): Row[] {
  const ops: Row[] = [];
  for (const [option, field] of Object.entries(maps)) {
    const given = options[option] as string[] | undefined;
    if (!given) continue;
    if (op === 'add') {
      for (const [key, value] of Object.entries(keyValues(given) ?? {}))
        ops.push({ op, path: `/${field}/${key}`, value });
    } else {
      for (const key of given) ops.push({ op, path: `/${field}/${key}` });
    }
  }
  for (const [option, field] of Object.entries(scalars)) {
    const given = options[option];
    if (given === undefined || given === false) continue;
    ops.push(op === 'add' ? { op, path: `/${field}`, value: given } : { op, path: `/${field}` });
  }
  return ops;
}

/** Sends a JSON patch; none to send is a usage error ("nothing to set"). */
export async function applyPatch(context: Context, path: string, ops: Row[], verb: 'set' | 'unset') {
  if (ops.length === 0) throw new UsageError(`nothing to ${verb}: give at least one option`);
  await (await context.client()).request('PATCH', path, ops);
}

/** `--wait [timeout]`: seconds, 0 (or no value) for no limit; undefined when not given. */
export function waitSeconds(wait: string | boolean | undefined): number | undefined {
  if (wait === undefined || wait === false) return undefined;
  const timeout = wait === true ? 0 : Number(wait);
  if (!Number.isFinite(timeout) || timeout < 0) throw new UsageError(`--wait ${wait}: seconds`);
  return timeout;
}

/** `-f`, `-c`, `--noindent`, as cliff's list and show commands have. */
export function withOutput(command: Command, defaultFormat: Format = 'table'): Command {
  return command
    .addOption(new Option('-f, --format <format>', 'output format').choices(FORMATS).default(defaultFormat))
    .option('-c, --column <column>', 'a column to show (repeatable)', collect)
    .option('--noindent', 'no indentation in json output');
}

export async function printList(
  context: Context,
  fields: string[],
  items: Array<Record<string, unknown>>,
  options: OutputOptions,
): Promise<void> {
  const text = await formatList(fields, items, options);
  if (text !== undefined) context.out(text);
}

export async function printOne(
  context: Context,
  record: Record<string, unknown>,
  options: OutputOptions,
  fields?: string[],
): Promise<void> {
  context.out(await formatOne(record, options, fields));
}

/** `key=value`, the value parsed as JSON where it can be (as python-ironicclient does). */
export function keyValue(pair: string): [string, unknown] {
  const at = pair.indexOf('=');
  if (at <= 0) throw new UsageError(`${pair}: use KEY=VALUE`);
  const raw = pair.slice(at + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a plain string
  }
  return [pair.slice(0, at), value];
}

export function keyValues(pairs: string[] | undefined): Record<string, unknown> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  return Object.fromEntries(pairs.map(keyValue));
}

export const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${value} is not a non-negative integer`);
  return n;
};

/** Every item of a paginated collection (`next` links), up to `limit` items (0 or undefined: all). */
export async function listAll(
  client: Client,
  path: string,
  key: string,
  limit?: number,
): Promise<Array<Record<string, unknown>>> {
  const items: Array<Record<string, unknown>> = [];
  let next: string | undefined = path;
  while (next) {
    const page: Response = await client.request('GET', next);
    items.push(...((page.body?.[key] ?? []) as Array<Record<string, unknown>>));
    if (limit && items.length >= limit) return items.slice(0, limit);
    const link = page.body?.next as string | undefined;
    next = link ? link.slice(link.indexOf('/v1/')) : undefined;
  }
  return items;
}

export function query(params: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params))
    if (value !== undefined) search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export const segment = (value: string) => encodeURIComponent(value);

/** `--sort key[:asc|desc]` → sort_key, sort_dir. */
export function sortParams(sort: string | undefined): { sort_key?: string; sort_dir?: string } {
  if (!sort) return {};
  const [key, dir] = sort.split(':');
  if (dir !== undefined && dir !== 'asc' && dir !== 'desc')
    throw new UsageError(`--sort ${sort}: the direction is asc or desc`);
  return { ...(key ? { sort_key: key } : {}), ...(dir ? { sort_dir: dir } : {}) };
}

/** `--limit`, `--marker`, `--sort` as the API's query parameters (a limit of 0: all). */
export function pagingParams(options: Options) {
  return {
    limit: (options.limit as number | undefined) || undefined,
    marker: options.marker as string | undefined,
    ...sortParams(options.sort as string | undefined),
  };
}

/**
 * A JSON argument as python-ironicclient's `handle_json_arg`: `-` reads standard input, the
 * path of a file reads it (JSON or YAML), else the text itself is JSON.
 */
export async function jsonArgument(value: string, what: string): Promise<unknown> {
  const { existsSync } = await import('node:fs');
  const { readFile } = await import('node:fs/promises');
  if (value === '-' || existsSync(value)) {
    const text = value === '-' ? await readStdin() : await readFile(value, 'utf8');
    const { parse } = await import('yaml');
    try {
      return parse(text) as unknown;
    } catch (error) {
      throw new UsageError(`${what}: ${(error as Error).message}`);
    }
  }
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw new UsageError(`${what}: not JSON, and no file ${value}`);
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
