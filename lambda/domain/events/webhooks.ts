/**
 * Webhook subscriptions (docs/events.md): an operator's URL that receives Metalplane's
 * events, signed with a secret shown once. Pure logic: validation, the public view, the
 * delivery record's shape. No AWS imports.
 */
import { randomBytes } from 'node:crypto';
import { invalid } from '../errors.ts';
import { EVENT_TYPES, type EventType, isEventType } from './events.ts';

export const MASKED_SECRET = '******';
export const MIN_SECRET_LENGTH = 16;
export const MAX_SECRET_LENGTH = 256;
export const MAX_URL_LENGTH = 2048;

export interface Webhook {
  readonly id: string;
  readonly url: string;
  /** The event types it receives; every type when empty. */
  readonly event_types: readonly EventType[];
  readonly enabled: boolean;
  readonly description: string | null;
  /** The HMAC secret, sealed (`domain/auth/sealing.ts`); never answered. */
  readonly secret: string;
  readonly created_at: string;
  readonly updated_at: string | null;
}

export type DeliveryStatus = 'pending' | 'retrying' | 'delivered' | 'failed';

/** One (event, webhook) delivery as `GET /v1/webhooks/{id}/deliveries` shows it. */
export interface Delivery {
  readonly id: string;
  readonly webhook_id: string;
  readonly event_id: string;
  readonly event_type: EventType;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  /** HTTP status of the last attempt, null when it got no answer. */
  readonly last_status_code: number | null;
  readonly last_error: string | null;
  readonly created_at: string;
  readonly updated_at: string;
}

export const WEBHOOK_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    url: { type: 'string', maxLength: MAX_URL_LENGTH },
    event_types: { type: 'array', items: { type: 'string', enum: [...EVENT_TYPES] }, uniqueItems: true },
    enabled: { type: 'boolean' },
    description: { type: ['string', 'null'], maxLength: 255 },
    secret: { type: 'string', minLength: MIN_SECRET_LENGTH, maxLength: MAX_SECRET_LENGTH },
  },
  required: ['url'],
  additionalProperties: false,
} as const;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * A webhook's URL: https, no credentials in it; plain http only to a loopback host, and
 * only on the local stack (`METALPLANE_LOCAL_STACK`), where the receivers are local tests.
 */
export function validateWebhookUrl(raw: string, options: { readonly allowLoopbackHttp: boolean }): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(`Invalid webhook URL: ${JSON.stringify(raw)} is not an absolute URL.`);
  }
  if (url.username || url.password) throw invalid('Invalid webhook URL: it must not carry credentials.');
  if (url.protocol === 'https:') return url.toString();
  if (url.protocol === 'http:' && options.allowLoopbackHttp && LOOPBACK_HOSTS.has(url.hostname)) {
    return url.toString();
  }
  throw invalid(
    options.allowLoopbackHttp
      ? 'Invalid webhook URL: it must use https (http only to 127.0.0.1 or localhost on the local stack).'
      : 'Invalid webhook URL: it must use https.',
  );
}

export function validateEventTypes(raw: readonly unknown[] | undefined): EventType[] {
  const types = raw ?? [];
  for (const type of types) {
    if (!isEventType(type)) {
      throw invalid(`Unknown event type ${JSON.stringify(type)}; known: ${EVENT_TYPES.join(', ')}.`);
    }
  }
  return [...new Set(types as EventType[])];
}

/** A fresh secret: 32 random bytes, hex, with a recognisable prefix. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('hex')}`;
}

export function subscribes(webhook: Pick<Webhook, 'enabled' | 'event_types'>, type: EventType): boolean {
  return webhook.enabled && (webhook.event_types.length === 0 || webhook.event_types.includes(type));
}

/** The webhook as the API answers it: its secret masked (or, once, at creation, in clear). */
export function publicWebhook(webhook: Webhook, clearSecret?: string): Record<string, unknown> {
  return {
    id: webhook.id,
    url: webhook.url,
    event_types: [...webhook.event_types],
    enabled: webhook.enabled,
    description: webhook.description,
    secret: clearSecret ?? MASKED_SECRET,
    created_at: webhook.created_at,
    updated_at: webhook.updated_at,
  };
}

/** The seal context of a webhook's secret: bound to the webhook (`SealContext.node` is the binding). */
export const webhookSealContext = (id: string) => ({ node: `webhook:${id}` });
