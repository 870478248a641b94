/** What every command group needs: the API client, the output, and cliff's output options. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type Client, type Response, UsageError } from '../os-config.ts';
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
