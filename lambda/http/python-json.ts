/**
 * JSON as Python's `json.dumps` writes it (`", "` and `": "` separators, non-ASCII
 * escaped as \uXXXX). Ironic's `error_message` is such a string inside the JSON body,
 * and clients that compare it byte for byte (or log it) see exactly what Ironic sends.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return escapeNonAscii(JSON.stringify(value));
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const members = Object.entries(value as Record<string, unknown>)
      .filter(([, member]) => member !== undefined)
      .map(([key, member]) => `${pythonJsonDumps(key)}: ${pythonJsonDumps(member)}`);
    return `{${members.join(', ')}}`;
  }
  throw new TypeError(`cannot serialize ${typeof value}`);
}

function escapeNonAscii(json: string): string {
  return json.replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
