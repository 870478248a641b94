/**
 * Creates SQS queues from the definitions in `infra/resources.ts`.
 *
 * Used by the local bootstrap (`local/bootstrap.ts`) for the static queues and by the
 * sites API for each site's command queue, so both create queues the same way. A queue
 * that already exists is left as it is.
 */
import type { QueueAttributeName, SQSClient } from '@aws-sdk/client-sqs';
import {
  type QueueDefinition,
  queueName,
  queues,
  siteCommandQueue,
  siteTagKeys,
} from '../../infra/resources.ts';
import { clientSqs, type Sender } from './aws-sdk.ts';

export interface QueueHandle {
  readonly name: string;
  readonly url: string;
  readonly arn: string;
}

/** SQS: up to 80 characters, `.fifo` included. */
const queueNamePattern = /^(?:[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo)$/;

/** Creates the queue of `definition` (its dead-letter queue must already exist). */
export async function ensureQueue(
  sqs: Sender<SQSClient>,
  prefix: string,
  definition: QueueDefinition,
  tags: Readonly<Record<string, string>> = {},
): Promise<QueueHandle> {
  const name = queueName(prefix, definition);
  if (!queueNamePattern.test(name)) throw new Error(`invalid SQS queue name: ${name}`);
  const attributes = await queueAttributes(sqs, prefix, definition);
  const url = await createOrFind(sqs, name, attributes, { [siteTagKeys.stack]: prefix, ...tags });
  return { name, url, arn: await queueArn(sqs, url) };
}

/** Creates the FIFO command queue of `site`, dead-lettering to the commands DLQ; returns its URL. */
export async function createSiteCommandQueue(
  sqs: Sender<SQSClient>,
  prefix: string,
  site: string,
): Promise<string> {
  return (await ensureQueue(sqs, prefix, siteCommandQueue(site), { [siteTagKeys.site]: site })).url;
}

/** The SQS attributes that `definition` stands for; the redrive target is looked up by name. */
export async function queueAttributes(
  sqs: Sender<SQSClient>,
  prefix: string,
  definition: QueueDefinition,
): Promise<Partial<Record<QueueAttributeName, string>>> {
  const attributes: Partial<Record<QueueAttributeName, string>> = {
    VisibilityTimeout: String(definition.visibilityTimeoutSeconds),
    MessageRetentionPeriod: String(definition.retentionSeconds),
    SqsManagedSseEnabled: 'true',
  };
  if (definition.fifo) attributes.FifoQueue = 'true';
  if (definition.deadLetter) {
    const deadLetterArn = await queueArn(sqs, await queueUrl(sqs, deadLetterName(prefix, definition)));
    attributes.RedrivePolicy = JSON.stringify({
      deadLetterTargetArn: deadLetterArn,
      maxReceiveCount: definition.deadLetter.maxReceiveCount,
    });
  }
  return attributes;
}

function deadLetterName(prefix: string, definition: QueueDefinition): string {
  const id = definition.deadLetter?.queueId;
  const target = queues.find((queue) => queue.id === id);
  if (!target) throw new Error(`queue ${definition.id}: unknown dead-letter queue ${id}`);
  return queueName(prefix, target);
}

async function createOrFind(
  sqs: Sender<SQSClient>,
  name: string,
  attributes: Partial<Record<QueueAttributeName, string>>,
  tags: Readonly<Record<string, string>>,
): Promise<string> {
  try {
    // Tagged at creation (sqs:CreateQueue with tags needs sqs:TagQueue, granted with it).
    const created = await sqs.send(
      new (await clientSqs()).CreateQueueCommand({
        QueueName: name,
        Attributes: attributes,
        tags: { ...tags },
      }),
    );
    if (created.QueueUrl) return created.QueueUrl;
  } catch (error) {
    // Exists with other attributes: leave it alone.
    if (!['QueueNameExists', 'QueueAlreadyExists'].includes((error as Error).name)) throw error;
  }
  return queueUrl(sqs, name);
}

export async function queueUrl(sqs: Sender<SQSClient>, name: string): Promise<string> {
  const { QueueUrl } = await sqs.send(new (await clientSqs()).GetQueueUrlCommand({ QueueName: name }));
  if (!QueueUrl) throw new Error(`queue ${name} has no URL`);
  return QueueUrl;
}

export async function queueArn(sqs: Sender<SQSClient>, url: string): Promise<string> {
  const { Attributes } = await sqs.send(
    new (await clientSqs()).GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
  );
  const arn = Attributes?.QueueArn;
  if (!arn) throw new Error(`queue ${url} has no ARN`);
  return arn;
}
