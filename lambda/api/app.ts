/**
 * The api Lambda's core: Ironic's v1 REST API (and Metalplane's own resources) behind API
 * Gateway's HTTP API: the router, the audit trail, and the API's middleware stack
 * (`createApi`). Its entry point is `lambda/entrypoints/api.ts`, which the local stack
 * serves too (`local/http-gateway.ts`).
 */
import type { Logger } from '@aws-lambda-powertools/logger';
import { auditTable } from '../../infra/resources.ts';
import { AuditRepository } from '../adapters/dynamo/audit-repository.ts';
import { documentClient, tableFromEnv } from '../adapters/dynamo/client.ts';
import { type ConfigSource, environmentConfig } from '../config.ts';
import { type AuditRecorder, createApiHandler } from '../http/middlewares.ts';
import { json } from '../http/request.ts';
import { Router } from '../http/router.ts';
import { authorize } from './access.ts';
import { authenticatorFromEnv } from './authentication.ts';
import { type Dependencies, dependenciesFromEnv } from './dependencies.ts';
import { openApiDocument } from './openapi.ts';
import { registerAgentRoutes } from './routes/agents.ts';
import { registerAllocationRoutes } from './routes/allocations.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerBiosRoutes } from './routes/bios.ts';
import { registerChassisRoutes } from './routes/chassis.ts';
import { registerCommandRoutes } from './routes/commands.ts';
import { registerDeployTemplateRoutes } from './routes/deploy-templates.ts';
import { registerDriverRoutes } from './routes/drivers.ts';
import { registerHistoryRoutes } from './routes/history.ts';
import { registerImageRoutes } from './routes/images.ts';
import { registerIndicatorRoutes } from './routes/indicators.ts';
import { registerInventoryRoutes } from './routes/inventory.ts';
import { registerNodeRoutes } from './routes/nodes.ts';
import { registerPortRoutes } from './routes/ports.ts';
import { registerPowerRoutes } from './routes/power.ts';
import { registerProvisionRoutes } from './routes/provision.ts';
import { registerSiteRoutes } from './routes/sites.ts';
import { registerUserRoutes } from './routes/users.ts';
import { registerVersionRoutes } from './routes/versions.ts';
import { registerVifRoutes } from './routes/vifs.ts';
import { registerVolumeRoutes } from './routes/volume.ts';
import { registerWebhookRoutes } from './routes/webhooks.ts';

/**
 * The audit trail's repository, from the configuration (`METALPLANE_AUDIT_TABLE`, and
 * `METALPLANE_AUDIT_RETENTION_DAYS`), both read at first use.
 */
export function auditRepositoryFromEnv(config: ConfigSource = environmentConfig): AuditRepository {
  return new AuditRepository(
    documentClient(),
    () => tableFromEnv(auditTable.envVar, config),
    () => config().audit.retentionDays,
  );
}

/** What the api Lambda's middleware records each change with (`auditTrail`). */
export function auditRecorder(audit: AuditRepository): AuditRecorder {
  return (record) => audit.put(record);
}

export function buildRouter(deps: Dependencies, audit: AuditRepository = auditRepositoryFromEnv()): Router {
  const router = new Router();
  registerVersionRoutes(router);
  registerNodeRoutes(router, deps);
  registerPortRoutes(router, deps);
  registerChassisRoutes(router, deps);
  registerAllocationRoutes(router, deps);
  registerDeployTemplateRoutes(router, deps);
  registerVolumeRoutes(router, deps);
  registerVifRoutes(router, deps);
  registerBiosRoutes(router, deps);
  registerInventoryRoutes(router, deps);
  registerHistoryRoutes(router, deps);
  registerDriverRoutes(router, deps);
  registerUserRoutes(router, deps);
  registerSiteRoutes(router, deps);
  registerAgentRoutes(router, deps);
  registerCommandRoutes(router, deps);
  registerImageRoutes(router, deps);
  registerPowerRoutes(router, deps);
  registerIndicatorRoutes(router, deps);
  registerProvisionRoutes(router, deps);
  registerAuditRoutes(router, audit);
  registerWebhookRoutes(router, deps);
  router.on('GET', '/v1/openapi.json', async (request) => {
    // The API's description is for its users (any role that may list nodes); an agent
    // credential reaches its own site's routes only.
    authorize(request, 'node:list');
    return json(openApiDocument(router, request.baseUrl));
  });
  return router;
}

/**
 * The whole API on one configuration: the router behind the API's middlewares
 * (`createApiHandler`: errors, version headers, the audit trail), authenticated as the
 * configuration says.
 */
export function createApi(config: ConfigSource, logger: Logger) {
  const deps = dependenciesFromEnv(config);
  const audit = auditRepositoryFromEnv(config);
  return createApiHandler(
    buildRouter(deps, audit),
    logger,
    authenticatorFromEnv(deps, config()),
    auditRecorder(audit),
  );
}
