/**
 * The proof (issue 16, part 3): on the whole local stack (`startLocalStack`: its
 * own moto server, the API and WebSocket gateways, the conductor tick, the webhooks
 * worker polling its queues, and a real fake-hardware agent for site `local`), a webhook
 * subscribed through the API receives, at a real node:http receiver on 127.0.0.1, signed
 * events of a real power change run by the agent: the node's power state change and the
 * command's end; and the agent's disconnection when it stops.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../lambda/domain/events/events.ts';
import { freePort } from '../../local/moto.ts';
import { type LocalStack, startLocalStack } from '../../local/stack.ts';
import { waitFor } from '../support/channel.ts';

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

let stack: LocalStack;
let stateDir: string;
let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.statusCode = 200;
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  stateDir = mkdtempSync(join(tmpdir(), 'metalplane-webhooks-'));
  stack = await startLocalStack({
    apiPort: await freePort(),
    webSocketPort: await freePort(),
    motoPort: await freePort(),
    agentStatusPort: await freePort(),
    stateDir,
    noauth: true,
    log: () => undefined,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', 'X-OpenStack-Ironic-API-Version': '1.82' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

describe('webhooks on the local stack', () => {
  it('receive signed events of a real power change run by the agent', async () => {
    const created = await call('POST', '/v1/webhooks', {
      url: receiverUrl,
      event_types: ['node.power_state.changed', 'command.finished'],
    });
    expect(created.status).toBe(201);
    const secret = created.body.secret as string;

    const node = await call('POST', '/v1/nodes', { name: 'webhook-local-node', driver: 'fake-hardware' });
    expect(node.status).toBe(201);
    const uuid = node.body.uuid as string;
    expect((await call('PUT', `/v1/nodes/${uuid}/states/power`, { target: 'power on' })).status).toBe(202);

    const events = await waitFor(
      () => {
        const mine = received
          .map((r) => ({ ...r, event: JSON.parse(r.body) }))
          .filter((r) => r.event.detail?.node_uuid === uuid);
        const power = mine.find(
          (r) => r.event.type === 'node.power_state.changed' && r.event.detail.current === 'power on',
        );
        const finished = mine.find(
          (r) => r.event.type === 'command.finished' && r.event.detail.action === 'power.set',
        );
        return power && finished ? { power, finished } : undefined;
      },
      'the power change and the command end at the receiver',
      60_000,
    );
    for (const { headers, body } of [events.power, events.finished]) {
      const timestamp = headers['x-metalplane-timestamp'] as string;
      expect(verifySignature(secret, timestamp, body, headers['x-metalplane-signature'] as string)).toBe(
        true,
      );
    }
    expect(events.power.event).toMatchObject({
      version: '1',
      site: 'local',
      detail: { node_uuid: uuid, node_name: 'webhook-local-node', current: 'power on' },
    });
    expect(events.finished.event).toMatchObject({
      version: '1',
      site: 'local',
      detail: { node_uuid: uuid, action: 'power.set', status: 'succeeded' },
    });
  }, 90_000);

  it('receive agent.disconnected when the agent goes away', async () => {
    const created = await call('POST', '/v1/webhooks', {
      url: receiverUrl,
      event_types: ['agent.connected', 'agent.disconnected'],
    });
    expect(created.status).toBe(201);
    await stack.agent?.stop();
    const gone = await waitFor(
      () =>
        received
          .map((r) => ({ ...r, event: JSON.parse(r.body) }))
          .find((r) => r.event.type === 'agent.disconnected'),
      'agent.disconnected at the receiver',
      30_000,
    );
    expect(gone.event).toMatchObject({
      version: '1',
      site: 'local',
      detail: { hostname: expect.any(String) },
    });
    const timestamp = gone.headers['x-metalplane-timestamp'] as string;
    const signature = gone.headers['x-metalplane-signature'] as string;
    expect(verifySignature(created.body.secret, timestamp, gone.body, signature)).toBe(true);
  }, 60_000);
});
