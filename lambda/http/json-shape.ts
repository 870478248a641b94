/**
 * The shape guard on request bodies (issue 12): a JSON body nested deeper than DynamoDB's
 * own limit of 32 levels, holding more values than any API body needs, or naming the same
 * member twice in one object, is refused with 400 before any route runs, so that no
 * route's code (validation, DynamoDB marshalling) sees it. The check scans the text once,
 * without parsing it: a body that is not JSON is left to the route, which answers it with
 * its own 400.
 *
 * `encodingProblem` and `textProblem` guard the text of a body a route parses
 * (`jsonBody`): invalid UTF-8, NUL characters and unpaired UTF-16 surrogates, which no
 * field needs and no store keeps faithfully (Ironic fails on them with a 500), are 400.
 * (Not applied to agents' messages, whose reports may quote a tool's raw output.)
 */

/** DynamoDB's limit on the nesting of a document attribute. */
export const MAX_BODY_DEPTH = 32;
/** Array elements plus object members, at every level together. */
export const MAX_BODY_VALUES = 10_000;

/** Why the body's shape is refused, or undefined when it is within the limits. */
export function bodyShapeProblem(body: string): string | undefined {
  let depth = 0;
  let values = 0;
  let inString = false;
  let stringStart = 0;
  let firstOfContainer = false;
  /** Per open container: the member names seen so far (objects), or undefined (arrays). */
  const keys: Array<Set<string> | undefined> = [];
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) {
        inString = false;
        const members = keys.at(-1);
        if (members && nextSignificant(body, i + 1) === 0x3a /* : */) {
          const name = memberName(body.slice(stringStart, i + 1));
          if (members.has(name)) {
            return `The request body names the member ${JSON.stringify(name)} twice in one object.`;
          }
          members.add(name);
        }
      }
      continue;
    }
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (firstOfContainer) {
      firstOfContainer = false;
      if (c !== 0x5d /* ] */ && c !== 0x7d /* } */) values++;
    }
    if (c === 0x22) {
      inString = true;
      stringStart = i;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth++;
      if (depth > MAX_BODY_DEPTH) {
        return `The request body is nested deeper than ${MAX_BODY_DEPTH} levels.`;
      }
      keys.push(c === 0x7b ? new Set() : undefined);
      firstOfContainer = true;
    } else if (c === 0x5d || c === 0x7d) {
      if (depth > 0) depth--;
      keys.pop();
    } else if (c === 0x2c /* , */ && depth > 0) {
      values++;
    }
    if (values > MAX_BODY_VALUES) {
      return `The request body holds more than ${MAX_BODY_VALUES} values (array elements and object members).`;
    }
  }
  return undefined;
}

function nextSignificant(text: string, from: number): number | undefined {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c;
  }
  return undefined;
}

/** A member name's value (`"a"` and `"\u0061"` are the same name); its raw text if malformed. */
function memberName(token: string): string {
  try {
    return JSON.parse(token) as string;
  } catch {
    return token;
  }
}

/**
 * Why a body's text is refused, or undefined: a literal U+FFFD is what invalid UTF-8
 * decodes to on its way in (the body was not UTF-8; a client meaning the character itself
 * may escape it, `\ufffd`).
 */
export function encodingProblem(body: string): string | undefined {
  return body.includes('\uFFFD')
    ? 'The request body is not valid UTF-8 (or holds a raw U+FFFD, the replacement character).'
    : undefined;
}

/**
 * Why a string (a member name or a value) of a parsed body is refused, or undefined: a NUL
 * character, or an unpaired surrogate (from a lone `\ud800` escape), which UTF-8 cannot encode.
 */
export function textProblem(text: string): string | undefined {
  if (text.includes('\u0000'))
    return 'The request body holds a NUL character (U+0000), which no field accepts.';
  if (!text.isWellFormed()) {
    return 'The request body holds an unpaired UTF-16 surrogate (a lone \\ud800-\\udfff escape), which is not text.';
  }
  return undefined;
}

/**
 * The encoding or text problem of a body that is JSON, or undefined (also when it is not
 * JSON at all: that is the route's to answer, as Ironic's provision route reads malformed
 * JSON as no arguments).
 */
export function jsonTextProblem(body: string): string | undefined {
  let problem = encodingProblem(body);
  if (problem) return problem;
  try {
    JSON.parse(body, (key, value: unknown) => {
      problem ??= textProblem(key) ?? (typeof value === 'string' ? textProblem(value) : undefined);
      return value;
    });
  } catch {
    return undefined;
  }
  return problem;
}
