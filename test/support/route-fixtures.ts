/**
 * One of every object the API's routes name, for tests generated from the router's own
 * route table (authz-matrix, hostile-input): a node owned by p1 (and leased if asked), in
 * a chassis, with a trait, a portgroup, a port, a volume connector and target, an
 * allocation, a deploy template and an image; and `fill`, which puts them into a route's
 * path parameters.
 */
import type { Router } from '../../lambda/http/router.ts';
import { startApi, type TestApi } from './api.ts';

export interface ObjectFixtures {
  /** Object ids by path parameter name (node, port, portgroup, chassis ...). */
  readonly ids: Record<string, string>;
  /** The trait set on the node. */
  readonly trait: string;
}

/** An admin call that throws on anything but success, answering the body. */
export type AdminCall = (method: string, path: string, body?: unknown) => Promise<any>;

export function adminCall(api: TestApi): AdminCall {
  return async (method, path, body) => {
    const result = await api.call(method, path, body === undefined ? {} : { body });
    if (result.status >= 300)
      throw new Error(`${method} ${path}: ${result.status} ${JSON.stringify(result.body)}`);
    return result.body;
  };
}

/**
 * Creates the objects, their names tagged with `tag` and their MAC addresses under
 * `52:54:00:<macByte>:00:xx`, so two test files never claim the same unique values.
 */
export async function createObjectFixtures(
  admin: AdminCall,
  options: { tag: string; macByte: string; lessee?: string },
): Promise<ObjectFixtures> {
  const { tag, macByte } = options;
  const trait = `CUSTOM_${tag.toUpperCase()}`;
  const ids: Record<string, string> = {};
  ids.chassis = (await admin('POST', '/v1/chassis', { description: tag })).uuid;
  ids.node = (
    await admin('POST', '/v1/nodes', {
      name: `${tag}-node`,
      driver: 'fake-hardware',
      owner: 'p1',
      ...(options.lessee ? { lessee: options.lessee } : {}),
      chassis_uuid: ids.chassis,
    })
  ).uuid;
  await admin('PUT', `/v1/nodes/${ids.node}/traits/${trait}`);
  ids.portgroup = (
    await admin('POST', '/v1/portgroups', {
      node_uuid: ids.node,
      name: `${tag}-pg`,
      address: `52:54:00:${macByte}:00:01`,
    })
  ).uuid;
  ids.port = (
    await admin('POST', '/v1/ports', {
      node_uuid: ids.node,
      portgroup_uuid: ids.portgroup,
      address: `52:54:00:${macByte}:00:02`,
    })
  ).uuid;
  ids.connector = (
    await admin('POST', '/v1/volume/connectors', {
      node_uuid: ids.node,
      type: 'iqn',
      connector_id: `iqn.2026-01.org.example:${tag}`,
    })
  ).uuid;
  ids.target = (
    await admin('POST', '/v1/volume/targets', {
      node_uuid: ids.node,
      volume_type: 'iscsi',
      boot_index: 0,
      volume_id: `${tag}-volume`,
    })
  ).uuid;
  ids.allocation = (
    await admin('POST', '/v1/allocations', { resource_class: `${tag}-rc`, owner: 'p1' })
  ).uuid;
  ids.template = (
    await admin('POST', '/v1/deploy_templates', {
      name: `CUSTOM_${tag.toUpperCase()}_TEMPLATE`,
      steps: [{ interface: 'deploy', step: `${tag}_step`, args: {}, priority: 10 }],
    })
  ).uuid;
  ids.image = (
    await admin('POST', '/v1/images', {
      name: `${tag}-image`,
      kind: 'iso',
      files: [{ role: 'iso', size: 4, sha256: '0'.repeat(64) }],
    })
  ).uuid;
  ids.webhook = (await admin('POST', '/v1/webhooks', { url: `https://hooks.example.com/${tag}` })).id;
  const history = await admin('GET', `/v1/nodes/${ids.node}/history`);
  ids.event = history.history?.[0]?.uuid ?? '00000000-0000-4000-8000-000000000001';
  return { ids, trait };
}

/** Values of the path parameters: the fixtures', and the few names that are not objects. */
export function pathParams(
  fixtures: ObjectFixtures,
  others: { tag: string; hostname: () => string; user: () => string; site: () => string },
): Record<string, () => string> {
  const id = (name: string) => () => fixtures.ids[name] as string;
  return {
    node: id('node'),
    trait: () => fixtures.trait,
    port: id('port'),
    portgroup: id('portgroup'),
    chassis: id('chassis'),
    allocation: id('allocation'),
    template: id('template'),
    connector: id('connector'),
    target: id('target'),
    setting: () => `${others.tag}_setting`,
    event: id('event'),
    driver: () => 'fake-hardware',
    hostname: others.hostname,
    user: others.user,
    token: () => `mpt_${others.tag}_no_such_token`,
    site: others.site,
    image: id('image'),
    role: () => 'iso',
    command: () => '00000000-0000-4000-8000-000000000002',
    audit: () => '00000000-0000-7000-8000-000000000003',
    vif_id: () => `${others.tag}-vif`,
    indicator: () => 'led@system',
    webhook: id('webhook'),
  };
}

/** A route's path with its parameters filled; throws on a parameter without a value. */
export function fillPath(pattern: string, params: Record<string, () => string>): string {
  return pattern.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (!value) throw new Error(`no value for {${name}} in ${pattern}`);
    return encodeURIComponent(value());
  });
}

/** Every (method, path pattern) the router serves. */
export function routesOf(router: Router | undefined): Array<{ method: string; pattern: string }> {
  if (!router) throw new Error('router not captured');
  return router.patterns().flatMap(({ pattern, methods }) => methods.map((method) => ({ method, pattern })));
}

export interface FuzzTarget {
  readonly api: TestApi;
  readonly router: Router | undefined;
  readonly admin: AdminCall;
  readonly fixtures: ObjectFixtures;
  /** Path parameters filled with the fixtures (`fillPath`). */
  readonly params: Record<string, () => string>;
}

/**
 * The real api (HTTP Basic) for a fuzzer: the per-credential rate limit off (thousands of
 * requests from one admin; it is not under test), a member user `<tag>-user` that
 * generated requests may change (never the admin they authenticate as), and the objects.
 */
export async function startFuzzTarget(tag: string, macByte: string): Promise<FuzzTarget> {
  process.env.METALPLANE_RATE_LIMIT_RPS = '0';
  let router: Router | undefined;
  const api = await startApi({
    auth: 'basic',
    extend: (built) => {
      router = built;
    },
  });
  const admin = adminCall(api);
  await admin('POST', '/v1/users', {
    name: `${tag}-user`,
    password: `${tag}-password-${api.prefix}`,
    role: 'member',
    project: 'p3',
  });
  const fixtures = await createObjectFixtures(admin, { tag, macByte });
  const params = pathParams(fixtures, {
    tag,
    hostname: () => `${tag}-agent`,
    user: () => `${tag}-user`,
    site: () => api.site,
  });
  return { api, router, admin, fixtures, params };
}
