/**
 * local/moto_shim.py's EventBridge-to-SQS path ("EventBridge to SQS: each event in time
 * independent of the queue"; docs/local-aws.md) answers as moto as released does. The
 * shim counts a queue's messages with one clock read per count instead of one per
 * message, and caches the JSONPath expressions of a target's input template. This sends
 * the same events (through a rule to a queue, as local/bootstrap.ts wires the webhook
 * events) and messages (plain, delayed, received and in flight, made visible again) to
 * the shim and to a plain `moto_server` started here, and compares the queue's three
 * approximate counts after each step and the delivered events' bodies.
 */
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { emulatorEnvironment, startMoto } from '../../local/moto.ts';

interface Emulator {
  readonly name: string;
  readonly sqs: SQSClient;
  readonly events: EventBridgeClient;
  queueUrl: string;
}

const suffix = Math.random().toString(36).slice(2, 8);
const BUS = `events-sqs-${suffix}`;
const EVENTS = 40;

let emulators: Emulator[] = [];
let stopPlain: (() => Promise<void>) | undefined;

function emulator(name: string, endpoint: string): Emulator {
  const options = { endpoint, maxAttempts: 1 };
  return { name, sqs: new SQSClient(options), events: new EventBridgeClient(options), queueUrl: '' };
}

async function wire(target: Emulator): Promise<void> {
  const { QueueUrl } = await target.sqs.send(new CreateQueueCommand({ QueueName: `events-sqs-${suffix}` }));
  if (!QueueUrl) throw new Error(`${target.name}: no queue url`);
  target.queueUrl = QueueUrl;
  const { Attributes } = await target.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
  );
  await target.events.send(new CreateEventBusCommand({ Name: BUS }));
  await target.events.send(
    new PutRuleCommand({
      Name: `all-${suffix}`,
      EventBusName: BUS,
      EventPattern: JSON.stringify({ source: ['metalplane.test'] }),
      State: 'ENABLED',
    }),
  );
  await target.events.send(
    new PutTargetsCommand({
      Rule: `all-${suffix}`,
      EventBusName: BUS,
      Targets: [{ Id: 'queue', Arn: Attributes?.QueueArn }],
    }),
  );
}

async function counts(target: Emulator): Promise<Record<string, string | undefined>> {
  const { Attributes } = await target.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: target.queueUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  return { ...Attributes };
}

/** The same step on both emulators, then the counts of both. */
async function step(action: (target: Emulator) => Promise<void>) {
  for (const target of emulators) await action(target);
  const [shim = {}, reference = {}] = await Promise.all(emulators.map(counts));
  return { shim, reference };
}

beforeAll(async () => {
  Object.assign(process.env, emulatorEnvironment(inject('awsEndpoint')));
  const plain = await startMoto({ plain: true, readyTimeoutMs: 60_000 });
  stopPlain = plain.stop;
  emulators = [emulator('shim', inject('awsEndpoint')), emulator('plain moto', plain.endpoint)];
  for (const target of emulators) await wire(target);
});

afterAll(async () => {
  for (const target of emulators) {
    target.sqs.destroy();
    target.events.destroy();
  }
  await stopPlain?.();
});

describe('events through a rule to a queue, and the queue counts', () => {
  it('delivers the same events and counts the queue as plain moto at every step', async () => {
    const sent = await step(async (target) => {
      for (let i = 0; i < EVENTS; i++) {
        const { FailedEntryCount } = await target.events.send(
          new PutEventsCommand({
            Entries: [
              {
                EventBusName: BUS,
                Source: 'metalplane.test',
                DetailType: 'node.changed',
                Detail: JSON.stringify({ node: `node-${i}`, nested: { list: [i, 'x'] } }),
                Resources: [`arn:aws:test:::node/${i}`],
              },
            ],
          }),
        );
        expect(FailedEntryCount, target.name).toBe(0);
      }
    });
    expect(sent.shim).toEqual(sent.reference);
    expect(sent.shim.ApproximateNumberOfMessages).toBe(String(EVENTS));

    const delayed = await step(async (target) => {
      for (let i = 0; i < 3; i++) {
        await target.sqs.send(
          new SendMessageCommand({ QueueUrl: target.queueUrl, MessageBody: `later ${i}`, DelaySeconds: 600 }),
        );
      }
    });
    expect(delayed.shim).toEqual(delayed.reference);
    expect(delayed.shim.ApproximateNumberOfMessagesDelayed).toBe('3');

    const bodies: Record<string, unknown>[][] = [];
    const received = await step(async (target) => {
      const { Messages = [] } = await target.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: target.queueUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: 600,
        }),
      );
      bodies.push(Messages.map((message) => JSON.parse(message.Body ?? '{}') as Record<string, unknown>));
      const [first] = Messages;
      if (first?.ReceiptHandle) {
        await target.sqs.send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: target.queueUrl,
            ReceiptHandle: first.ReceiptHandle,
            VisibilityTimeout: 0,
          }),
        );
      }
    });
    expect(received.shim).toEqual(received.reference);
    expect(received.shim.ApproximateNumberOfMessagesNotVisible).toBe('9');
    expect(received.shim.ApproximateNumberOfMessages).toBe(String(EVENTS - 9));

    // The events' bodies, but for what differs by nature (ids, times, the account's ARNs).
    const comparable = (body: Record<string, unknown>) => {
      const { id, time, ...rest } = body;
      expect(typeof id).toBe('string');
      expect(typeof time).toBe('string');
      return rest;
    };
    const [shimBodies = [], referenceBodies = []] = bodies;
    expect(shimBodies).toHaveLength(10);
    expect(shimBodies.map(comparable)).toEqual(referenceBodies.map(comparable));
    expect(shimBodies[0]).toMatchObject({ source: 'metalplane.test', 'detail-type': 'node.changed' });
  });
});
