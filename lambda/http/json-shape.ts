/**
 * The shape guard on request bodies (issue 12): a JSON body nested deeper than DynamoDB's
 * own limit of 32 levels, or holding more values than any API body needs, is refused with
 * 400 before any route runs, so that no route's code (validation, DynamoDB marshalling)
 * sees it. The check scans the text once, without parsing it: a body that is not JSON is
 * left to the route, which answers it with its own 400.
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
  let firstOfContainer = false;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (firstOfContainer) {
      firstOfContainer = false;
      if (c !== 0x5d /* ] */ && c !== 0x7d /* } */) values++;
    }
    if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      depth++;
      if (depth > MAX_BODY_DEPTH) {
        return `The request body is nested deeper than ${MAX_BODY_DEPTH} levels.`;
      }
      firstOfContainer = true;
    } else if (c === 0x5d || c === 0x7d) {
      if (depth > 0) depth--;
    } else if (c === 0x2c /* , */ && depth > 0) {
      values++;
    }
    if (values > MAX_BODY_VALUES) {
      return `The request body holds more than ${MAX_BODY_VALUES} values (array elements and object members).`;
    }
  }
  return undefined;
}
