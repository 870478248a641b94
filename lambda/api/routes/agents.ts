/**
 * Agents: enrollment, credentials, and the HTTPS side of the agent channel.
 *
 * Operators (admin; readers may look):
 *   POST   /v1/sites/{site}/agents          a one-time enrollment token (15 min)
 *   GET    /v1/agents[?site=]               the agents (also shown as conductors)
 *   GET    /v1/agents/{hostname}            one agent, its credentials (no secrets), sockets
 *   DELETE /v1/agents/{hostname}            revoke everything, close its sockets, forget it
 *   POST   /v1/agents/{hostname}/credentials  rotate: a new credential; the older ones
 *                                           work 10 more minutes, or until the new one is
 *                                           used (the agent itself may rotate its own)
 *   DELETE /v1/agents/{hostname}/credentials  revoke all, at once (sockets closed)
 *
 * The agent (no user credential):
 *   POST   /v1/agents/enroll                body {token, hostname, drivers, agent_version?}
 *                                           → 201 {credential (shown once), hostname, site,
 *                                           websocket_url?, ...}
 *
 * The agent, with its credential (`Authorization: Bearer mpa_...`), its own site only:
 *   GET    /v1/agent/commands?wait=0..20&max=1..10   long poll: a `commands` message
 *   POST   /v1/agent/messages               one agent message (`protocol/messages.ts`),
 *                                           handled as on the WebSocket: 200 with the reply
 *                                           (`pull` → `commands`), 204 when there is none,
 *                                           400 malformed / 403 not the agent's (an Ironic
 *                                           error body; nothing is done)
 *   GET    /v1/agent/nodes/{node}           a node of its site, secrets unmasked (to drive
 *                                           its BMC); another site's node does not exist
 *   GET    /v1/agent/site                   its site's discovery setting, images as UUIDs
 *   POST   /v1/agent/discoveries            body {boot_mac, inventory}: a machine discovered
 *                                           at its site → 201 created / 200 known node;
 *                                           409 discovery off, 400 invalid (protocol/discovery.ts)
 */
import {
  AGENT_DISCOVERIES_PATH,
  AGENT_SITE_PATH,
  schemaError,
  validateDiscoveryReport,
} from '../../../protocol/discovery.ts';
import { isSupportedProtocol, missingFeatures } from '../../../protocol/versions.ts';
import { ChannelRefusal } from '../../adapters/command-queue.ts';
import { ImageRepository } from '../../adapters/dynamo/image-repository.ts';
import { NodeInventoryRepository } from '../../adapters/dynamo/node-inventory-repository.ts';
import { PortRepository } from '../../adapters/dynamo/port-repository.ts';
import {
  handleAgentMessage,
  receiveFor,
  recordedProtocol,
  UnsupportedProtocol,
} from '../../agents/channel.ts';
import type { AgentIdentity } from '../../agents/credentials.ts';
import { agentSiteView, discoverNode } from '../../conductor/discovery.ts';
import { ENROLL_SCHEMA, isCredentialUsable, publicCredential } from '../../domain/agents/agent.ts';
import { canAgentAccessSite } from '../../domain/auth/policy.ts';
import { openSecrets, type SecretSealer } from '../../domain/auth/sealing.ts';
import { type AgentRecord, isAlive } from '../../domain/conductors.ts';
import { DomainError, forbidden, invalid, notFound } from '../../domain/errors.ts';
import { isUuidLike } from '../../domain/identifiers.ts';
import type { Node } from '../../domain/nodes/node.ts';
import { renderNode } from '../../domain/nodes/render.ts';
import { isSynced } from '../../domain/power/sync.ts';
import { validator } from '../../domain/schema.ts';
import { validateSiteName } from '../../domain/sites/site.ts';
import { ApiError } from '../../http/errors.ts';
import { resourceLinks } from '../../http/links.ts';
import { MAX_VERSION } from '../../http/microversion.ts';
import { type ApiRequest, json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { type ControlPlane, controlPlaneFor } from '../../runtime.ts';
import { authorize, type Principal } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';
import { resolveNode } from './nodes.ts';

export const AGENT_OPERATIONS: Record<string, OperationDoc> = {
  'POST /v1/sites/{site}/agents': {
    summary: 'Mint a one-time enrollment token for an agent of the site (admin)',
    tag: 'agents',
    status: 201,
  },
  'POST /v1/agents/enroll': {
    summary: "Exchange an enrollment token for the agent's credential (shown once)",
    tag: 'agents',
    requestSchema: ENROLL_SCHEMA,
    status: 201,
    public: true,
  },
  'GET /v1/agents': { summary: 'List agents (site filter)', tag: 'agents' },
  'GET /v1/agents/{hostname}': { summary: 'Show an agent, its credentials (no secrets)', tag: 'agents' },
  'DELETE /v1/agents/{hostname}': {
    summary: 'Revoke an agent, close its sockets and delete it (admin)',
    tag: 'agents',
    status: 204,
  },
  'POST /v1/agents/{hostname}/credentials': {
    summary: 'Rotate: a new credential; older ones keep working for a grace period (admin or the agent)',
    tag: 'agents',
    status: 201,
  },
  'DELETE /v1/agents/{hostname}/credentials': {
    summary: "Revoke all of the agent's credentials at once and close its sockets (admin)",
    tag: 'agents',
    status: 204,
  },
  'GET /v1/agent/commands': {
    summary: "Agent long poll: up to max commands of the agent's site, waiting up to wait seconds",
    tag: 'agent channel',
  },
  'POST /v1/agent/messages': {
    summary: 'Agent message (hello, heartbeat, pull, command_ack, command_result, power_report)',
    tag: 'agent channel',
  },
  'GET /v1/agent/nodes/{node}': {
    summary: "A node of the agent's own site, with its secrets (agent only)",
    tag: 'agent channel',
  },
  'GET /v1/agent/nodes': {
    summary: "The agent's site's nodes for the power sync: driver, driver_info, states (agent only)",
    tag: 'agent channel',
  },
  'GET /v1/agent/site': {
    summary: "The agent's site's discovery setting, its images as UUIDs (agent only)",
    tag: 'agent channel',
  },
  'POST /v1/agent/discoveries': {
    summary: "A machine discovered at the agent's site: enrolled as a node in enroll (agent only)",
    tag: 'agent channel',
    status: 201,
  },
};

/** What the power sync needs of a node (and nothing of its instance), its BMC secrets opened. */
async function syncView(node: Node, sealer: SecretSealer) {
  return {
    uuid: node.uuid,
    driver: node.driver,
    driver_info: await openSecrets(node.driver_info, sealer, { node: node.uuid }),
    power_interface: node.power_interface,
    power_state: node.power_state,
    target_power_state: node.target_power_state,
    provision_state: node.provision_state,
    maintenance: node.maintenance,
    fault: node.fault,
    reservation: node.reservation,
    sync: isSynced(node),
  };
}

const validateEnroll = validator<{
  token: string;
  hostname: string;
  drivers: string[];
  agent_version?: string;
}>('enrollment', ENROLL_SCHEMA);

/** The calling agent; anyone else is refused (403). */
function callingAgent(request: ApiRequest): AgentIdentity {
  const principal = request.principal as Principal | undefined;
  if (principal?.kind !== 'agent' || typeof principal.site !== 'string' || principal.site === '') {
    throw forbidden(
      'Access was denied to this resource: this route is for site agents (an agent credential).',
    );
  }
  return { hostname: principal.name, site: principal.site, credentialId: '', credentialExpiresAt: null };
}

function integerParam(
  raw: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw invalid(`Invalid value for ${name}: ${raw}. It must be an integer.`);
  const value = Number(raw);
  if (value < min || value > max)
    throw invalid(`Invalid value for ${name}: ${raw}. It must be from ${min} to ${max}.`);
  return value;
}

/** The agent's protocol, whether this control plane serves it, and what it lacks. */
function versionView(agent: AgentRecord) {
  if (agent.protocol_version == null && agent.last_heartbeat === null) {
    return { protocol_version: null, supported: null, missing_features: [] as string[] };
  }
  const protocol = recordedProtocol(agent);
  return {
    protocol_version: protocol,
    supported: isSupportedProtocol(protocol),
    missing_features: missingFeatures(protocol, agent.features),
  };
}

function renderAgent(request: ApiRequest, agent: AgentRecord) {
  return {
    hostname: agent.hostname,
    site: agent.site,
    drivers: [...agent.drivers],
    agent_version: agent.agent_version ?? null,
    // What its last hello said (docs/upgrades.md); null before the first hello.
    ...versionView(agent),
    alive: isAlive(agent, new Date()),
    last_heartbeat: agent.last_heartbeat,
    created_at: agent.created_at,
    updated_at: agent.updated_at,
    links: resourceLinks(request.baseUrl, 'agents', agent.hostname),
  };
}

export function registerAgentRoutes(
  router: Router,
  deps: Dependencies,
  runtime: ControlPlane | (() => ControlPlane) = () => controlPlaneFor(deps),
): void {
  const channel = typeof runtime === 'function' ? runtime : () => runtime;

  const findAgent = async (hostname: string) => {
    const agent = await channel().credentials.agents.get(hostname);
    if (!agent) throw notFound(`Agent ${hostname} could not be found.`);
    return agent;
  };

  router.on('POST', '/v1/sites/{site}/agents', async (request) => {
    authorize(request, 'agent:enroll');
    const site = validateSiteName(request.params.site);
    if (!(await deps.sites.get(site))) throw notFound(`Site ${site} could not be found.`);
    const principal = request.principal as Principal;
    const { token, record } = await channel().credentials.createEnrollmentToken(site, principal.name);
    return json(
      {
        token,
        site,
        expires_at: record.expires_at,
        enroll_url: `${request.baseUrl}/v1/agents/enroll`,
        command: `metalplane-agent enroll --url ${request.baseUrl} --token ${token}`,
      },
      201,
    );
  });

  router.on('POST', '/v1/agents/enroll', async (request) => {
    const body = validateEnroll(jsonBody(request));
    const { agent, token, credential } = await channel().credentials.enroll({
      token: body.token,
      hostname: body.hostname,
      drivers: body.drivers,
      agentVersion: body.agent_version,
    });
    const websocketUrl = deps.config().webSocket.url;
    return json(
      {
        credential: token,
        credential_id: credential.id,
        hostname: agent.hostname,
        site: agent.site,
        drivers: agent.drivers,
        api_url: request.baseUrl,
        ...(websocketUrl ? { websocket_url: websocketUrl } : {}),
      },
      201,
    );
  });

  router.on('GET', '/v1/agents', async (request) => {
    authorize(request, 'agent:list');
    for (const name of Object.keys(request.query)) {
      if (name !== 'site') throw invalid(`Unknown argument: "${name}"`);
    }
    const site = request.query.site;
    const agents =
      site === undefined
        ? await channel().credentials.agents.all()
        : await channel().credentials.agents.ofSite(validateSiteName(site));
    return json({ agents: agents.map((agent) => renderAgent(request, agent)) });
  });

  router.on('GET', '/v1/agents/{hostname}', async (request) => {
    authorize(request, 'agent:get');
    const agent = await findAgent(request.params.hostname as string);
    const [credentials, sockets] = await Promise.all([
      channel().credentials.agents.credentialsOf(agent.hostname),
      channel().connections.ofSite(agent.site),
    ]);
    const now = new Date();
    return json({
      ...renderAgent(request, agent),
      connections: sockets.filter((socket) => socket.hostname === agent.hostname).length,
      credentials: credentials.map(({ doc }) => ({
        ...publicCredential(doc),
        usable: isCredentialUsable(doc, now),
      })),
    });
  });

  router.on('DELETE', '/v1/agents/{hostname}', async (request) => {
    authorize(request, 'agent:delete');
    const agent = await findAgent(request.params.hostname as string);
    await channel().credentials.deleteAgent(agent.hostname);
    return noContent();
  });

  router.on('POST', '/v1/agents/{hostname}/credentials', async (request) => {
    const hostname = request.params.hostname as string;
    const principal = request.principal as Principal;
    // The agent itself may rotate its own credential; otherwise an admin.
    if (!(principal.kind === 'agent' && principal.name === hostname)) authorize(request, 'agent:credentials');
    const issued = await channel().credentials.rotate(hostname);
    return json(
      {
        credential: issued.token,
        credential_id: issued.credential.id,
        hostname,
        site: issued.credential.site,
        previous_credentials_expire_at: issued.previousExpireAt,
      },
      201,
    );
  });

  router.on('DELETE', '/v1/agents/{hostname}/credentials', async (request) => {
    authorize(request, 'agent:credentials');
    await channel().credentials.revokeAll(request.params.hostname as string);
    return noContent();
  });

  router.on('GET', '/v1/agent/commands', async (request) => {
    const agent = callingAgent(request);
    for (const name of Object.keys(request.query)) {
      if (name !== 'wait' && name !== 'max') throw invalid(`Unknown argument: "${name}"`);
    }
    const waitSeconds = integerParam(request.query.wait, 'wait', 20, 0, 20);
    const max = integerParam(request.query.max, 'max', 10, 1, 10);
    let commands: Awaited<ReturnType<typeof receiveFor>>;
    try {
      commands = await receiveFor(channel(), agent, { max, waitSeconds });
    } catch (error) {
      if (error instanceof UnsupportedProtocol) throw new ApiError(400, error.message);
      if (error instanceof ChannelRefusal) throw new ApiError(403, error.message);
      throw error;
    }
    return json({ v: 1, type: 'commands', commands });
  });

  router.on('POST', '/v1/agent/messages', async (request) => {
    const agent = callingAgent(request);
    const outcome = await handleAgentMessage(channel(), agent, request.body ?? '', 'https');
    if (outcome.kind === 'refused') {
      throw new ApiError(outcome.status, outcome.reply.type === 'error' ? outcome.reply.message : 'refused');
    }
    return outcome.reply ? json(outcome.reply) : noContent();
  });

  router.on('GET', '/v1/agent/nodes', async (request) => {
    const agent = callingAgent(request);
    for (const name of Object.keys(request.query)) {
      if (name !== 'limit' && name !== 'marker') throw invalid(`Unknown argument: "${name}"`);
    }
    const limit = integerParam(request.query.limit, 'limit', 200, 1, 500);
    const marker = request.query.marker;
    if (marker !== undefined && !isUuidLike(marker)) throw invalid(`Invalid marker: ${marker}.`);
    if (marker !== undefined) {
      const found = await deps.nodes.get(marker);
      if (!found || found.node.conductor_group !== agent.site)
        throw notFound(`Node ${marker} could not be found.`);
    }
    const page = await deps.nodes.list({
      limit,
      ...(marker !== undefined ? { markerUuid: marker } : {}),
      sortKey: 'created_at',
      descending: false,
      equals: { conductor_group: agent.site },
    });
    const last = page.nodes.at(-1);
    return json({
      nodes: await Promise.all(page.nodes.map((node) => syncView(node, deps.sealer))),
      ...(page.more && last
        ? { next: `${request.baseUrl}/v1/agent/nodes?limit=${limit}&marker=${last.uuid}` }
        : {}),
    });
  });

  router.on('GET', '/v1/agent/nodes/{node}', async (request) => {
    const agent = callingAgent(request);
    const ident = request.params.node as string;
    const missing = notFound(`Node ${ident} could not be found.`);
    let node: Awaited<ReturnType<typeof resolveNode>>['node'];
    try {
      ({ node } = await resolveNode(deps, ident));
    } catch (error) {
      if (error instanceof DomainError) throw missing;
      throw error;
    }
    // Another site's node does not exist for this agent.
    if (!canAgentAccessSite(request.principal as Principal, node.conductor_group)) throw missing;
    // The agent drives the BMC: it alone gets the secrets (`canSeeSecrets`), opened here.
    const context = { node: node.uuid };
    return json({
      ...renderNode(node, { minor: MAX_VERSION.minor, baseUrl: request.baseUrl, conductor: agent.hostname }),
      driver_info: await openSecrets(node.driver_info, deps.sealer, context),
      instance_info: await openSecrets(node.instance_info, deps.sealer, context),
      driver_internal_info: node.driver_internal_info,
    });
  });

  const images = new ImageRepository(deps.store);
  const discoveryStores = {
    store: deps.store,
    nodes: deps.nodes,
    ports: new PortRepository(deps.store),
    inventories: new NodeInventoryRepository(deps.store),
  };
  const ownSite = async (agent: AgentIdentity) => {
    const site = await deps.sites.get(agent.site);
    if (!site) throw notFound(`Site ${agent.site} could not be found.`);
    return site;
  };

  router.on('GET', AGENT_SITE_PATH, async (request) => {
    const agent = callingAgent(request);
    const site = await ownSite(agent);
    return json(
      await agentSiteView(images, site, (message, fields) => channel().logger.warn(message, fields)),
    );
  });

  router.on('POST', AGENT_DISCOVERIES_PATH, async (request) => {
    const agent = callingAgent(request);
    const body = jsonBody(request);
    if (!validateDiscoveryReport(body)) {
      throw invalid(`Invalid discovery report: ${schemaError(validateDiscoveryReport)}`);
    }
    const site = await ownSite(agent);
    const answer = await discoverNode(discoveryStores, {
      site,
      agent: agent.hostname,
      report: body,
      now: deps.now(),
      newUuid: deps.newUuid,
      minor: MAX_VERSION.minor,
      log: (message, fields) => channel().logger.info(message, { agent: agent.hostname, ...fields }),
    });
    return json(answer, answer.outcome === 'created' ? 201 : 200);
  });
}
