/**
 * Events and webhooks (issue 16, docs/events.md), on moto: a node's real state change
 * through the API is published to EventBridge, the bus's rule puts it on the webhook
 * events queue, the webhooks worker (polled as the local stack polls it) fans it out and
 * POSTs it, signed, to a real node:http receiver on 127.0.0.1. A receiver that answers
 * 500 gets retried with backoff, then the delivery is dead-lettered and shows `failed`.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventBusName,
  queueName,
  webhookDeadLetterQueue,
  webhookEventsQueue,
} from '../../infra/resources.ts';
import { ImageRepository } from '../../lambda/adapters/dynamo/image-repository.ts';
import { EventPublisher } from '../../lambda/adapters/events.ts';
import { EVENT_TYPES, makeEvent, verifySignature } from '../../lambda/domain/events/events.ts';
import { webhookWorkerFor } from '../../lambda/webhooks/runtime.ts';
import { pollWebhookQueues, type QueuePoller } from '../../local/stack.ts';
import { startApi, type TestApi } from '../support/api.ts';
import { waitFor } from '../support/channel.ts';

interface Received {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

let api: TestApi;
let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];
let poller: QueuePoller;
/** The body of every message the poller handed to the worker, from both queues. */
const handled: string[] = [];
const sqs = new SQSClient({});

beforeAll(async () => {
  api = await startApi({ auth: 'basic' });
  receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        path: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      });
      response.statusCode = request.url?.startsWith('/fail') ? 500 : 204;
      response.end(request.url?.startsWith('/fail') ? 'receiver is down' : undefined);
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  // The webhooks Lambda, fed by its two queues as the local stack feeds it; quick retries.
  const worker = webhookWorkerFor({ sealer: api.deps.sealer, sqs, maxAttempts: 3, backoffBaseSeconds: 1 });
  poller = pollWebhookQueues(
    api.prefix,
    (event) => {
      handled.push(...event.Records.map((record) => record.body));
      return worker.handle(event);
    },
    { sqs },
  );
}, 60_000);

afterAll(async () => {
  await poller?.stop();
  await new Promise((resolve) => receiver?.close(resolve));
  await api?.close();
});

const admin = (method: string, path: string, body?: unknown) =>
  api.call(method, path, { as: api.admin, ...(body !== undefined ? { body } : {}) });

async function newNode(name: string): Promise<string> {
  const created = await admin('POST', '/v1/nodes', { name, driver: 'fake-hardware' });
  expect(created.status).toBe(201);
  return created.body.uuid as string;
}

function eventsFor(path: string, node: string): Received[] {
  return received.filter((r) => r.path === path && JSON.parse(r.body).detail?.node_uuid === node);
}

describe('webhooks', () => {
  it('delivers a real provision state change, signed with the secret shown once', async () => {
    const created = await admin('POST', '/v1/webhooks', {
      url: `${receiverUrl}/ok`,
      event_types: ['node.provision_state.changed'],
      description: 'test receiver',
    });
    expect(created.status).toBe(201);
    const secret = created.body.secret as string;
    expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    const id = created.body.id as string;
    expect(created.headers.get('location')).toContain(`/v1/webhooks/${id}`);
    // Never again in clear: masked in GET and in the listing.
    expect((await admin('GET', `/v1/webhooks/${id}`)).body.secret).toBe('******');
    const listed = await admin('GET', '/v1/webhooks');
    expect(listed.body.webhooks.map((w: { id: string }) => w.id)).toContain(id);
    expect(JSON.stringify(listed.body)).not.toContain(secret);

    const node = await newNode('webhook-node-1');
    const manage = await admin('PUT', `/v1/nodes/${node}/states/provision`, { target: 'manage' });
    expect(manage.status).toBe(202);

    const [delivery] = await waitFor(
      () => {
        const got = eventsFor('/ok', node);
        return got.length > 0 ? got : undefined;
      },
      'the signed event at the receiver',
      20_000,
    );
    const { headers, body } = delivery as Received;
    const timestamp = headers['x-metalplane-timestamp'] as string;
    const signature = headers['x-metalplane-signature'] as string;
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature(secret, timestamp, body, signature)).toBe(true);
    expect(verifySignature('whsec_wrong-secret-0000', timestamp, body, signature)).toBe(false);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(60);
    expect(headers['content-type']).toBe('application/json');
    const event = JSON.parse(body);
    expect(headers['x-metalplane-event-id']).toBe(event.id);
    expect(event).toMatchObject({
      version: '1',
      type: 'node.provision_state.changed',
      site: api.site,
      detail: { node_uuid: node, node_name: 'webhook-node-1', previous: 'enroll', current: 'verifying' },
    });
    expect(Object.keys(event).sort()).toEqual(['detail', 'id', 'site', 'time', 'type', 'version']);
    expect(new Date(event.time).toISOString()).toBe(event.time);

    const deliveries = await waitFor(
      async () => {
        const answer = await admin('GET', `/v1/webhooks/${id}/deliveries`);
        const mine = answer.body.deliveries.filter((d: { event_id: string }) => d.event_id === event.id);
        return mine[0]?.status === 'delivered' ? mine : undefined;
      },
      'the delivery recorded as delivered',
      10_000,
    );
    expect(deliveries[0]).toMatchObject({
      webhook_id: id,
      event_type: 'node.provision_state.changed',
      status: 'delivered',
      attempts: 1,
      last_status_code: 204,
      last_error: null,
    });
    // Only the subscribed type: no power state events at this receiver.
    expect(
      received.filter((r) => r.path === '/ok' && JSON.parse(r.body).type !== 'node.provision_state.changed'),
    ).toEqual([]);
    expect((await admin('DELETE', `/v1/webhooks/${id}`)).status).toBe(204);
    expect((await admin('GET', `/v1/webhooks/${id}`)).status).toBe(404);
  }, 40_000);

  it('retries a failing receiver with backoff, then dead-letters the delivery and shows it failed', async () => {
    const created = await admin('POST', '/v1/webhooks', {
      url: `${receiverUrl}/fail`,
      event_types: ['node.provision_state.changed'],
      secret: 'an-operator-chosen-secret',
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toBe('an-operator-chosen-secret');
    const id = created.body.id as string;
    const node = await newNode('webhook-node-2');
    expect((await admin('PUT', `/v1/nodes/${node}/states/provision`, { target: 'manage' })).status).toBe(202);

    const failed = await waitFor(
      async () => {
        const answer = await admin('GET', `/v1/webhooks/${id}/deliveries`);
        const done = answer.body.deliveries.find((d: { status: string }) => d.status === 'failed');
        return done;
      },
      'the delivery to fail for good',
      30_000,
    );
    expect(failed).toMatchObject({ attempts: 3, last_status_code: 500, status: 'failed' });
    expect(failed.last_error).toContain('HTTP 500');
    const attempts = eventsFor('/fail', node).filter((r) => JSON.parse(r.body).id === failed.event_id);
    expect(attempts).toHaveLength(3);
    // Exponential backoff: 1 s, then 2 s (SQS delays are whole seconds; allow some slack).
    const gaps = [attempts[1]!.at - attempts[0]!.at, attempts[2]!.at - attempts[1]!.at];
    expect(gaps[0]).toBeGreaterThanOrEqual(900);
    expect(gaps[1]).toBeGreaterThanOrEqual(1800);
    // Each attempt signed with the operator's secret.
    for (const attempt of attempts) {
      const ts = attempt.headers['x-metalplane-timestamp'] as string;
      expect(
        verifySignature(
          'an-operator-chosen-secret',
          ts,
          attempt.body,
          attempt.headers['x-metalplane-signature'] as string,
        ),
      ).toBe(true);
    }
    // Dead-lettered: the message is on the dead-letter queue.
    const { QueueUrl } = await sqs.send(
      new GetQueueUrlCommand({ QueueName: queueName(api.prefix, webhookDeadLetterQueue) }),
    );
    const dead = await waitFor(
      async () => {
        const answer = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }));
        const bodies = (answer.Messages ?? []).map((m) => JSON.parse(m.Body ?? '{}'));
        return bodies.find((b) => b.webhook_id === id);
      },
      'the dead-lettered delivery',
      5000,
    );
    expect(dead).toMatchObject({ kind: 'webhook.delivery', attempts: 3, event: { id: failed.event_id } });
    expect(JSON.stringify(dead)).not.toContain('an-operator-chosen-secret');
    await admin('DELETE', `/v1/webhooks/${id}`);
  }, 60_000);

  it("delivers image.ready once, when a site's sync first reports the image ready", async () => {
    const created = await admin('POST', '/v1/webhooks', {
      url: `${receiverUrl}/images`,
      event_types: ['image.ready'],
    });
    expect(created.status).toBe(201);
    const images = new ImageRepository(api.deps.store);
    const image = '11111111-2222-4333-8444-555555555555';
    const sync = (state: 'syncing' | 'ready', observed: string) =>
      images.putSync(
        {
          image,
          site: api.site,
          state,
          bytes_done: state === 'ready' ? 4 : 1,
          bytes_total: 4,
          error: null,
          observed_at: observed,
          reported_by: 'agent-x',
          updated_at: observed,
        },
        '2026-01-01T00:00:00+00:00',
      );
    await sync('syncing', '2026-12-04T10:00:00.000Z');
    await sync('ready', '2026-12-04T10:00:01.000Z');
    await sync('ready', '2026-12-04T10:00:02.000Z');
    const got = await waitFor(
      () => {
        const mine = received.filter((r) => r.path === '/images');
        return mine.length > 0 ? mine : undefined;
      },
      'image.ready at the receiver',
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(received.filter((r) => r.path === '/images')).toHaveLength(1);
    expect(JSON.parse((got[0] as Received).body)).toMatchObject({
      version: '1',
      type: 'image.ready',
      site: api.site,
      detail: { image_uuid: image, reported_by: 'agent-x' },
    });
    await admin('DELETE', `/v1/webhooks/${created.body.id}`);
  }, 30_000);

  it('is for admins only', async () => {
    const body = { url: 'https://hooks.example.com/metalplane' };
    for (const as of [api.reader, api.member1]) {
      expect((await api.call('POST', '/v1/webhooks', { as, body })).status).toBe(403);
      expect((await api.call('GET', '/v1/webhooks', { as })).status).toBe(403);
    }
    expect((await api.call('GET', '/v1/webhooks', { as: null })).status).toBe(401);
  });

  it('refuses bad input with 400 and stores nothing', async () => {
    const before = (await admin('GET', '/v1/webhooks')).body.webhooks.length;
    const bad = [
      { url: 'http://hooks.example.com/metalplane' },
      { url: 'ftp://hooks.example.com/metalplane' },
      { url: 'not a url' },
      { url: 'https://user:password@hooks.example.com/' },
      { url: 'https://hooks.example.com/', event_types: ['node.exploded'] },
      { url: 'https://hooks.example.com/', secret: 'short' },
      { url: 'https://hooks.example.com/', unknown: true },
      { event_types: ['command.finished'] },
    ];
    for (const body of bad) {
      const answer = await admin('POST', '/v1/webhooks', body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
    }
    expect((await admin('GET', '/v1/webhooks')).body.webhooks.length).toBe(before);
    expect((await admin('GET', '/v1/webhooks/not-a-webhook')).status).toBe(404);
    expect((await admin('GET', '/v1/webhooks/00000000-0000-4000-8000-000000000000/deliveries')).status).toBe(
      404,
    );
  });
});

describe('the local event source (pollWebhookQueues)', () => {
  it('deletes every event the worker handled: the events queue drains, nothing left in flight', async () => {
    const node = await newNode('webhook-drain');
    expect((await admin('PUT', `/v1/nodes/${node}/states/provision`, { target: 'manage' })).status).toBe(202);
    await waitFor(
      () => handled.some((body) => JSON.parse(body).detail?.detail?.node_uuid === node),
      'the worker to handle the node’s event',
      20_000,
    );
    const url = (
      await sqs.send(new GetQueueUrlCommand({ QueueName: queueName(api.prefix, webhookEventsQueue) }))
    ).QueueUrl;
    // A message handled but not deleted stays in flight for the queue's 60 s visibility
    // timeout, longer than this wait.
    await waitFor(
      async () => {
        const { Attributes } = await sqs.send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
          }),
        );
        return (
          Attributes?.ApproximateNumberOfMessages === '0' &&
          Attributes.ApproximateNumberOfMessagesNotVisible === '0'
        );
      },
      'the events queue to drain',
      20_000,
    );
  });
});

describe('EventBridge publication', () => {
  it('puts events on the bus, which moto accepts; a missing bus is logged, not thrown', async () => {
    const publisher = new EventPublisher({ busName: () => eventBusName(api.prefix) });
    const context = { newId: () => crypto.randomUUID(), now: () => new Date() };
    const events = EVENT_TYPES.map((type) => makeEvent(context, type, api.site, { probe: true }));
    expect(await publisher.publish(events)).toBe(events.length);
    expect(publisher.failed).toBe(0);
    const warnings: unknown[] = [];
    const lost = new EventPublisher({
      busName: () => `${api.prefix}-NoSuchBus`,
      logger: { warn: (...args: unknown[]) => warnings.push(args) },
    });
    expect(await lost.publish(events.slice(0, 1))).toBe(0);
    expect(lost.failed).toBe(1);
    expect(warnings).toHaveLength(1);
  });
});
