/**
 * The agent channel's message handling, shared by both transports: the WebSocket
 * (`handler.ts`, `$default`) and the HTTPS fallback (`POST /v1/agent/messages`,
 * `GET /v1/agent/commands` in `api/routes/agents.ts`). Same messages
 * (`protocol/messages.ts`), same checks, same effects.
 *
 * A message is parsed and validated first; a malformed one, or one naming what is not
 * the agent's (another hostname, another site's command), is refused and logged and
 * nothing is done with it.
 *
 * Versions (docs/upgrades.md, `protocol/versions.ts`): `hello` says the agent's protocol
 * and features. An agent one protocol behind is served (never sent what it does not
 * know; a command naming an action it lacks is failed here with a clear error instead of
 * being delivered); any other protocol is refused, and the WebSocket closed.
 */

import { isActionName } from '../../protocol/actions.ts';
import {
  type AgentMessage,
  type Command,
  ProtocolError,
  parseAgentMessage,
  type ServerMessage,
} from '../../protocol/messages.ts';
import {
  announcedProtocol,
  hasFeature,
  LEGACY_PROTOCOL,
  missingFeatures,
  OLDEST_SUPPORTED_PROTOCOL,
  PROTOCOL_VERSION,
  protocolRefusal,
  unsupportedActionError,
  unsupportedHelloProtocol,
} from '../../protocol/versions.ts';
import { ChannelRefusal } from '../adapters/command-queue.ts';
import { resumeWaitingDeploys } from '../conductor/deploy-inputs.ts';
import { applyPowerReports } from '../conductor/power-sync.ts';
import type { AgentRecord } from '../domain/conductors.ts';
import { DomainError } from '../domain/errors.ts';
import { ironicTimestamp } from '../domain/time.ts';
import type { ImageCatalog } from '../images/catalog.ts';
import type { ControlPlane } from '../runtime.ts';
import type { AgentIdentity } from './credentials.ts';

/**
 * The control plane as the channel sees it. Its wiring lives in the one composition root,
 * `lambda/runtime.ts`; these names stay for the callers (tests, the chaos harness) that
 * still import them from here.
 */
export type AgentRuntime = ControlPlane;
export type {
  ControlPlaneOptions as AgentRuntimeOptions,
  Provisioning,
} from '../runtime.ts';
export {
  controlPlaneFor as agentRuntimeFor,
  controlPlaneFromEnv as agentRuntimeFromEnv,
  createControlPlane as createAgentRuntime,
} from '../runtime.ts';

export type MessageOutcome =
  /** Handled; `reply` (a `commands` message) goes back to the agent if present. */
  | { readonly kind: 'handled'; readonly reply?: ServerMessage }
  /**
   * Refused (malformed: 400; not the agent's: 403), never acted on. `close`: the agent's
   * protocol is not served: the WebSocket is closed after the reply.
   */
  | {
      readonly kind: 'refused';
      readonly status: 400 | 403;
      readonly reply: ServerMessage;
      readonly close?: boolean;
    };

const refuse = (status: 400 | 403, message: string, close?: boolean): MessageOutcome => ({
  kind: 'refused',
  status,
  reply: { v: 1, type: 'error', message },
  ...(close ? { close } : {}),
});

/** An agent whose protocol is not served: refused (400), its socket closed. */
export class UnsupportedProtocol extends Error {
  override readonly name = 'UnsupportedProtocol';
}

/** The protocols whose agents' heartbeats are taken. */
const SERVED = { oldest: OLDEST_SUPPORTED_PROTOCOL, newest: PROTOCOL_VERSION } as const;

/** The protocol an agent record says its agent speaks (protocol 1 before any `hello` said otherwise). */
export const recordedProtocol = (record: AgentRecord): number => record.protocol_version ?? LEGACY_PROTOCOL;

/** Parses, checks and handles one message from an authenticated agent. */
export async function handleAgentMessage(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  raw: string | Buffer,
  transport: 'websocket' | 'https',
): Promise<MessageOutcome> {
  let message: AgentMessage;
  try {
    message = parseAgentMessage(raw);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    const unsupported = unsupportedHelloProtocol(raw);
    if (unsupported !== undefined) {
      const reason = protocolRefusal(agent, unsupported) as string;
      runtime.logger.warn('agent refused: protocol not served', {
        hostname: agent.hostname,
        site: agent.site,
        transport,
        protocol_version: unsupported,
        reason,
      });
      return refuse(400, reason, true);
    }
    runtime.logger.warn('agent message refused: malformed', {
      hostname: agent.hostname,
      site: agent.site,
      transport,
      reason: error.message,
    });
    return refuse(400, error.message);
  }
  try {
    return await dispatch(runtime, agent, message);
  } catch (error) {
    if (error instanceof UnsupportedProtocol) {
      runtime.logger.warn('agent refused: protocol not served', {
        hostname: agent.hostname,
        site: agent.site,
        transport,
        type: message.type,
        reason: error.message,
      });
      return refuse(400, error.message, true);
    }
    if (!(error instanceof ChannelRefusal)) throw error;
    runtime.logger.warn('agent message refused: unauthorized', {
      hostname: agent.hostname,
      site: agent.site,
      transport,
      type: message.type,
      reason: error.message,
    });
    return refuse(403, error.message);
  }
}

async function dispatch(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  message: AgentMessage,
): Promise<MessageOutcome> {
  switch (message.type) {
    case 'hello': {
      if (message.hostname !== agent.hostname) {
        throw new ChannelRefusal(`hello from ${message.hostname} on the credential of ${agent.hostname}`);
      }
      const protocol = announcedProtocol(message);
      const refusal = protocolRefusal(
        { hostname: agent.hostname, agent_version: message.agent_version },
        protocol,
      );
      const features = message.features ? [...new Set(message.features)].sort() : null;
      // Recorded even when refused: GET /v1/agents shows the agent unsupported (and,
      // without a heartbeat, not alive: no node is routed to it). The heartbeat item
      // learns the protocol: its heartbeats are taken only while it is served.
      await touch(runtime, agent, (record, stamp) => ({
        ...record,
        drivers: [...new Set(message.drivers)].sort(),
        agent_version: message.agent_version,
        protocol_version: protocol,
        features,
        ...(refusal ? {} : { last_heartbeat: stamp }),
        updated_at: stamp,
      }));
      if (refusal) throw new UnsupportedProtocol(refusal);
      const missing = missingFeatures(protocol, features);
      if (protocol < PROTOCOL_VERSION) {
        runtime.logger.warn('agent one protocol behind: served without what it lacks', {
          hostname: agent.hostname,
          site: agent.site,
          agent_version: message.agent_version,
          protocol_version: protocol,
          missing_features: missing,
        });
      }
      if (!hasFeature(protocol, features, 'welcome')) return { kind: 'handled' };
      return {
        kind: 'handled',
        reply: {
          v: 1,
          type: 'welcome',
          protocol_version: PROTOCOL_VERSION,
          oldest_supported_protocol: OLDEST_SUPPORTED_PROTOCOL,
          missing_features: missing,
        },
      };
    }
    case 'heartbeat': {
      // One conditional write of the agent's heartbeat item (1 unit, no read), taken while
      // its protocol is served. Refused (no agent, a protocol no longer served) or not
      // there yet (a connection older than heartbeat items): the record decides, and the
      // heartbeat item is written with it.
      const at = ironicTimestamp(runtime.now());
      if (await runtime.credentials.agents.beat(agent.hostname, at, SERVED)) return { kind: 'handled' };
      await touch(runtime, agent, (record, stamp) => {
        const refusal = protocolRefusal(record, recordedProtocol(record));
        if (refusal) throw new UnsupportedProtocol(refusal);
        return { ...record, last_heartbeat: stamp };
      });
      return { kind: 'handled' };
    }
    case 'pull': {
      const commands = await receiveFor(runtime, agent, { max: message.max });
      return { kind: 'handled', reply: { v: 1, type: 'commands', commands } };
    }
    case 'command_ack':
      await runtime.queue.acknowledge(agent.site, message.command_id);
      return { kind: 'handled' };
    case 'command_result': {
      const { stored, command } = await runtime.queue.complete(agent.site, message);
      if (!stored) {
        runtime.logger.info('result for a finished command: nothing changed', {
          commandId: command.id,
          status: command.status,
          reported: message.status,
        });
      }
      // Held (stored now, or before): the agent may forget it.
      return { kind: 'handled', reply: { v: 1, type: 'result_ack', command_id: command.id } };
    }
    case 'power_report': {
      const outcome = await applyPowerReports(runtime.conductor, agent.site, message.reports);
      runtime.logger.info('power report', {
        hostname: agent.hostname,
        site: agent.site,
        reports: message.reports.length,
        ...outcome,
      });
      if (outcome.foreign > 0) {
        runtime.logger.warn('power report named nodes of another site: ignored', {
          hostname: agent.hostname,
          site: agent.site,
          foreign: outcome.foreign,
        });
      }
      return { kind: 'handled' };
    }
    case 'images_pull': {
      // The agent's own site only, whatever it asks; a cursor it did not get from us is refused.
      let page: Awaited<ReturnType<ImageCatalog['assignments']>>;
      try {
        page = await runtime.images.assignments(agent.site, message.cursor, message.accepts);
      } catch (error) {
        if (error instanceof DomainError && error.kind === 'invalid') throw new ChannelRefusal(error.message);
        throw error;
      }
      return { kind: 'handled', reply: { v: 1, type: 'images', ...page } };
    }
    case 'deploy_callback': {
      const outcome = await runtime.provisioning.provisioner.callback(
        agent.site,
        message.node,
        message.token,
      );
      runtime.logger.info('deploy callback', {
        hostname: agent.hostname,
        site: agent.site,
        node: message.node,
        outcome,
      });
      if (outcome === 'refused') throw new ChannelRefusal(`callback for node ${message.node} refused`);
      return { kind: 'handled' };
    }
    case 'image_report': {
      const { stored, ignored } = await runtime.images.storeReports(agent, message.reports);
      if (message.reports.some((report) => report.state === 'ready')) {
        // Deploys of this site held for an image may go on now.
        await resumeWaitingDeploys(runtime.provisioning.provisioner, runtime.provisioning, agent.site).catch(
          (error: Error) =>
            runtime.logger.error('resuming held deploys failed', { site: agent.site, error: error.message }),
        );
      }
      runtime.logger.info('image report', {
        hostname: agent.hostname,
        site: agent.site,
        reports: message.reports.length,
        stored,
        ignored: ignored.length,
      });
      return { kind: 'handled' };
    }
  }
}

/**
 * Receives up to `max` of the site's commands for this agent (a `pull`, the HTTPS long
 * poll): refused when its protocol is not served; a command naming a catalog action the
 * agent lacks is failed at once ("does not support action …: upgrade the agent") and not
 * delivered. Actions outside the catalog (an admin's) go through: the agent answers them.
 */
export async function receiveFor(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  options: { max: number; waitSeconds?: number },
): Promise<Command[]> {
  const record = await runtime.credentials.agents.get(agent.hostname);
  if (!record) throw new ChannelRefusal(`agent ${agent.hostname} is not enrolled`);
  const protocol = recordedProtocol(record);
  const refusal = protocolRefusal(record, protocol);
  if (refusal) throw new UnsupportedProtocol(refusal);
  const commands = await runtime.queue.receive(agent.site, options);
  const lacking = commands.filter(
    (command) => isActionName(command.action) && !hasFeature(protocol, record.features, command.action),
  );
  if (lacking.length === 0) return commands;
  const finishedAt = runtime.now().toISOString();
  await Promise.all(
    lacking.map(async (command) => {
      const error = unsupportedActionError(record, protocol, command.action);
      runtime.logger.warn('command not delivered: the agent lacks its action', {
        hostname: agent.hostname,
        site: agent.site,
        commandId: command.id,
        node: command.node,
        action: command.action,
        error,
      });
      await runtime.queue.complete(agent.site, {
        command_id: command.id,
        receipt: command.receipt,
        status: 'failed',
        error,
        finished_at: finishedAt,
      });
    }),
  );
  return commands.filter((command) => !lacking.includes(command));
}

async function touch(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  change: (record: AgentRecord, stamp: string) => AgentRecord,
): Promise<void> {
  const stamp = ironicTimestamp(runtime.now());
  const updated = await runtime.credentials.agents.modify(agent.hostname, (record) => change(record, stamp), {
    heartbeat: recordedProtocol,
  });
  if (!updated) throw new ChannelRefusal(`agent ${agent.hostname} is not enrolled`);
}
