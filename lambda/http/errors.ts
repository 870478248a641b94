/**
 * API errors and their wire form.
 *
 * Ironic answers errors as `{"error_message": "<JSON string>"}`; the string decodes to
 * `{"faultcode", "faultstring", "debuginfo"}` for its own errors, and to webob's
 * `{"code", "title", "description"}` for version negotiation failures (406). Handlers
 * throw these classes; `errorResponses()` turns them into responses.
 */
import type { DomainError, ErrorKind } from '../domain/errors.ts';
import { pythonJsonDumps } from './python-json.ts';

export type FaultCode = 'Client' | 'Server';

export class ApiError extends Error {
  readonly status: number;
  readonly faultcode: FaultCode;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = new.target.name;
    this.status = status;
    this.faultcode = status >= 500 ? 'Server' : 'Client';
    this.headers = headers;
  }

  /** The decoded `error_message` object. */
  fault(): Record<string, unknown> {
    return { faultcode: this.faultcode, faultstring: this.message, debuginfo: null };
  }
}

export class BadRequest extends ApiError {
  constructor(message: string) {
    super(400, message);
  }
}

export class Unauthorized extends ApiError {
  constructor(
    message = 'Authentication required',
    challenge = 'Basic realm="metalplane", Bearer',
    headers: Record<string, string> = {},
  ) {
    super(401, message, { 'WWW-Authenticate': challenge, ...headers });
  }
}

export class Forbidden extends ApiError {
  constructor(message = 'Access was denied to this resource.') {
    super(403, message);
  }
}

export class NotFound extends ApiError {
  constructor(message = 'The resource could not be found.') {
    super(404, message);
  }
}

export class MethodNotAllowed extends ApiError {
  constructor(allowed: readonly string[]) {
    super(
      405,
      'The server could not comply with the request since it is either malformed or otherwise incorrect.',
      { Allow: allowed.join(', ') },
    );
  }
}

export class Conflict extends ApiError {
  constructor(message: string) {
    super(409, message);
  }
}

export class PayloadTooLarge extends ApiError {
  constructor(limitBytes: number) {
    super(413, `Request body is larger than the limit of ${limitBytes} bytes.`);
  }
}

/**
 * A credential over its rate limit. Ironic has no 429 of its own (its deployments put a
 * proxy's in front); this one keeps Ironic's error body, and says when to retry.
 */
export class TooManyRequests extends ApiError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, message, { 'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))) });
  }
}

/** webob's HTTPNotAcceptable, which Ironic raises for microversion problems. */
export class NotAcceptable extends ApiError {
  constructor(description: string, headers: Record<string, string> = {}) {
    super(406, description, headers);
  }

  override fault(): Record<string, unknown> {
    return { code: 406, title: 'Not Acceptable', description: this.message };
  }
}

/** The error for anything unexpected: no internal detail reaches the client. */
export class InternalError extends ApiError {
  constructor() {
    super(500, 'Internal Server Error');
  }
}

export function errorBody(error: ApiError): string {
  return JSON.stringify({ error_message: pythonJsonDumps(error.fault()) });
}

const STATUS_OF_KIND: Readonly<Record<ErrorKind, number>> = {
  invalid: 400,
  forbidden: 403,
  'not-found': 404,
  'not-acceptable': 406,
  conflict: 409,
  'too-large': 413,
};

/** A domain error as an API error (Ironic's faultcode/faultstring body). */
export function fromDomainError(error: DomainError): ApiError {
  return new ApiError(STATUS_OF_KIND[error.kind], error.message);
}
