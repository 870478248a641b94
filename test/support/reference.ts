/** Reads the Ironic reference corpus in `../shared/ironic-reference/` (beside the project). */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const referenceDir = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'shared',
  'ironic-reference',
);

export interface Exchange {
  title: string;
  request: { method: string; path: string; headers: Record<string, string>; body: unknown };
  response: { status: number; headers: Record<string, string>; body: unknown };
}

/** The exchange whose file name starts with `NNN-`. */
export function exchange(number: number): Exchange {
  const prefix = `${String(number).padStart(3, '0')}-`;
  const file = readdirSync(join(referenceDir, 'exchanges')).find((name) => name.startsWith(prefix));
  if (!file) throw new Error(`no reference exchange ${prefix}*`);
  return JSON.parse(readFileSync(join(referenceDir, 'exchanges', file), 'utf8')) as Exchange;
}

/** The recorded Ironic ran on 127.0.0.1:6385; links in our answers carry our own host. */
export function rehost<T>(value: T, baseUrl: string): T {
  return JSON.parse(JSON.stringify(value).replaceAll('http://127.0.0.1:6385', baseUrl)) as T;
}
