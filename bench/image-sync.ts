/**
 * Image sync throughput: one image (2 GiB by default) from moto S3 into the agent's
 * images tree, by the real agent process (presigned URL served by the fake control
 * plane), against Debian's `aws s3 cp` from the same endpoint in the same run, as a
 * ratio; the agent's peak RSS (VmHWM) during the sync; and the bytes transferred again
 * after a connection cut at 50 % (through a counting proxy). Figures, not asserts.
 *
 *   npm run bench -- image-sync        (BENCH_IMAGE_MIB=2048)
 *
 * `aws` (apt-get install -y awscli) is needed only for the comparison; without it the
 * bench says so and prints the agent's figures alone. Like the agent, `aws s3 cp` makes
 * one GET here (multipart_threshold raised above the size): its default of parallel 8 MiB
 * ranged GETs is pathological against moto, which copies the whole object per range (a
 * 2 GiB copy stalled after 1.4 GB in 7 minutes). BENCH_AWS_DEFAULTS=1 keeps the defaults.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomFillSync, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { AgentProcess, testConfig, waitFor } from '../agent/testing/agent-process.ts';
import { FakeControlPlane } from '../agent/testing/fake-control-plane.ts';
import { startMoto } from '../local/moto.ts';
import { S3Proxy } from '../test/support/s3-images.ts';
import { printTable } from './support.ts';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_IMAGE_MIB ?? 2048) * MiB;
const PART = 64 * MiB;
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };

/** Debian's awscli when installed, else whatever `aws` is on the PATH. */
const AWS = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';

function awsCli(): string | undefined {
  const probe = spawnSync(AWS, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? (probe.stdout || probe.stderr).trim().split(' ')[0] : undefined;
}

function peakRssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return Number((line ?? '').replace(/\D+/g, '')) / 1024;
}

const moto = await startMoto();
const work = mkdtempSync(join(tmpdir(), 'metalplane-bench-images-'));
const s3 = new S3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
const bucket = `bench-images-${randomUUID().slice(0, 8)}`;
const key = 'bench.iso';
try {
  process.stdout.write(`uploading ${SIZE / MiB} MiB to moto (multipart)...\n`);
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  const parts: Array<{ ETag: string | undefined; PartNumber: number }> = [];
  for (let offset = 0, n = 1; offset < SIZE; offset += PART, n++) {
    const body = randomFillSync(Buffer.allocUnsafe(Math.min(PART, SIZE - offset)));
    hash.update(body);
    const { ETag } = await s3.send(
      new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n, Body: body }),
    );
    parts.push({ ETag, PartNumber: n });
  }
  await s3.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: parts },
    }),
  );
  const sha256 = hash.digest('hex');

  // aws s3 cp, same endpoint.
  const cli = awsCli();
  let awsSeconds: number | undefined;
  if (!cli) {
    process.stdout.write('aws CLI not found: install it (apt-get install -y awscli) for the comparison\n');
  } else {
    const dest = join(work, 'aws-copy.iso');
    const config = join(work, 'aws-config');
    writeFileSync(config, '[default]\ns3 =\n  multipart_threshold = 64GB\n');
    const started = performance.now();
    execFileSync(
      AWS,
      ['--endpoint-url', moto.endpoint, 's3', 'cp', '--only-show-errors', `s3://${bucket}/${key}`, dest],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: 'testing',
          AWS_SECRET_ACCESS_KEY: 'testing',
          AWS_DEFAULT_REGION: 'us-east-1',
          ...(process.env.BENCH_AWS_DEFAULTS ? {} : { AWS_CONFIG_FILE: config }),
        },
        stdio: 'inherit',
      },
    );
    awsSeconds = (performance.now() - started) / 1000;
    if (statSync(dest).size !== SIZE) throw new Error('aws s3 cp copied the wrong size');
    rmSync(dest);
  }

  // The agent, twice: straight, and through a proxy that cuts the connection at 50 %.
  const runAgent = async (endpoint: string, cutAt?: number, proxy?: S3Proxy) => {
    const signer = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
    const uuid = randomUUID();
    const cp = await new FakeControlPlane({
      images: async () => [
        {
          uuid,
          name: 'bench',
          files: [
            {
              role: 'iso',
              size: SIZE,
              sha256,
              url: await getSignedUrl(signer, new GetObjectCommand({ Bucket: bucket, Key: key }), {
                expiresIn: 3600,
              }),
              url_expires_at: new Date(Date.now() + 3_600_000).toISOString(),
            },
          ],
        },
      ],
    }).start();
    if (cutAt !== undefined) proxy?.cuts.push(cutAt);
    const agent = new AgentProcess(mkdtempSync(join(work, 'agent-')));
    agent.writeConfig(
      testConfig({
        url: cp.url,
        websocketUrl: cp.websocketUrl,
        extra: 'images:\n  dir: ./images',
      }).replace('log_level: debug', 'log_level: info'),
    );
    await agent.writeCredential(cp.credential);
    try {
      await agent.start();
      const done = await waitFor(
        () => agent.lines('image file ready (downloaded)')[0] ?? agent.lines('image file failed')[0],
        'the sync',
        30 * 60_000,
      );
      if (done.msg !== 'image file ready (downloaded)') throw new Error(`sync failed: ${String(done.error)}`);
      const started = agent.lines('image download starting')[0]!;
      const seconds = (Date.parse(String(done.time)) - Date.parse(String(started.time))) / 1000;
      const rss = peakRssMiB(agent.pid);
      return { seconds, rss, resumes: agent.lines('image download interrupted: resuming').length };
    } finally {
      await agent.kill('SIGTERM').catch(() => undefined);
      await agent.cleanup();
      await cp.close();
      signer.destroy();
    }
  };

  process.stdout.write('agent sync...\n');
  const straight = await runAgent(moto.endpoint);
  const proxy = await new S3Proxy(moto.endpoint).start();
  process.stdout.write('agent sync, cut at 50 %...\n');
  const cut = await runAgent(proxy.url, SIZE / 2, proxy);
  const gets = proxy.gets(key);
  await proxy.close();
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(gets[1]?.range ?? '')?.[1] ?? 0);

  const mibps = (seconds: number) => SIZE / MiB / seconds;
  printTable(`image sync, ${SIZE / MiB} MiB from moto S3 (same machine; figures are noisy)`, [
    {
      what: 'agent (metalplane images)',
      seconds: straight.seconds,
      'MiB/s': mibps(straight.seconds),
      'peak RSS MiB': straight.rss,
    },
    ...(awsSeconds !== undefined
      ? [{ what: `${cli} s3 cp`, seconds: awsSeconds, 'MiB/s': mibps(awsSeconds), 'peak RSS MiB': '-' }]
      : []),
  ]);
  if (awsSeconds !== undefined)
    process.stdout.write(
      `\nagent / aws s3 cp throughput ratio: ${(awsSeconds / straight.seconds).toFixed(2)}\n`,
    );
  printTable('interruption at 50 %', [
    {
      requests: gets.length,
      'first request bytes': gets[0]?.bytes ?? 0,
      'resumed from byte': resumedAt,
      'second request bytes': gets[1]?.bytes ?? 0,
      're-transferred bytes': (gets[0]?.bytes ?? 0) + (gets[1]?.bytes ?? 0) - SIZE,
      seconds: cut.seconds,
      'peak RSS MiB': cut.rss,
    },
  ]);
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
} finally {
  s3.destroy();
  rmSync(work, { recursive: true, force: true });
  await moto.stop();
}
