/**
 * The agents Lambda's core (its entry point: `lambda/entrypoints/agents.ts`): API Gateway WebSocket routes through which site agents receive
 * commands and report results, heartbeats and power states.
 *
 * - `$connect` authenticates the agent credential from the `Authorization: Bearer
 *   mpa_...` header (401 otherwise, before the upgrade) and records the connection for
 *   its site. The credential is accepted in that header only, never in the query string:
 *   URLs end up in access logs and proxies' histories, and the agent (not a browser) can
 *   always set a header.
 * - `$disconnect` forgets the connection.
 * - `$default` carries every agent message (`protocol/messages.ts`): the connection
 *   record says who is speaking (it is deleted when the agent's credentials are revoked,
 *   so the next message is refused at once, and the socket closed), then `channel.ts`
 *   handles it. A `pull` is answered with the `commands` message as the route response
 *   (the stack configures the route to return one); a refused message with an `error`;
 *   a message on a connection whose credential is gone with an `error`, and the socket
 *   is closed. An agent whose protocol is not served (`channel.ts`) is told why with an
 *   `error`, and its socket closed.
 */
import type { APIGatewayProxyResultV2, APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { publishEvent } from '../adapters/events.ts';
import { metrics } from '../observability/metrics.ts';
import type { ControlPlane } from '../runtime.ts';
import { handleAgentMessage } from './channel.ts';

export type AgentsEvent = APIGatewayProxyWebsocketEventV2 & {
  readonly headers?: Record<string, string | undefined>;
};

function header(event: AgentsEvent, name: string): string | undefined {
  for (const [key, value] of Object.entries(event.headers ?? {})) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

function bearer(value: string | undefined): string | undefined {
  const match = /^[ \t]*Bearer[ \t]+(\S+)[ \t]*$/i.exec(value ?? '');
  return match?.[1];
}

const reply = (message: unknown): APIGatewayProxyResultV2 => ({
  statusCode: 200,
  body: JSON.stringify(message),
});

export function createAgentsHandler(runtime: ControlPlane | (() => ControlPlane)) {
  const resolve = typeof runtime === 'function' ? runtime : () => runtime;
  return async (event: AgentsEvent): Promise<APIGatewayProxyResultV2> => {
    const channel = resolve();
    const { routeKey, connectionId } = event.requestContext;
    const log = channel.logger;

    if (routeKey === '$connect') {
      const identity = await channel.credentials.authenticate(bearer(header(event, 'authorization')));
      if (!identity) {
        log.warn('agent connection refused: no valid agent credential', { connectionId });
        return { statusCode: 401 };
      }
      await channel.connections.put({
        connectionId,
        site: identity.site,
        hostname: identity.hostname,
        credentialId: identity.credentialId,
        credentialExpiresAt: identity.credentialExpiresAt,
        connectedAt: channel.now().toISOString(),
      });
      log.info('agent connected', { connectionId, hostname: identity.hostname, site: identity.site });
      metrics.agentConnected(identity.site);
      await publishEvent('agent.connected', identity.site, {
        hostname: identity.hostname,
        connection_id: connectionId,
      });
      return { statusCode: 200 };
    }

    if (routeKey === '$disconnect') {
      const connection = await channel.connections.get(connectionId);
      if (connection) await channel.connections.delete(connection);
      if (connection) metrics.agentDisconnected(connection.site);
      if (connection) {
        await publishEvent('agent.disconnected', connection.site, {
          hostname: connection.hostname,
          connection_id: connectionId,
        });
      }
      return { statusCode: 200 };
    }

    const connection = await channel.connections.get(connectionId);
    const now = channel.now().toISOString();
    if (!connection || (connection.credentialExpiresAt !== null && connection.credentialExpiresAt <= now)) {
      log.warn('agent message refused: the connection has no valid credential', { connectionId });
      if (connection) await channel.connections.delete(connection);
      // Said before the socket is closed (a route response would come after the close).
      const refusal = JSON.stringify({
        v: 1,
        type: 'error',
        message: 'The credential of this connection is revoked or expired.',
      });
      await channel.notifier.post(connectionId, refusal).catch(() => undefined);
      await channel.notifier.close(connectionId).catch(() => undefined);
      return { statusCode: 403 };
    }
    const outcome = await handleAgentMessage(
      channel,
      {
        hostname: connection.hostname,
        site: connection.site,
        credentialId: connection.credentialId,
        credentialExpiresAt: connection.credentialExpiresAt,
      },
      event.body ?? '',
      'websocket',
    );
    if (outcome.kind === 'refused' && outcome.close) {
      // A protocol this control plane does not serve: said, then the socket is closed.
      await channel.connections.delete(connection);
      await channel.notifier.post(connectionId, JSON.stringify(outcome.reply)).catch(() => undefined);
      await channel.notifier.close(connectionId).catch(() => undefined);
      return { statusCode: 400 };
    }
    return outcome.reply ? reply(outcome.reply) : { statusCode: 200 };
  };
}
