/**
 * Events and webhooks, the pure parts (docs/events.md): the event schema and what a node
 * write emits, the signature, the backoff, the validation of a subscription; and the
 * `MetalplaneEvents` construct (infra/events.ts) on the synthesized stack.
 */
import { Match, Template } from 'aws-cdk-lib/assertions';
import { afterAll, describe, expect, it } from 'vitest';
import { webhookDeliveriesQueue, webhookEventsQueue } from '../../infra/resources.ts';
import { MetalplaneStack } from '../../infra/stack.ts';
import {
  backoffSeconds,
  EVENT_TYPES,
  makeEvent,
  nodeStateEvents,
  signPayload,
  verifySignature,
} from '../../lambda/domain/events/events.ts';
import {
  generateWebhookSecret,
  publicWebhook,
  subscribes,
  validateEventTypes,
  validateWebhookUrl,
  type Webhook,
} from '../../lambda/domain/events/webhooks.ts';
import { eventOf } from '../../lambda/webhooks/worker.ts';
import { removeTestApps, testApp } from '../support/cdk.ts';

let counter = 0;
const context = { newId: () => `id-${++counter}`, now: () => new Date('2026-01-02T03:04:05.000Z') };

describe('event schema', () => {
  it('has the six documented types', () => {
    expect(EVENT_TYPES).toEqual([
      'node.provision_state.changed',
      'node.power_state.changed',
      'command.finished',
      'agent.connected',
      'agent.disconnected',
      'image.ready',
    ]);
  });

  it('builds version 1 events', () => {
    expect(makeEvent(context, 'agent.connected', 'fra1', { hostname: 'a1' })).toEqual({
      version: '1',
      id: expect.stringMatching(/^id-/),
      time: '2026-01-02T03:04:05.000Z',
      type: 'agent.connected',
      site: 'fra1',
      detail: { hostname: 'a1' },
    });
  });

  it('emits one event per changed state of a node write, none when nothing changed', () => {
    const before = {
      uuid: 'n1',
      name: 'node-1',
      conductor_group: 'fra1',
      provision_state: 'enroll',
      power_state: null,
    };
    expect(nodeStateEvents(context, before, { ...before })).toEqual([]);
    const after = {
      ...before,
      provision_state: 'verifying',
      target_provision_state: 'manageable',
      power_state: 'power off',
    };
    const events = nodeStateEvents(context, before, after);
    expect(events.map((event) => event.type)).toEqual([
      'node.provision_state.changed',
      'node.power_state.changed',
    ]);
    expect(events[0]?.detail).toEqual({
      node_uuid: 'n1',
      node_name: 'node-1',
      previous: 'enroll',
      current: 'verifying',
      target: 'manageable',
      last_error: null,
    });
    expect(events[1]?.detail).toEqual({
      node_uuid: 'n1',
      node_name: 'node-1',
      previous: null,
      current: 'power off',
    });
    expect(events.every((event) => event.site === 'fra1')).toBe(true);
  });

  it('reads a Metalplane event out of an EventBridge envelope, and nothing else', () => {
    const event = makeEvent(context, 'image.ready', 'fra1', { image_uuid: 'i1' });
    expect(eventOf({ source: 'metalplane', 'detail-type': 'image.ready', detail: event })).toEqual(event);
    expect(eventOf({ detail: { ...event, version: '2' } })).toBeUndefined();
    expect(eventOf({ detail: { ...event, type: 'node.exploded' } })).toBeUndefined();
    expect(eventOf(null)).toBeUndefined();
  });
});

describe('signature', () => {
  it('is sha256=<hex HMAC of "timestamp.body">, checked in constant time', () => {
    const signature = signPayload('s3cret-s3cret-s3cret', '1700000000', '{"a":1}');
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifySignature('s3cret-s3cret-s3cret', '1700000000', '{"a":1}', signature)).toBe(true);
    expect(verifySignature('s3cret-s3cret-s3cret', '1700000001', '{"a":1}', signature)).toBe(false);
    expect(verifySignature('s3cret-s3cret-s3cret', '1700000000', '{"a":2}', signature)).toBe(false);
    expect(verifySignature('other', '1700000000', '{"a":1}', signature)).toBe(false);
    expect(verifySignature('s3cret-s3cret-s3cret', '1700000000', '{"a":1}', 'sha256=00')).toBe(false);
  });
});

describe('backoff', () => {
  it('doubles from the base, capped at SQS’s 15 minutes', () => {
    expect([1, 2, 3, 4].map((n) => backoffSeconds(n, 30))).toEqual([30, 60, 120, 240]);
    expect(backoffSeconds(20, 30)).toBe(900);
    expect(backoffSeconds(1, 1)).toBe(1);
  });
});

describe('webhook subscriptions', () => {
  it('take https URLs; plain http only to loopback on the local stack', () => {
    expect(validateWebhookUrl('https://hooks.example.com/x', { allowLoopbackHttp: false })).toBe(
      'https://hooks.example.com/x',
    );
    for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x']) {
      expect(validateWebhookUrl(url, { allowLoopbackHttp: true })).toBe(url);
      expect(() => validateWebhookUrl(url, { allowLoopbackHttp: false })).toThrow(/https/);
    }
    for (const url of [
      'http://hooks.example.com/',
      'http://10.0.0.1/',
      'ftp://h/',
      'nope',
      'https://u:p@h.example/',
    ]) {
      expect(() => validateWebhookUrl(url, { allowLoopbackHttp: true })).toThrow(/Invalid webhook URL/);
    }
  });

  it('filter event types (all when none given), refusing unknown ones', () => {
    expect(validateEventTypes(undefined)).toEqual([]);
    expect(validateEventTypes(['image.ready', 'image.ready'])).toEqual(['image.ready']);
    expect(() => validateEventTypes(['node.exploded'])).toThrow(/Unknown event type/);
    expect(subscribes({ enabled: true, event_types: [] }, 'command.finished')).toBe(true);
    expect(subscribes({ enabled: true, event_types: ['image.ready'] }, 'command.finished')).toBe(false);
    expect(subscribes({ enabled: false, event_types: [] }, 'command.finished')).toBe(false);
  });

  it('show their secret once; masked otherwise', () => {
    const secret = generateWebhookSecret();
    expect(secret).toMatch(/^whsec_[0-9a-f]{64}$/);
    expect(generateWebhookSecret()).not.toBe(secret);
    const webhook: Webhook = {
      id: 'w1',
      url: 'https://h.example/',
      event_types: [],
      enabled: true,
      description: null,
      secret: 'mpsealed:1:xxx',
      created_at: '2026-01-01T00:00:00+00:00',
      updated_at: null,
    };
    expect(publicWebhook(webhook).secret).toBe('******');
    expect(publicWebhook(webhook, secret).secret).toBe(secret);
    expect(JSON.stringify(publicWebhook(webhook))).not.toContain('mpsealed');
  });
});

describe('MetalplaneEvents (infra/events.ts)', () => {
  const stack = new MetalplaneStack(testApp(), 'Metalplane', { stackName: 'Metalplane' });
  afterAll(removeTestApps);
  // The stack builds its events itself (infra/stack.ts).
  const built = stack.events;
  const template = Template.fromStack(stack);
  const logical = (construct: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(construct.node.defaultChild as never);

  it('builds the bus, and the rule sending source metalplane to the webhook events queue', () => {
    template.hasResourceProperties('AWS::Events::EventBus', { Name: 'Metalplane-Events' });
    template.hasResourceProperties('AWS::Events::Rule', {
      Name: 'Metalplane-Webhooks',
      EventPattern: { source: ['metalplane'] },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [logical(stack.queues.get(webhookEventsQueue.id)!), 'Arn'] },
        }),
      ],
    });
  });

  it('lets the state-changing Lambdas put events on the bus only', () => {
    for (const fn of [
      stack.apiFunction,
      stack.agentsFunction,
      stack.conductorFunction,
      stack.imageVerifyFunction,
    ]) {
      const role = stack.getLogicalId(fn.role!.node.defaultChild as never);
      template.hasResourceProperties('AWS::IAM::Policy', {
        Roles: Match.arrayWith([{ Ref: role }]),
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Action: 'events:PutEvents',
              Resource: { 'Fn::GetAtt': [logical(built.bus), 'Arn'] },
            }),
          ]),
        },
      });
    }
  });

  it('feeds the webhooks Lambda from both webhook queues, reporting item failures', () => {
    const fn = logical(built.webhooksFunction);
    for (const queue of [webhookEventsQueue, webhookDeliveriesQueue]) {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { Ref: fn },
        EventSourceArn: { 'Fn::GetAtt': [logical(stack.queues.get(queue.id)!), 'Arn'] },
        FunctionResponseTypes: ['ReportBatchItemFailures'],
      });
    }
  });

  it('grants the webhooks Lambda no Scan and only kms:Decrypt under Metalplane’s context', () => {
    const role = stack.getLogicalId(built.webhooksFunction.role!.node.defaultChild as never);
    const policies = Object.values(template.findResources('AWS::IAM::Policy')).filter((policy) =>
      JSON.stringify(policy.Properties.Roles).includes(role),
    );
    const text = JSON.stringify(policies);
    expect(text).not.toContain('dynamodb:Scan');
    expect(text).not.toContain('kms:GenerateDataKey');
    expect(text).toContain('kms:Decrypt');
    expect(text).toContain('metalplane-secrets');
  });
});
