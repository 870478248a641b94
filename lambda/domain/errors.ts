/**
 * Errors of the domain, by kind. The HTTP layer maps each kind to a status
 * (`lambda/http/middlewares.ts`); the domain knows nothing of HTTP.
 */
export type ErrorKind = 'invalid' | 'not-found' | 'conflict' | 'forbidden' | 'not-acceptable' | 'too-large';

export class DomainError extends Error {
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, message: string) {
    super(message);
    this.name = new.target.name;
    this.kind = kind;
  }
}

/**
 * A conditional write lost to a concurrent one (the item's version moved between the read
 * and the write) with no lock in the way: a 409 like any conflict, but one the request
 * may be run again for, on the item as it is now (`actOnCurrentNode`).
 */
export class ConcurrentChange extends DomainError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export const invalid = (message: string) => new DomainError('invalid', message);
export const notFound = (message: string) => new DomainError('not-found', message);
export const conflict = (message: string) => new DomainError('conflict', message);
export const forbidden = (message: string) => new DomainError('forbidden', message);
export const notAcceptable = (message: string) => new DomainError('not-acceptable', message);
