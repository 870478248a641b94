/**
 * `metalplane` over HTTPS: an API behind a TLS front with a self-signed certificate is
 * refused unless its CA is given (`--os-cacert`, `OS_CACERT`, clouds.yaml `cacert`) or
 * verification is turned off (`--insecure`, clouds.yaml `verify: false`).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { selfSignedCert } from '../support/tls.ts';

let api: TestApi;
let front: Server;
let dir: string;
let url: string;

/** The TLS front: each request passed to the API over plain HTTP, the answer passed back. */
async function startFront(): Promise<void> {
  front = createServer(
    { key: await readFile(join(dir, 'tls.key')), cert: await readFile(join(dir, 'tls.crt')) },
    (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', async () => {
        const headers = Object.fromEntries(
          Object.entries(request.headers).filter(([name]) => name !== 'host' && name !== 'connection'),
        ) as Record<string, string>;
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        const answer = await fetch(`${api.url}${request.url}`, {
          method: request.method ?? 'GET',
          headers,
          ...(body ? { body } : {}),
        });
        response.writeHead(answer.status, {
          'content-type': answer.headers.get('content-type') ?? 'application/json',
        });
        response.end(Buffer.from(await answer.arrayBuffer()));
      });
    },
  );
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const address = front.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  url = `https://127.0.0.1:${address.port}`;
}

const auth = () => ({
  OS_ENDPOINT: url,
  OS_USERNAME: api.admin.username,
  OS_PASSWORD: api.admin.password,
  HOME: dir,
});

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mp-cli-tls-'));
  selfSignedCert(dir, 'IP:127.0.0.1');
  api = await startApi({ auth: 'basic' });
  await startFront();
});

afterAll(async () => {
  front?.close();
  await api?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('metalplane over HTTPS', () => {
  it('refuses a certificate it cannot verify, naming the reason', async () => {
    const refused = await runCli(['driver', 'list', '-f', 'json'], auth());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`Unable to establish connection to ${url}/`);
    expect(refused.stderr).toContain('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('trusts the CA given with --os-cacert or OS_CACERT', async () => {
    const cacert = join(dir, 'tls.crt');
    const byOption = await runCli(['--os-cacert', cacert, 'driver', 'list', '-f', 'json'], auth());
    expect(byOption.code, byOption.stderr).toBe(0);
    expect(JSON.parse(byOption.stdout).map((driver: { name: string }) => driver.name)).toContain(
      'fake-hardware',
    );
    const byEnv = await runCli(['driver', 'list', '-f', 'json'], { ...auth(), OS_CACERT: cacert });
    expect(byEnv.code, byEnv.stderr).toBe(0);
  });

  it('reads cacert and verify from clouds.yaml', async () => {
    const clouds = join(dir, 'clouds.yaml');
    await writeFile(
      clouds,
      [
        'clouds:',
        '  with-ca:',
        `    endpoint: ${url}`,
        `    cacert: ${join(dir, 'tls.crt')}`,
        '    auth_type: http_basic',
        `    auth: {username: ${api.admin.username}, password: "${api.admin.password}"}`,
        '  unverified:',
        `    endpoint: ${url}`,
        '    verify: false',
        '    auth_type: http_basic',
        `    auth: {username: ${api.admin.username}, password: "${api.admin.password}"}`,
      ].join('\n'),
    );
    for (const cloud of ['with-ca', 'unverified']) {
      const run = await runCli(['node', 'list', '-f', 'json'], {
        HOME: dir,
        OS_CLIENT_CONFIG_FILE: clouds,
        OS_CLOUD: cloud,
      });
      expect(run.code, `${cloud}: ${run.stderr}`).toBe(0);
      expect(JSON.parse(run.stdout)).toStrictEqual([]);
    }
  });

  it('skips verification with --insecure, and refuses a CA file that is not one', async () => {
    const insecure = await runCli(['--insecure', 'driver', 'list', '-f', 'json'], auth());
    expect(insecure.code, insecure.stderr).toBe(0);
    const notPem = join(dir, 'not-a-cert.pem');
    await writeFile(notPem, 'hello');
    const bad = await runCli(['--os-cacert', notPem, 'driver', 'list'], auth());
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('no PEM certificate in it');
    const missing = await runCli(['--os-cacert', join(dir, 'nowhere.pem'), 'driver', 'list'], auth());
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('ENOENT');
  });
});
