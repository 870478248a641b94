/**
 * /v1/drivers and /v1/conductors: hardware types with the agents (conductors) that
 * serve them, in Ironic's shapes, so `baremetal driver list` / `conductor list` work.
 */
import { AgentRepository } from '../../adapters/dynamo/agent-repository.ts';
import { type AgentRecord, hostsFor, isAlive } from '../../domain/conductors.ts';
import { invalid, notFound } from '../../domain/errors.ts';
import { type HardwareType, INTERFACE_NAMES } from '../../domain/hardware/interfaces.ts';
import { hardwareType, hardwareTypes } from '../../domain/hardware/registry.ts';
import { resourceLinks } from '../../http/links.ts';
import { type ApiRequest, json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { authorize } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { parseBoolean } from '../listing.ts';

function driverView(
  request: ApiRequest,
  type: HardwareType,
  agents: readonly AgentRecord[],
  detail: boolean,
) {
  const name = type.name;
  const view: Record<string, unknown> = {
    name,
    hosts: hostsFor(name, agents, new Date()),
    links: resourceLinks(request.baseUrl, 'drivers', name),
    properties: resourceLinks(request.baseUrl, 'drivers', `${name}/properties`),
    type: 'dynamic',
  };
  if (detail && request.version.minor >= 30) {
    for (const iface of INTERFACE_NAMES) {
      if (iface === 'storage' && request.version.minor < 33) continue;
      if (iface === 'rescue' && request.version.minor < 38) continue;
      if (iface === 'bios' && request.version.minor < 40) continue;
      view[`default_${iface}_interface`] = type.interfaces[iface].default;
      view[`enabled_${iface}_interfaces`] = [...type.interfaces[iface].enabled];
    }
  }
  return view;
}

function conductorView(request: ApiRequest, agent: AgentRecord, detail: boolean) {
  const base = {
    hostname: agent.hostname,
    conductor_group: agent.site,
    links: resourceLinks(request.baseUrl, 'conductors', agent.hostname),
    alive: isAlive(agent, new Date()),
  };
  if (!detail) return base;
  return {
    created_at: agent.created_at,
    updated_at: agent.updated_at,
    hostname: agent.hostname,
    conductor_group: agent.site,
    drivers: [...agent.drivers].sort(),
    links: base.links,
    alive: base.alive,
  };
}

function conductorsGate(request: ApiRequest): void {
  if (request.version.minor < 49) throw notFound('The resource could not be found.');
}

export function registerDriverRoutes(router: Router, deps: Dependencies): void {
  const agents = new AgentRepository(deps.store);

  router.on('GET', '/v1/drivers', async (request) => {
    authorize(request, 'driver:get');
    const type = request.query.type;
    if (type !== undefined && type !== 'classic' && type !== 'dynamic') {
      throw invalid(`Invalid type: ${type}. Valid types are "classic" and "dynamic".`);
    }
    const detail = parseBoolean(request.query.detail, 'detail') ?? false;
    const all = await agents.all();
    const types = type === 'classic' ? [] : hardwareTypes.all();
    return json({ drivers: types.map((driver) => driverView(request, driver, all, detail)) });
  });

  router.on('GET', '/v1/drivers/{driver}', async (request) => {
    authorize(request, 'driver:get');
    const name = request.params.driver as string;
    const type = hardwareType(name);
    if (!type) throw notFound(`Could not find the following driver(s) or hardware type(s): ${name}.`);
    return json(driverView(request, type, await agents.all(), true));
  });

  router.on('GET', '/v1/drivers/{driver}/properties', async (request) => {
    authorize(request, 'driver:get');
    const name = request.params.driver as string;
    const type = hardwareType(name);
    if (!type) throw notFound(`Could not find the following driver(s) or hardware type(s): ${name}.`);
    return json({ ...type.properties });
  });

  router.on('GET', '/v1/conductors', async (request) => {
    conductorsGate(request);
    authorize(request, 'conductor:get');
    const detail = parseBoolean(request.query.detail, 'detail') ?? false;
    const all = (await agents.all()).sort((a, b) => a.hostname.localeCompare(b.hostname));
    return json({ conductors: all.map((agent) => conductorView(request, agent, detail)) });
  });

  router.on('GET', '/v1/conductors/{hostname}', async (request) => {
    conductorsGate(request);
    authorize(request, 'conductor:get');
    const agent = await agents.get(request.params.hostname as string);
    if (!agent) throw notFound(`Conductor ${request.params.hostname} could not be found.`);
    return json(conductorView(request, agent, true));
  });
}
