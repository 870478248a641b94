/**
 * The image download's errors (agent/images/download.ts re-exports them): in a module of
 * their own so that the HTTP modules under it can throw them without an import cycle.
 */
export class DownloadError extends Error {
  override readonly name: string = 'DownloadError';
}
/** The presigned URL was refused (expired or no longer valid): ask for a new one. */
export class UrlExpiredError extends DownloadError {
  override readonly name = 'UrlExpiredError';
}
/** Size or SHA-256 differ from what the control plane registered: not worth retrying soon. */
export class ChecksumError extends DownloadError {
  override readonly name = 'ChecksumError';
}
/** No space left on the images' file system. */
export class DiskFullError extends DownloadError {
  override readonly name = 'DiskFullError';
}
/** A response status that a retry may or may not fix (404, 5xx...). */
export class HttpStatusError extends DownloadError {
  override readonly name = 'HttpStatusError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
