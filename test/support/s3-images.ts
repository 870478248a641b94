/**
 * Images in the run's moto S3 for the agent's image-sync tests: a private bucket,
 * objects, presigned GET URLs (`@aws-sdk/s3-request-presigner`), and an HTTP proxy in
 * front of moto that counts requests and bytes, can cut a response after N bytes, and
 * refuses expired presigned URLs with 403 as S3 does (moto serves them regardless).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { ImageAssignment, ImageFileRole } from '../../protocol/messages.ts';

const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export interface ProxyRequest {
  readonly key: string;
  readonly range: string | undefined;
  status: number;
  bytes: number;
  cut: boolean;
}

/** A counting, cutting, expiry-enforcing HTTP proxy in front of moto's S3. */
export class S3Proxy {
  readonly target: URL;
  readonly requests: ProxyRequest[] = [];
  /** Cut (destroy) the next responses after this many body bytes: one entry per response. */
  readonly cuts: number[] = [];
  inFlight = 0;
  maxInFlight = 0;
  url = '';
  #server: Server;

  constructor(target: string) {
    this.target = new URL(target);
    this.#server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      const record: ProxyRequest = {
        key: decodeURIComponent(u.pathname),
        range: req.headers.range,
        status: 0,
        bytes: 0,
        cut: false,
      };
      this.requests.push(record);
      const date = u.searchParams.get('X-Amz-Date');
      const expires = Number(u.searchParams.get('X-Amz-Expires'));
      if (date && expires) {
        const signedAt = Date.parse(
          date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
        );
        if (Date.now() > signedAt + expires * 1000) {
          record.status = 403;
          res
            .writeHead(403, { 'Content-Type': 'application/xml' })
            .end(
              '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>',
            );
          return;
        }
      }
      const cutAfter = req.method === 'GET' ? this.cuts.shift() : undefined;
      this.inFlight++;
      this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.inFlight--;
      };
      res.on('close', finish);
      const upstream = request(
        {
          host: this.target.hostname,
          port: this.target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: this.target.host },
        },
        (up) => {
          record.status = up.statusCode ?? 0;
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.on('data', (chunk: Buffer) => {
            if (record.cut) return;
            if (cutAfter !== undefined && record.bytes + chunk.length >= cutAfter) {
              const part = chunk.subarray(0, Math.max(0, cutAfter - record.bytes));
              record.bytes += part.length;
              record.cut = true;
              res.write(part, () => res.destroy());
              up.destroy();
              return;
            }
            record.bytes += chunk.length;
            if (!res.write(chunk)) {
              up.pause();
              res.once('drain', () => up.resume());
            }
          });
          up.on('end', () => res.end());
          up.on('error', () => res.destroy());
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** GETs of one object key (`/<bucket>/<key>`), and the body bytes they carried. */
  gets(key?: string): ProxyRequest[] {
    return this.requests.filter((r) => key === undefined || r.key.endsWith(`/${key}`));
  }

  bytes(key?: string): number {
    return this.gets(key).reduce((sum, r) => sum + r.bytes, 0);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export interface StoredFile {
  readonly key: string;
  readonly role: ImageFileRole;
  readonly data: Buffer;
  readonly sha256: string;
}

/** A bucket in moto with a presigning client that signs URLs for the proxy. */
export class ImageBucket {
  readonly bucket = `t-${randomBytes(4).toString('hex')}-images`;
  readonly direct: S3Client;
  readonly signer: S3Client;
  readonly proxy: S3Proxy;

  private constructor(endpoint: string, proxy: S3Proxy) {
    this.proxy = proxy;
    const base = { region: 'us-east-1', forcePathStyle: true, credentials };
    this.direct = new S3Client({ ...base, endpoint });
    this.signer = new S3Client({ ...base, endpoint: proxy.url });
  }

  static async create(endpoint: string): Promise<ImageBucket> {
    const proxy = await new S3Proxy(endpoint).start();
    const b = new ImageBucket(endpoint, proxy);
    await b.direct.send(new CreateBucketCommand({ Bucket: b.bucket }));
    return b;
  }

  async put(key: string, data: Buffer, role: ImageFileRole = 'iso'): Promise<StoredFile> {
    await this.direct.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data }));
    return { key, role, data, sha256: createHash('sha256').update(data).digest('hex') };
  }

  /** A presigned GET URL (through the proxy) valid for `expiresIn` seconds. */
  presign(key: string, expiresIn = 600): Promise<string> {
    return getSignedUrl(this.signer, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn });
  }

  /** An assignment for `files`, with fresh URLs; `override` replaces fields of each file. */
  async assignment(
    files: StoredFile[],
    options: {
      uuid?: string;
      name?: string;
      expiresIn?: number;
      expiresAt?: string;
      sha256?: string;
      size?: number;
    } = {},
  ): Promise<ImageAssignment> {
    const expiresIn = options.expiresIn ?? 600;
    return {
      uuid: options.uuid ?? randomUUID(),
      name: options.name ?? 'test-image',
      files: await Promise.all(
        files.map(async (f) => ({
          role: f.role,
          size: options.size ?? f.data.length,
          sha256: options.sha256 ?? f.sha256,
          url: await this.presign(f.key, expiresIn),
          url_expires_at: options.expiresAt ?? new Date(Date.now() + expiresIn * 1000).toISOString(),
        })),
      ),
    };
  }

  async close(): Promise<void> {
    this.direct.destroy();
    this.signer.destroy();
    await this.proxy.close();
  }
}
