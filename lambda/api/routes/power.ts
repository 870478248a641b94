/**
 * Power, boot device and validation of a node (Ironic's `NodeStatesController.power`,
 * `BootDeviceController`, `NodesController.validate`):
 *
 *   PUT /v1/nodes/{node}/states/power                 {target, timeout?} → 202, async
 *   GET /v1/nodes/{node}/management/boot_device       → {boot_device, persistent}
 *   PUT /v1/nodes/{node}/management/boot_device       {boot_device, persistent?} → 204
 *   GET /v1/nodes/{node}/management/boot_device/supported → {supported_boot_devices}
 *   PUT /v1/nodes/{node}/management/inject_nmi        {} → 204 (1.29+)
 *   PUT /v1/nodes/{node}/states/boot_mode             {target: uefi|bios} → 202 (1.76+)
 *   PUT /v1/nodes/{node}/states/secure_boot           {target: true|false} → 202 (1.76+)
 *   GET /v1/nodes/{node}/validate                     → per interface {result, reason?}
 *
 * A power change is a conductor task (`lambda/conductor/power.ts`): the node is locked and
 * shows `target_power_state` until the site's agent reports, and the 202 comes first.
 * Boot device reads and writes are answered once the agent has done them, as Ironic
 * answers them after its conductor's synchronous call; an agent that does not answer in
 * time gets a 503 (the command stays on record and finishes or expires).
 */

import { BOOT_DEVICES, BOOT_MODES, POWER_TARGETS } from '../../../protocol/actions.ts';
import { PortRepository } from '../../adapters/dynamo/port-repository.ts';
import { notFound } from '../../domain/errors.ts';
import { validateNode } from '../../domain/hardware/validate.ts';
import {
  bootDevicesFromBmc,
  checkBootDeviceRequest,
  checkBootModeRequest,
  checkManagementCall,
  checkPowerRequest,
  checkSecureBootRequest,
  supportedBootDevices,
} from '../../domain/power/power.ts';
import { ApiError } from '../../http/errors.ts';
import { type ApiRequest, json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { type ConductorAccess, controlPlaneFor } from '../../runtime.ts';
import { authorizeNode } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { actOnCurrentNode, resolveNode } from './nodes.ts';
import { answered, requester, SYNC_WAIT_MS } from './sync-call.ts';

const POWER_SCHEMA = {
  type: 'object',
  properties: {
    target: { enum: POWER_TARGETS },
    // Ironic's `args.integer`: null is the default, a float is truncated, a numeric string read.
    timeout: { type: ['integer', 'number', 'string', 'null'], minimum: 1, pattern: '^\\s*[-+]?\\d+\\s*$' },
  },
  required: ['target'],
} as const;

const BOOT_DEVICE_SCHEMA = {
  type: 'object',
  properties: {
    boot_device: { enum: BOOT_DEVICES },
    // Ironic's `args.boolean`: null is false; 0/1 and the bool words ('true', 'off'...) read.
    persistent: { type: ['boolean', 'string', 'integer', 'null'] },
  },
  required: ['boot_device'],
} as const;

const BOOT_MODE_SCHEMA = {
  type: 'object',
  properties: { target: { enum: BOOT_MODES } },
  required: ['target'],
} as const;

const SECURE_BOOT_SCHEMA = {
  type: 'object',
  // Ironic's `args.boolean`: true/false, 0/1 and the bool words.
  properties: { target: { type: ['boolean', 'string', 'integer'] } },
  required: ['target'],
} as const;

/** Ironic's inject_nmi takes no arguments: an empty object (what python-ironicclient sends). */
const INJECT_NMI_SCHEMA = { type: 'object', properties: {}, additionalProperties: false } as const;

/** The microversion that added `inject_nmi` (Ironic's MINOR_29_INJECT_NMI). */
export const INJECT_NMI_SINCE = 29;

export const POWER_OPERATIONS: Record<string, OperationDoc> = {
  'PUT /v1/nodes/{node}/states/power': {
    summary: 'Change the power state (asynchronous: target_power_state shows it until done)',
    tag: 'nodes',
    requestSchema: POWER_SCHEMA,
    status: 202,
  },
  'GET /v1/nodes/{node}/management/boot_device': {
    summary: "Read the node's boot device from its BMC (through the site's agent)",
    tag: 'nodes',
  },
  'PUT /v1/nodes/{node}/management/boot_device': {
    summary: "Set the node's next (or persistent) boot device",
    tag: 'nodes',
    requestSchema: BOOT_DEVICE_SCHEMA,
    status: 204,
  },
  'GET /v1/nodes/{node}/management/boot_device/supported': {
    summary: "Boot devices the node's management interface supports",
    tag: 'nodes',
  },
  'PUT /v1/nodes/{node}/states/boot_mode': {
    summary:
      'Change the boot mode, uefi or bios (asynchronous: the node shows boot_mode or last_error; 1.76+)',
    tag: 'nodes',
    requestSchema: BOOT_MODE_SCHEMA,
    status: 202,
  },
  'PUT /v1/nodes/{node}/states/secure_boot': {
    summary:
      'Turn UEFI secure boot on or off (asynchronous: the node shows secure_boot or last_error; 1.76+)',
    tag: 'nodes',
    requestSchema: SECURE_BOOT_SCHEMA,
    status: 202,
  },
  'PUT /v1/nodes/{node}/management/inject_nmi': {
    summary: 'Send the node a diagnostic interrupt (NMI) through its BMC (1.29+)',
    tag: 'nodes',
    requestSchema: INJECT_NMI_SCHEMA,
    status: 204,
  },
  'GET /v1/nodes/{node}/validate': {
    summary: "Whether the node's configuration is complete, per interface",
    tag: 'nodes',
  },
};

function objectBody(request: ApiRequest): Record<string, unknown> {
  const body = jsonBody(request);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError(400, 'The request body must be a JSON object.');
  }
  return body as Record<string, unknown>;
}

export function registerPowerRoutes(
  router: Router,
  deps: Dependencies,
  runtime: ConductorAccess | (() => ConductorAccess) = () => controlPlaneFor(deps),
  options: { readonly syncWaitMs?: number } = {},
): void {
  const conductor = typeof runtime === 'function' ? () => runtime().service : () => runtime.service;
  const ports = new PortRepository(deps.store);
  const waitMs = options.syncWaitMs ?? SYNC_WAIT_MS;

  router.on('PUT', '/v1/nodes/{node}/states/power', async (request) => {
    const ident = request.params.node as string;
    await actOnCurrentNode(deps, ident, async (found) => {
      authorizeNode(request, 'node:set_power_state', found.node);
      const body = objectBody(request);
      const power = checkPowerRequest(found.node, ident, body, request.version.minor);
      await conductor().setPowerState(found, power, requester(request));
    });
    return noContent(202, { Location: `${request.baseUrl}/v1/nodes/${ident}/states` });
  });

  router.on('GET', '/v1/nodes/{node}/management/boot_device/supported', async (request) => {
    const found = await resolveNode(deps, request.params.node as string);
    const { node } = found;
    authorizeNode(request, 'node:get_boot_device', node);
    if (!bootDevicesFromBmc(node)) return json({ supported_boot_devices: [...supportedBootDevices(node)] });
    // Redfish: the BMC's own list (Ironic's conductor asks the driver, which asks the BMC).
    checkManagementCall(node);
    const done = answered(
      waitMs,
      await conductor().readSupportedBootDevices(found, requester(request), waitMs),
    );
    return json({ supported_boot_devices: done.result?.supported_boot_devices ?? [] });
  });

  router.on('GET', '/v1/nodes/{node}/management/boot_device', async (request) => {
    const found = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:get_boot_device', found.node);
    const done = answered(waitMs, await conductor().readBootDevice(found, requester(request), waitMs));
    return json({
      boot_device: done.result?.boot_device ?? null,
      persistent: done.result?.persistent ?? null,
    });
  });

  router.on('PUT', '/v1/nodes/{node}/management/boot_device', async (request) => {
    const found = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:set_boot_device', found.node);
    const boot = checkBootDeviceRequest(found.node, objectBody(request));
    answered(waitMs, await conductor().setBootDevice(found, boot, requester(request), waitMs));
    return noContent();
  });

  router.on('PUT', '/v1/nodes/{node}/states/boot_mode', async (request) => {
    const ident = request.params.node as string;
    const found = await resolveNode(deps, ident);
    authorizeNode(request, 'node:set_boot_mode', found.node);
    const mode = checkBootModeRequest(found.node, objectBody(request), request.version.minor);
    await conductor().setBootMode(found, mode, requester(request));
    return noContent(202, { Location: `${request.baseUrl}/v1/nodes/${ident}/states` });
  });

  router.on('PUT', '/v1/nodes/{node}/states/secure_boot', async (request) => {
    const ident = request.params.node as string;
    const found = await resolveNode(deps, ident);
    authorizeNode(request, 'node:set_secure_boot', found.node);
    const enabled = checkSecureBootRequest(found.node, objectBody(request), request.version.minor);
    await conductor().setSecureBoot(found, enabled, requester(request));
    return noContent(202, { Location: `${request.baseUrl}/v1/nodes/${ident}/states` });
  });

  router.on('PUT', '/v1/nodes/{node}/management/inject_nmi', async (request) => {
    if (request.version.minor < INJECT_NMI_SINCE) throw notFound('The resource could not be found.');
    const found = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:inject_nmi', found.node);
    const body = request.body === undefined || request.body === '' ? {} : objectBody(request);
    if (Object.keys(body).length > 0) {
      throw new ApiError(400, `Unknown argument: "${Object.keys(body).sort().join(', ')}"`);
    }
    checkManagementCall(found.node);
    answered(waitMs, await conductor().injectNmi(found, requester(request), waitMs));
    return noContent();
  });

  router.on('GET', '/v1/nodes/{node}/validate', async (request) => {
    const { node } = await resolveNode(deps, request.params.node as string);
    authorizeNode(request, 'node:validate', node);
    const page = await ports.list({ limit: 1, descending: false, nodeUuid: node.uuid });
    return json(validateNode(node, page.ports.length));
  });
}
