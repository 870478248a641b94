/**
 * RFC 6902 JSON Patch with Ironic's rules: only `add`, `replace` and `remove`; paths
 * made of word characters; only some root fields may be patched; a patch applies
 * entirely or not at all, with Ironic's messages when it cannot.
 * Application itself is fast-json-patch's (RFC 6902 compliant).
 */
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { invalid } from './errors.ts';
import { pythonRepr } from './python-repr.ts';
import { validator } from './schema.ts';

export interface PatchOp {
  readonly op: 'add' | 'replace' | 'remove';
  readonly path: string;
  readonly value?: unknown;
}

export const PATCH_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    properties: {
      path: { type: 'string', pattern: '^(/[\\w-]+)+$' },
      op: { type: 'string', enum: ['add', 'replace', 'remove'] },
      value: {},
    },
    additionalProperties: false,
    required: ['op', 'path'],
  },
  maxItems: 100,
} as const;

export const validatePatch = validator<PatchOp[]>('patch', PATCH_SCHEMA);

/** The root field a patch path touches: '/driver_info/ipmi_address' → 'driver_info'. */
export function rootField(path: string): string {
  return path.split('/')[1] ?? '';
}

/** Refuses any op on a root field outside `allowed`, naming them as Ironic does. */
export function checkPatchAllowed(patch: readonly PatchOp[], allowed: readonly string[]): void {
  for (const op of patch) {
    if (!allowed.includes(rootField(op.path))) {
      throw invalid(
        `Cannot patch ${op.path}. Only the following can be updated: ${[...allowed].sort().join(', ')}`,
      );
    }
  }
}

/**
 * Applies the patch to a copy of `doc`. Root fields may be replaced or removed but not
 * added when the resource has no such field; any failing op fails the whole patch.
 */
export function applyPatch<T extends object>(doc: T, patch: readonly PatchOp[]): T {
  let current: unknown = structuredClone(doc);
  for (const op of patch) {
    if (op.op === 'add' && op.path.split('/').length === 2 && !(rootField(op.path) in (current as object))) {
      throw invalid(`Adding a new attribute (${op.path}) to the root of the resource is not allowed.`);
    }
    try {
      current = fastJsonPatch.applyOperation(current, op as Operation, true, true, false).newDocument;
    } catch (error) {
      throw invalid(`Couldn't apply patch '${pythonRepr(op)}'. Reason: ${reason(op, current, error)}`);
    }
  }
  return current as T;
}

/** python-jsonpatch's wording for the failure, which Ironic passes through. */
function reason(op: PatchOp, doc: unknown, error: unknown): string {
  const segments = op.path.split('/').slice(1);
  const last = segments.at(-1) ?? '';
  let parent: unknown = doc;
  for (const segment of segments.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object' || !(segment in parent)) {
      return `member ${pythonRepr(segment)} not found in ${pythonRepr(parent)}`;
    }
    parent = (parent as Record<string, unknown>)[segment];
  }
  if (op.op === 'remove') return `can't remove a non-existent object ${pythonRepr(last)}`;
  if (op.op === 'replace') return `can't replace a non-existent object ${pythonRepr(last)}`;
  return (error as Error).message.split('\n')[0] ?? 'invalid operation';
}
