/**
 * A node's indicators (LEDs), as Ironic's `IndicatorController` (1.63):
 *
 *   GET /v1/nodes/{node}/management/indicators                → {indicators: [{name, component, readonly, states, links}]}
 *   GET /v1/nodes/{node}/management/indicators/{name@component} → {state}
 *   PUT /v1/nodes/{node}/management/indicators/{name@component} {state} → 204
 *
 * Each is a synchronous conductor call in Ironic (the node's lock taken, a read too): here
 * a task whose agent command the request waits for, as the boot device routes do.
 */
import type { SupportedIndicators } from '../../../protocol/actions.ts';
import { checkIndicatorState, checkManagementCall, parseIndicatorId } from '../../domain/power/power.ts';
import { json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { type ConductorAccess, controlPlaneFor } from '../../runtime.ts';
import { authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';
import { answered, requester, SYNC_WAIT_MS } from './sync-call.ts';

const INDICATOR_SCHEMA = {
  type: 'object',
  properties: { state: { enum: ['off', 'on', 'blinking'] } },
  required: ['state'],
} as const;

export const INDICATOR_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/nodes/{node}/management/indicators': {
    summary: "The node's indicators (LEDs) by component, read from its BMC",
    tag: 'nodes',
  },
  'GET /v1/nodes/{node}/management/indicators/{indicator}': {
    summary: "One indicator's state (`name@component`)",
    tag: 'nodes',
  },
  'PUT /v1/nodes/{node}/management/indicators/{indicator}': {
    summary: 'Set one indicator: off, on or blinking',
    tag: 'nodes',
    requestSchema: INDICATOR_SCHEMA,
    status: 204,
  },
};

/** Ironic's list: one entry per indicator, `name@component`, links under the node as given. */
function indicatorList(baseUrl: string, ident: string, supported: SupportedIndicators) {
  const indicators = Object.entries(supported).flatMap(([component, names]) =>
    Object.entries(names ?? {}).map(([name, info]) => {
      const unique = `${name}@${component}`;
      const path = `nodes/${ident}/management/indicators/${unique}`;
      return {
        name: unique,
        component,
        readonly: info.readonly ?? true,
        states: [...(info.states ?? [])],
        links: [
          { href: `${baseUrl}/v1/${path}`, rel: 'self' },
          { href: `${baseUrl}/${path}`, rel: 'bookmark' },
        ],
      };
    }),
  );
  return { indicators };
}

export function registerIndicatorRoutes(
  router: Router,
  deps: Dependencies,
  runtime: ConductorAccess | (() => ConductorAccess) = () => controlPlaneFor(deps),
  options: { readonly syncWaitMs?: number } = {},
): void {
  const conductor = typeof runtime === 'function' ? () => runtime().service : () => runtime.service;
  const waitMs = options.syncWaitMs ?? SYNC_WAIT_MS;

  router.on('GET', '/v1/nodes/{node}/management/indicators', async (request) => {
    const ident = request.params.node as string;
    const found = await resolveNode(deps, ident);
    authorizeNode(request, 'node:get_indicator_state', found.node);
    checkManagementCall(found.node);
    const done = answered(waitMs, await conductor().indicators(found, {}, requester(request), waitMs));
    const supported = (done.result?.indicators ?? {}) as SupportedIndicators;
    return json(indicatorList(request.baseUrl, ident, supported));
  });

  router.on('GET', '/v1/nodes/{node}/management/indicators/{indicator}', async (request) => {
    const found = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:get_indicator_state', found.node);
    const target = parseIndicatorId(request.params.indicator as string);
    checkManagementCall(found.node);
    const done = answered(waitMs, await conductor().indicators(found, target, requester(request), waitMs));
    return json({ state: done.result?.state ?? 'unknown' });
  });

  router.on('PUT', '/v1/nodes/{node}/management/indicators/{indicator}', async (request) => {
    const found = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:set_indicator_state', found.node);
    const target = parseIndicatorId(request.params.indicator as string);
    const body = jsonBody(request);
    const state = checkIndicatorState(
      typeof body === 'object' && body !== null && !Array.isArray(body)
        ? (body as { state?: unknown }).state
        : undefined,
    );
    checkManagementCall(found.node);
    answered(waitMs, await conductor().indicators(found, { ...target, state }, requester(request), waitMs));
    return noContent();
  });
}
