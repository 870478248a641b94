/**
 * The agent channel's message handling, shared by both transports: the WebSocket
 * (`handler.ts`, `$default`) and the HTTPS fallback (`POST /v1/agent/messages`,
 * `GET /v1/agent/commands` in `api/routes/agents.ts`). Same messages
 * (`protocol/messages.ts`), same checks, same effects.
 *
 * A message is parsed and validated first; a malformed one, or one naming what is not
 * the agent's (another hostname, another site's command), is refused and logged and
 * nothing is done with it.
 */

import {
  type AgentMessage,
  ProtocolError,
  parseAgentMessage,
  type ServerMessage,
} from '../../protocol/messages.ts';
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
  /** Refused (malformed: 400; not the agent's: 403), never acted on. */
  | { readonly kind: 'refused'; readonly status: 400 | 403; readonly reply: ServerMessage };

const refuse = (status: 400 | 403, message: string): MessageOutcome => ({
  kind: 'refused',
  status,
  reply: { v: 1, type: 'error', message },
});

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
      await touch(runtime, agent, (record, stamp) => ({
        ...record,
        drivers: [...new Set(message.drivers)].sort(),
        agent_version: message.agent_version,
        last_heartbeat: stamp,
        updated_at: stamp,
      }));
      return { kind: 'handled' };
    }
    case 'heartbeat':
      await touch(runtime, agent, (record, stamp) => ({ ...record, last_heartbeat: stamp }));
      return { kind: 'handled' };
    case 'pull': {
      const commands = await runtime.queue.receive(agent.site, { max: message.max });
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

async function touch(
  runtime: AgentRuntime,
  agent: AgentIdentity,
  change: (record: AgentRecord, stamp: string) => AgentRecord,
): Promise<void> {
  const stamp = ironicTimestamp(runtime.now());
  const updated = await runtime.credentials.agents.modify(agent.hostname, (record) => change(record, stamp));
  if (!updated) throw new ChannelRefusal(`agent ${agent.hostname} is not enrolled`);
}
