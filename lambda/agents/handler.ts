/**
 * The agents Lambda: API Gateway WebSocket routes ($connect, $disconnect, $default)
 * through which site agents receive commands and report results.
 *
 * Agent enrollment and credentials do not exist yet, so no credential can be valid:
 * every connection is refused with 401 before the upgrade, and nothing else is routed.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyResultV2, APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';

const logger = new Logger({ serviceName: 'metalplane-agents' });

export async function handler(event: APIGatewayProxyWebsocketEventV2): Promise<APIGatewayProxyResultV2> {
  const { routeKey, connectionId } = event.requestContext;
  if (routeKey === '$disconnect') return { statusCode: 200 };
  logger.warn('agent connection refused: no agent credential is valid yet', { routeKey, connectionId });
  return { statusCode: routeKey === '$connect' ? 401 : 403 };
}
