/**
 * A node's agent commands (admin only): the debugging view of what was sent to the
 * node's site agent and what came back, and a way for operators and tests to send one
 * (`noop`, `sleep {ms}` ... the catalog of `protocol/actions.ts`; an action the agent
 * does not implement fails there), as Ironic's vendor passthru is a way to reach a driver
 * directly.
 *
 *   GET  /v1/nodes/{node}/commands[?limit=&marker=]   newest first
 *   GET  /v1/nodes/{node}/commands/{command}
 *   POST /v1/nodes/{node}/commands   {action, args?, deadline_seconds?} → 202, the record
 *
 * A 202 means durable: the record and the queue message exist, and the site's
 * connected agent has been woken.
 */
import { maskSecrets } from '../../domain/auth/secrets.ts';
import {
  type CommandRecord,
  MAX_ARGS_BYTES,
  MAX_DEADLINE_SECONDS,
  MIN_DEADLINE_SECONDS,
} from '../../domain/commands/command.ts';
import { notFound } from '../../domain/errors.ts';
import { assertStorable } from '../../domain/inventory/common.ts';
import { validator } from '../../domain/schema.ts';
import { type ApiRequest, json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { type ConductorAccess, controlPlaneFor } from '../../runtime.ts';
import { authorize, type Principal } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, parseLimit } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

export const COMMAND_CREATE_SCHEMA = {
  type: 'object',
  properties: {
    action: { type: 'string', maxLength: 64 },
    args: { type: 'object' },
    deadline_seconds: { type: 'integer', minimum: MIN_DEADLINE_SECONDS, maximum: MAX_DEADLINE_SECONDS },
  },
  required: ['action'],
  additionalProperties: false,
} as const;

export const COMMAND_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/nodes/{node}/commands': {
    summary: "List a node's agent commands, newest first (admin)",
    tag: 'commands',
  },
  'GET /v1/nodes/{node}/commands/{command}': {
    summary: 'Show one agent command of a node (admin)',
    tag: 'commands',
  },
  'POST /v1/nodes/{node}/commands': {
    summary: `Queue a command for the node's site agent (admin; args up to ${MAX_ARGS_BYTES} bytes)`,
    tag: 'commands',
    requestSchema: COMMAND_CREATE_SCHEMA,
    status: 202,
  },
};

const validateCreate = validator<{
  action: string;
  args?: Record<string, unknown>;
  deadline_seconds?: number;
}>('command', COMMAND_CREATE_SCHEMA);

/**
 * Commands carry the BMC credentials the agent needs (`driver_info`), a deploy's
 * callback token, whatever an admin passed: secrets never shown, masked as Ironic masks.
 */
function maskedArgs(args: Record<string, unknown>): Record<string, unknown> {
  return maskSecrets(args);
}

function render(request: ApiRequest, command: CommandRecord) {
  const path = `nodes/${command.node}/commands/${command.id}`;
  return {
    ...command,
    args: maskedArgs(command.args),
    links: [
      { href: `${request.baseUrl}/v1/${path}`, rel: 'self' },
      { href: `${request.baseUrl}/${path}`, rel: 'bookmark' },
    ],
  };
}

export function registerCommandRoutes(
  router: Router,
  deps: Dependencies,
  runtime: ConductorAccess | (() => ConductorAccess) = () => controlPlaneFor(deps),
): void {
  const conductor = typeof runtime === 'function' ? () => runtime().service : () => runtime.service;

  router.on('GET', '/v1/nodes/{node}/commands', async (request) => {
    authorize(request, 'command:get');
    const { node } = await resolveNode(deps, request.params.node as string);
    const limit = Math.min(parseLimit(request.query.limit), 1000);
    let before: string | undefined;
    if (request.query.marker !== undefined) {
      const marker = await conductor().command(request.query.marker);
      if (!marker || marker.node !== node.uuid)
        throw notFound(`Command ${request.query.marker} could not be found.`);
      before = `${marker.created_at}#${marker.id}`;
    }
    const page = await conductor().commandsOfNode(node.uuid, limit, before);
    const body: Record<string, unknown> = {
      commands: page.commands.map((command) => render(request, command)),
    };
    const last = page.commands.at(-1);
    if (page.more && last) {
      body.next = `${request.baseUrl}/v1/nodes/${node.uuid}/commands?limit=${limit}&marker=${last.id}`;
    }
    return json(body);
  });

  router.on('GET', '/v1/nodes/{node}/commands/{command}', async (request) => {
    authorize(request, 'command:get');
    const { node } = await resolveNode(deps, request.params.node as string);
    const found = await conductor().command(request.params.command as string);
    if (!found || found.node !== node.uuid)
      throw notFound(`Command ${request.params.command} could not be found.`);
    return json(render(request, found));
  });

  router.on('POST', '/v1/nodes/{node}/commands', async (request) => {
    authorize(request, 'command:create');
    const body = validateCreate(jsonBody(request));
    // Numbers DynamoDB cannot hold exactly are the client's error (400), not a failed write.
    if (body.args !== undefined) assertStorable(body.args, 'command');
    const { node } = await resolveNode(deps, request.params.node as string);
    const command = await conductor().sendCommand({
      node: node.uuid,
      site: node.conductor_group,
      action: body.action,
      ...(body.args !== undefined ? { args: body.args } : {}),
      ...(body.deadline_seconds !== undefined ? { deadlineSeconds: body.deadline_seconds } : {}),
      requestedBy: (request.principal as Principal | undefined)?.name ?? null,
    });
    return json(render(request, command), 202, {
      Location: `${request.baseUrl}/v1/nodes/${node.uuid}/commands/${command.id}`,
    });
  });
}
