/**
 * Pushes to agents' WebSocket connections, and closes them, through API Gateway's
 * `@connections` management API (`@aws-sdk/client-apigatewaymanagementapi`), whose
 * endpoint comes from `METALPLANE_WS_MANAGEMENT_ENDPOINT` (the stage's callback URL on
 * AWS, the local WebSocket gateway's `managementEndpoint` locally).
 *
 * A connection API Gateway no longer knows answers 410 GoneException: `gone`, so the
 * caller can forget it. Without an endpoint nothing is pushed (`unavailable`): the agent
 * still drains its queue when it pulls, only later.
 */
import type { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { clientApiGatewayManagement } from './aws-sdk.ts';

export type PushOutcome = 'sent' | 'gone' | 'unavailable';

export class ConnectionNotifier {
  private readonly endpoint: () => string | undefined;
  private client: ApiGatewayManagementApiClient | undefined;
  private clientEndpoint: string | undefined;

  /** `endpoint`: the configuration's `webSocket.managementEndpoint` (read at each push). */
  constructor(endpoint: string | (() => string | undefined)) {
    this.endpoint = typeof endpoint === 'string' ? () => endpoint : endpoint;
  }

  private async api(): Promise<ApiGatewayManagementApiClient | undefined> {
    const endpoint = this.endpoint();
    if (!endpoint) return undefined;
    // The SDK is loaded at the first push (issue 18); the client is then built synchronously, once per endpoint.
    const { ApiGatewayManagementApiClient } = await clientApiGatewayManagement();
    if (!this.client || this.clientEndpoint !== endpoint) {
      this.client?.destroy();
      this.client = new ApiGatewayManagementApiClient({
        endpoint,
        maxAttempts: 2,
        requestHandler: { requestTimeout: 3000, connectionTimeout: 1000 },
      });
      this.clientEndpoint = endpoint;
    }
    return this.client;
  }

  async post(connectionId: string, data: string): Promise<PushOutcome> {
    const api = await this.api();
    if (!api) return 'unavailable';
    try {
      await api.send(
        new (await clientApiGatewayManagement()).PostToConnectionCommand({
          ConnectionId: connectionId,
          Data: data,
        }),
      );
      return 'sent';
    } catch (error) {
      if (isGone(error)) return 'gone';
      throw error;
    }
  }

  async close(connectionId: string): Promise<PushOutcome> {
    const api = await this.api();
    if (!api) return 'unavailable';
    try {
      await api.send(
        new (await clientApiGatewayManagement()).DeleteConnectionCommand({ ConnectionId: connectionId }),
      );
      return 'sent';
    } catch (error) {
      if (isGone(error)) return 'gone';
      throw error;
    }
  }
}

function isGone(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'GoneException' || $metadata?.httpStatusCode === 410;
}
