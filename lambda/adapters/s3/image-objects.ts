/**
 * The images bucket: presigned URLs for uploads (one PUT, or the parts of a multipart
 * upload) and for the agents' downloads, multipart bookkeeping, and reading an object
 * back to verify it. The bucket's name comes from `METALPLANE_IMAGES_BUCKET`; where S3
 * is comes from the environment (`AWS_ENDPOINT_URL` for moto).
 *
 * Credentials never leave the Lambda: a presigned URL carries a signature for one
 * operation on one key, valid for minutes.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { imagesBucket } from '../../../infra/resources.ts';
import { clientS3, s3RequestPresigner } from '../aws-sdk.ts';

export interface StoredPart {
  readonly partNumber: number;
  readonly size: number;
  readonly etag: string;
}

export interface ObjectDigest {
  readonly size: number;
  readonly sha256: string;
  readonly etag: string;
}

export interface PresignedPut {
  readonly url: string;
  /** Headers the PUT must carry exactly (they are part of the signature). */
  readonly headers: Record<string, string>;
}

let sharedClient: Promise<S3Client> | undefined;

/**
 * One S3 client per container; checksums only where an operation requires one (presigned
 * URLs stay plain). Built, and the SDK loaded, at its first use (not at import: issue 18).
 */
export function s3Client(forcePathStyle = false): Promise<S3Client> {
  sharedClient ??= clientS3().then(
    ({ S3Client }) =>
      new S3Client({
        forcePathStyle,
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        maxAttempts: 3,
      }),
  );
  sharedClient.catch(() => {
    sharedClient = undefined;
  });
  return sharedClient;
}

export class ImageObjects {
  private readonly client: () => Promise<S3Client>;
  private readonly bucketName: () => string;

  /** `bucket`: its name, or the configuration's (read at first use); `forcePathStyle`: the S3 client's. */
  constructor(
    options: {
      client?: S3Client;
      bucket?: string | (() => string | undefined);
      forcePathStyle?: boolean | (() => boolean);
    } = {},
  ) {
    const pathStyle = options.forcePathStyle ?? false;
    this.client = async () =>
      options.client ?? s3Client(typeof pathStyle === 'function' ? pathStyle() : pathStyle);
    this.bucketName = () => {
      const name = typeof options.bucket === 'function' ? options.bucket() : options.bucket;
      if (!name)
        throw new Error(`${imagesBucket.envVar} is not set: the bucket name comes from the environment`);
      return name;
    };
  }

  /**
   * A presigned PUT of exactly these bytes: the SHA-256 is a signed header, so S3 itself
   * refuses a body with another digest (and the URL cannot overwrite the object with
   * different bytes later).
   */
  async presignPut(key: string, sha256Hex: string, size: number, expiresIn: number): Promise<PresignedPut> {
    const checksum = Buffer.from(sha256Hex, 'hex').toString('base64');
    const url = await (await s3RequestPresigner()).getSignedUrl(
      await this.client(),
      new (await clientS3()).PutObjectCommand({
        Bucket: this.bucketName(),
        Key: key,
        ChecksumSHA256: checksum,
        ContentLength: size,
      }),
      { expiresIn, unhoistableHeaders: new Set(['x-amz-checksum-sha256']) },
    );
    return { url, headers: { 'x-amz-checksum-sha256': checksum } };
  }

  async createMultipart(key: string): Promise<string> {
    const { UploadId } = await (await this.client()).send(
      new (await clientS3()).CreateMultipartUploadCommand({ Bucket: this.bucketName(), Key: key }),
    );
    if (!UploadId) throw new Error(`S3 answered no upload id for ${key}`);
    return UploadId;
  }

  async presignPart(key: string, uploadId: string, partNumber: number, expiresIn: number): Promise<string> {
    return (await s3RequestPresigner()).getSignedUrl(
      await this.client(),
      new (await clientS3()).UploadPartCommand({
        Bucket: this.bucketName(),
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
      }),
      { expiresIn },
    );
  }

  /** Every part uploaded so far, in order. */
  async listParts(key: string, uploadId: string): Promise<StoredPart[]> {
    const parts: StoredPart[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await (await this.client()).send(
        new (await clientS3()).ListPartsCommand({
          Bucket: this.bucketName(),
          Key: key,
          UploadId: uploadId,
          ...(marker ? { PartNumberMarker: marker } : {}),
        }),
      );
      for (const part of page.Parts ?? []) {
        parts.push({ partNumber: part.PartNumber ?? 0, size: part.Size ?? 0, etag: part.ETag ?? '' });
      }
      if (!page.IsTruncated || !page.NextPartNumberMarker) break;
      marker = page.NextPartNumberMarker;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeMultipart(key: string, uploadId: string, parts: readonly StoredPart[]): Promise<void> {
    await (await this.client()).send(
      new (await clientS3()).CompleteMultipartUploadCommand({
        Bucket: this.bucketName(),
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag })) },
      }),
    );
  }

  /** Aborts an upload; one that is already gone is fine. */
  async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await (await this.client()).send(
        new (await clientS3()).AbortMultipartUploadCommand({
          Bucket: this.bucketName(),
          Key: key,
          UploadId: uploadId,
        }),
      );
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  async head(key: string): Promise<{ size: number; etag: string } | undefined> {
    try {
      const head = await (await this.client()).send(
        new (await clientS3()).HeadObjectCommand({ Bucket: this.bucketName(), Key: key }),
      );
      return { size: head.ContentLength ?? 0, etag: head.ETag ?? '' };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /**
   * Reads the object once, streaming (memory stays flat whatever its size), and answers
   * its size and SHA-256; undefined when there is no such object. `ifMatch` pins the
   * ETag seen before (a concurrent overwrite fails the read instead of mixing).
   */
  async digest(key: string, ifMatch?: string): Promise<ObjectDigest | undefined> {
    let response: GetObjectCommandOutput;
    try {
      response = await (await this.client()).send(
        new (await clientS3()).GetObjectCommand({
          Bucket: this.bucketName(),
          Key: key,
          ...(ifMatch ? { IfMatch: ifMatch } : {}),
        }),
      );
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of response.Body as Readable) {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      size += bytes.length;
    }
    return { size, sha256: hash.digest('hex'), etag: response.ETag ?? '' };
  }

  /** A short-lived presigned GET, for an agent. */
  async presignGet(key: string, expiresIn: number): Promise<string> {
    return (await s3RequestPresigner()).getSignedUrl(
      await this.client(),
      new (await clientS3()).GetObjectCommand({ Bucket: this.bucketName(), Key: key }),
      {
        expiresIn,
      },
    );
  }

  /** Deletes the objects (missing ones are fine). */
  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const { Errors = [] } = await (await this.client()).send(
      new (await clientS3()).DeleteObjectsCommand({
        Bucket: this.bucketName(),
        Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    if (Errors.length > 0) {
      throw new Error(`S3 did not delete ${Errors.map((error) => `${error.Key}: ${error.Code}`).join(', ')}`);
    }
  }
}

function isMissing(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return (
    name === 'NoSuchKey' ||
    name === 'NotFound' ||
    name === 'NoSuchUpload' ||
    $metadata?.httpStatusCode === 404
  );
}
