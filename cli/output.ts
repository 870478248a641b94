/**
 * Output as OpenStack's cliff: `-f table|json|yaml|value|csv`, `-c COLUMN` (repeatable),
 * `--noindent`. Lists are rows of columns; a shown resource is Field/Value pairs. Machine
 * formats (json, yaml, csv, value) key by the API's field names (`provision_state`), as the
 * `baremetal` CLI does; tables head their columns with labels (`Provisioning State`).
 */

export const FORMATS = ['table', 'json', 'yaml', 'value', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

export interface OutputOptions {
  format?: Format;
  column?: string[];
  noindent?: boolean;
  maxWidth?: number;
}

const LABELS: Record<string, string> = {
  uuid: 'UUID',
  instance_uuid: 'Instance UUID',
  provision_state: 'Provisioning State',
  target_provision_state: 'Target Provision State',
  provision_updated_at: 'Provision Updated At',
  node_uuid: 'Node UUID',
  portgroup_uuid: 'Port Group UUID',
  chassis_uuid: 'Chassis UUID',
  allocation_uuid: 'Allocation UUID',
  pxe_enabled: 'PXE boot enabled',
  hosts: 'Supported driver(s)',
  name: 'Name',
  hostname: 'Hostname',
  id: 'ID',
  url: 'URL',
  ip: 'IP',
};

/** `instance_uuid` → `Instance UUID`, as python-ironicclient labels its columns. */
export function labelOf(field: string): string {
  return (
    LABELS[field] ??
    field
      .split('_')
      .map((word) => (word === 'uuid' ? 'UUID' : word.charAt(0).toUpperCase() + word.slice(1)))
      .join(' ')
  );
}

/** A cell as the table and value formats print it (as python would: None, True, JSON for dicts). */
function cell(value: unknown): string {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(', ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** An ASCII table as prettytable draws it (cliff's table formatter). */
export function renderTable(headers: string[], rows: unknown[][]): string {
  const text = rows.map((row) => row.map((value) => cell(value).split('\n')));
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...text.map((row) => Math.max(...(row[i] ?? ['']).map((line) => line.length)))),
  );
  const rule = `+${widths.map((width) => '-'.repeat(width + 2)).join('+')}+`;
  const line = (cells: string[]) =>
    `| ${cells.map((value, i) => value.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const out = [rule, line(headers), rule];
  for (const row of text) {
    const height = Math.max(1, ...row.map((lines) => lines.length));
    for (let k = 0; k < height; k++) out.push(line(headers.map((_, i) => row[i]?.[k] ?? '')));
  }
  out.push(rule);
  return out.join('\n');
}

function csvCell(value: unknown): string {
  if (typeof value === 'number') return String(value);
  const text = value === null || value === undefined ? '' : typeof value === 'string' ? value : cell(value);
  return `"${text.replaceAll('"', '""')}"`;
}

/** Which of the fields `-c` keeps, in the order given (a label or a field name, any case). */
export function selectColumns(fields: string[], wanted: string[] | undefined): string[] {
  if (!wanted || wanted.length === 0) return fields;
  return wanted.map((name) => {
    const found = fields.find(
      (field) => field === name || field.toLowerCase() === name.toLowerCase() || labelOf(field) === name,
    );
    if (!found) throw new ColumnError(`No such column: ${name} (choose from ${fields.join(', ')})`);
    return found;
  });
}

export class ColumnError extends Error {
  override readonly name = 'ColumnError';
}

async function yamlOf(value: unknown): Promise<string> {
  const { stringify } = await import('yaml');
  return stringify(value).trimEnd();
}

/** A list of resources: `fields` are the columns, in order. */
export async function formatList(
  fields: string[],
  items: Array<Record<string, unknown>>,
  options: OutputOptions,
): Promise<string | undefined> {
  const columns = selectColumns(fields, options.column);
  const rows = items.map((item) => columns.map((field) => item[field] ?? null));
  switch (options.format ?? 'table') {
    case 'json':
      return JSON.stringify(
        rows.map((row) => Object.fromEntries(columns.map((field, i) => [field, row[i]]))),
        null,
        options.noindent ? undefined : 2,
      );
    case 'yaml':
      return rows.length === 0
        ? '[]'
        : yamlOf(rows.map((row) => Object.fromEntries(columns.map((field, i) => [field, row[i]]))));
    case 'csv':
      return [columns, ...rows].map((row) => row.map(csvCell).join(',')).join('\n');
    case 'value':
      return rows.length === 0 ? undefined : rows.map((row) => row.map(cell).join(' ')).join('\n');
    default:
      return rows.length === 0 ? undefined : renderTable(columns.map(labelOf), rows);
  }
}

/** One resource: Field/Value pairs in the given order. */
export async function formatOne(
  record: Record<string, unknown>,
  options: OutputOptions,
  fields: string[] = Object.keys(record),
): Promise<string> {
  const columns = selectColumns(fields, options.column);
  const picked = Object.fromEntries(columns.map((field) => [field, record[field] ?? null]));
  switch (options.format ?? 'table') {
    case 'json':
      return JSON.stringify(picked, null, options.noindent ? undefined : 2);
    case 'yaml':
      return yamlOf(picked);
    case 'csv':
      return [columns.map(csvCell).join(','), columns.map((field) => csvCell(picked[field])).join(',')].join(
        '\n',
      );
    case 'value':
      return columns.map((field) => cell(picked[field])).join('\n');
    default:
      return renderTable(
        ['Field', 'Value'],
        columns.map((field) => [field, picked[field]]),
      );
  }
}
