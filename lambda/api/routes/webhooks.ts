/**
 * /v1/webhooks — Metalplane's own: operators subscribe URLs to Metalplane's events
 * (docs/events.md). Admin only. The HMAC secret is the operator's (`secret`) or generated,
 * answered in clear once, in the creation's answer, stored sealed like a BMC password, and
 * masked (`******`) everywhere else. `GET /v1/webhooks/{webhook}/deliveries` shows the
 * recent deliveries (status, attempts, last error), a week at most.
 */

import { MAX_WEBHOOKS } from '../../adapters/events-webhooks.ts';
import { conflict, forbidden, notFound } from '../../domain/errors.ts';
import {
  generateWebhookSecret,
  publicWebhook,
  validateEventTypes,
  validateWebhookUrl,
  WEBHOOK_CREATE_SCHEMA,
  type Webhook,
  webhookSealContext,
} from '../../domain/events/webhooks.ts';
import { validator } from '../../domain/schema.ts';
import { type ApiRequest, json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { webhookRepositoryFor } from '../../webhooks/runtime.ts';
import type { Principal } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, parseLimit } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

export const WEBHOOK_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/webhooks': { summary: 'List webhook subscriptions, secrets masked (admin)', tag: 'webhooks' },
  'POST /v1/webhooks': {
    summary: 'Subscribe a URL to events; the answer shows the HMAC secret, once (admin)',
    tag: 'webhooks',
    requestSchema: WEBHOOK_CREATE_SCHEMA as unknown as Record<string, unknown>,
    status: 201,
  },
  'GET /v1/webhooks/{webhook}': {
    summary: 'Show a webhook subscription, its secret masked (admin)',
    tag: 'webhooks',
  },
  'DELETE /v1/webhooks/{webhook}': {
    summary: 'Delete a webhook subscription (admin)',
    tag: 'webhooks',
    status: 204,
  },
  'GET /v1/webhooks/{webhook}/deliveries': {
    summary: "A webhook's recent deliveries, newest first: status, attempts, last error (admin)",
    tag: 'webhooks',
  },
};

const validateCreate = validator<{
  url: string;
  event_types?: string[];
  enabled?: boolean;
  description?: string | null;
  secret?: string;
}>('webhook', WEBHOOK_CREATE_SCHEMA as unknown as Record<string, unknown>);

/** Webhooks are an operator's: admins only (an agent never). */
function authorizeAdmin(request: ApiRequest): void {
  const principal = request.principal as Principal | undefined;
  if (!principal) throw forbidden('Access was denied to this resource: the request is not authenticated.');
  if (principal.kind === 'agent' || principal.role !== 'admin') {
    throw forbidden('Access was denied to this resource: webhooks are managed by admins.');
  }
}

function render(request: ApiRequest, webhook: Webhook, clearSecret?: string) {
  return {
    ...publicWebhook(webhook, clearSecret),
    links: [
      { href: `${request.baseUrl}/v1/webhooks/${webhook.id}`, rel: 'self' },
      { href: `${request.baseUrl}/v1/webhooks/${webhook.id}/deliveries`, rel: 'deliveries' },
    ],
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function registerWebhookRoutes(router: Router, deps: Dependencies): void {
  const webhooks = webhookRepositoryFor(deps.config);
  const find = async (id: string): Promise<Webhook> => {
    const found = UUID.test(id) ? await webhooks.get(id) : undefined;
    if (!found) throw notFound(`Webhook ${id} could not be found.`);
    return found;
  };

  router.on('GET', '/v1/webhooks', async (request) => {
    authorizeAdmin(request);
    const all = await webhooks.list();
    return json({ webhooks: all.map((webhook) => render(request, webhook)) });
  });

  router.on('POST', '/v1/webhooks', async (request) => {
    authorizeAdmin(request);
    const body = validateCreate(jsonBody(request));
    const url = validateWebhookUrl(body.url, { allowLoopbackHttp: deps.config().localStack });
    const eventTypes = validateEventTypes(body.event_types);
    if ((await webhooks.list()).length >= MAX_WEBHOOKS) {
      throw conflict(`At most ${MAX_WEBHOOKS} webhooks may exist; delete one first.`);
    }
    const id = deps.newUuid();
    const secret = body.secret ?? generateWebhookSecret();
    const webhook: Webhook = {
      id,
      url,
      event_types: eventTypes,
      enabled: body.enabled ?? true,
      description: body.description ?? null,
      secret: await deps.sealer.seal(secret, webhookSealContext(id)),
      created_at: deps.now(),
      updated_at: null,
    };
    await webhooks.create(webhook);
    return json(render(request, webhook, secret), 201, { Location: `${request.baseUrl}/v1/webhooks/${id}` });
  });

  router.on('GET', '/v1/webhooks/{webhook}', async (request) => {
    authorizeAdmin(request);
    return json(render(request, await find(request.params.webhook as string)));
  });

  router.on('DELETE', '/v1/webhooks/{webhook}', async (request) => {
    authorizeAdmin(request);
    const webhook = await find(request.params.webhook as string);
    await webhooks.delete(webhook.id);
    return noContent();
  });

  router.on('GET', '/v1/webhooks/{webhook}/deliveries', async (request) => {
    authorizeAdmin(request);
    const webhook = await find(request.params.webhook as string);
    const limit = Math.min(parseLimit(request.query.limit), 100);
    return json({ deliveries: await webhooks.deliveries(webhook.id, limit) });
  });
}
