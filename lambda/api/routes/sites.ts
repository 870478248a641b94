/**
 * /v1/sites: Metalplane's datacenters, Ironic's `conductor_group`s. Creating a site
 * creates its SQS FIFO command queue (dead-lettering to the commands DLQ) and records its
 * URL; deleting one is refused while nodes or agents belong to it, and deletes the queue.
 * One site may be the default: the site of nodes created without `conductor_group`.
 *
 * Admins create, change and delete sites; readers see them.
 */

import { AgentRepository } from '../../adapters/dynamo/agent-repository.ts';
import { ImageRepository } from '../../adapters/dynamo/image-repository.ts';
import { siteHasNodes } from '../../adapters/dynamo/site-repository.ts';
import { checkDiscoveryImages } from '../../conductor/discovery.ts';
import { conflict, notFound } from '../../domain/errors.ts';
import { applyPatch, checkPatchAllowed, PATCH_SCHEMA, validatePatch } from '../../domain/json-patch.ts';
import { validator } from '../../domain/schema.ts';
import type { Site, SiteCleaning, SiteDiscovery } from '../../domain/sites/site.ts';
import {
  CLEANING_DEFAULT,
  DISCOVERY_OFF,
  normalizeCleaning,
  normalizeDiscovery,
  SITE_CREATE_SCHEMA,
  SITE_PATCHABLE_FIELDS,
  SITE_VIEW_SCHEMA,
  validateSiteName,
} from '../../domain/sites/site.ts';
import { resourceLinks } from '../../http/links.ts';
import { type ApiRequest, json, noContent } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';
import { type ConductorAccess, controlPlaneFor, type ImageAccess } from '../../runtime.ts';
import { authorize } from '../access.ts';
import type { Dependencies } from '../dependencies.ts';
import { jsonBody, parseLimit } from '../listing.ts';
import type { OperationDoc } from '../operation-doc.ts';

/** The API description of these routes, for `OPERATIONS` in `../openapi.ts`. */
export const SITE_OPERATIONS: Record<string, OperationDoc> = {
  'GET /v1/sites': { summary: 'List sites (limit/marker by name)', tag: 'sites' },
  'POST /v1/sites': {
    summary: 'Create a site and its command queue (admin)',
    tag: 'sites',
    requestSchema: SITE_CREATE_SCHEMA,
    status: 201,
  },
  'GET /v1/sites/{site}': { summary: 'Show a site', tag: 'sites' },
  'PATCH /v1/sites/{site}': {
    summary:
      'Update description, location, default, discovery or cleaning with an RFC 6902 JSON Patch (admin)',
    tag: 'sites',
    requestSchema: PATCH_SCHEMA,
  },
  'DELETE /v1/sites/{site}': {
    summary: 'Delete a site without nodes or agents, and its command queue (admin)',
    tag: 'sites',
    status: 204,
  },
};

const validateCreate = validator<{
  name: string;
  description?: string | null;
  location?: string | null;
  default?: boolean;
  discovery?: Partial<SiteDiscovery>;
  cleaning?: Partial<SiteCleaning>;
}>('site', SITE_CREATE_SCHEMA);

const validateView = validator<{
  description: string | null;
  location: string | null;
  default: boolean;
  discovery?: Partial<SiteDiscovery>;
  cleaning?: Partial<SiteCleaning>;
}>('site', SITE_VIEW_SCHEMA);

function render(request: ApiRequest, site: Site, isDefault: boolean) {
  return {
    name: site.name,
    description: site.description,
    location: site.location,
    default: isDefault,
    queue_url: site.queue_url ?? null,
    discovery: { ...(site.discovery ?? DISCOVERY_OFF) },
    cleaning: { ...(site.cleaning ?? CLEANING_DEFAULT) },
    created_at: site.created_at,
    updated_at: site.updated_at,
    links: resourceLinks(request.baseUrl, 'sites', site.name),
  };
}

export function registerSiteRoutes(
  router: Router,
  deps: Dependencies,
  runtime: (ConductorAccess & Partial<ImageAccess>) | (() => ConductorAccess & Partial<ImageAccess>) = () =>
    controlPlaneFor(deps),
): void {
  const conductor = typeof runtime === 'function' ? () => runtime().service : () => runtime.service;
  const catalog = typeof runtime === 'function' ? () => runtime().images : () => runtime.images;
  const agents = new AgentRepository(deps.store);
  const images = new ImageRepository(deps.store);

  /** The setting with its defaults, its images checked (400 otherwise: nothing is written). */
  const checkDiscovery = async (site: string, value: Partial<SiteDiscovery> | null | undefined) => {
    const discovery = normalizeDiscovery(value);
    if (discovery.enabled) await checkDiscoveryImages(images, site, discovery);
    return discovery;
  };
  /** The site's agent reads the setting again (`GET /v1/agent/site`) on an images wake. */
  const wakeAgents = async (site: string) => {
    await catalog()?.wake([site]);
  };

  const find = async (name: string) => {
    const found = await deps.sites.getVersioned(name);
    if (!found) throw notFound(`Site ${name} could not be found.`);
    return found;
  };

  router.on('GET', '/v1/sites', async (request) => {
    authorize(request, 'site:list');
    const limit = parseLimit(request.query.limit);
    const [page, fallback] = await Promise.all([
      deps.sites.list(limit, request.query.marker),
      deps.sites.defaultSite(),
    ]);
    const body: Record<string, unknown> = {
      sites: page.sites.map((site) => render(request, site, site.name === fallback)),
    };
    const last = page.sites.at(-1);
    if (page.more && last) {
      body.next = `${request.baseUrl}/v1/sites?limit=${limit}&marker=${encodeURIComponent(last.name)}`;
    }
    return json(body);
  });

  router.on('POST', '/v1/sites', async (request) => {
    authorize(request, 'site:create');
    const body = validateCreate(jsonBody(request));
    const name = validateSiteName(body.name);
    if (await deps.sites.get(name)) throw conflict(`A site with name ${name} already exists.`);
    const discovery = await checkDiscovery(name, body.discovery);
    // The queue first: a site is never without its queue (an orphan queue from a failed
    // creation is found again, idempotently, by the next creation of that name).
    const queueUrl = await conductor().createSiteQueue(name);
    const site: Site = {
      name,
      description: body.description ?? null,
      location: body.location ?? null,
      created_at: deps.now(),
      updated_at: null,
      queue_url: queueUrl,
      ...(discovery.enabled || body.discovery !== undefined ? { discovery } : {}),
      ...(body.cleaning !== undefined ? { cleaning: normalizeCleaning(body.cleaning) } : {}),
    };
    await deps.sites.create(site, { makeDefault: body.default === true });
    return json(render(request, site, body.default === true), 201, {
      Location: `${request.baseUrl}/v1/sites/${name}`,
    });
  });

  router.on('GET', '/v1/sites/{site}', async (request) => {
    authorize(request, 'site:get');
    const { site } = await find(request.params.site as string);
    return json(render(request, site, (await deps.sites.defaultSite()) === site.name));
  });

  router.on('PATCH', '/v1/sites/{site}', async (request) => {
    authorize(request, 'site:update');
    const { site, version } = await find(request.params.site as string);
    const patch = validatePatch(jsonBody(request));
    checkPatchAllowed(patch, SITE_PATCHABLE_FIELDS);
    const wasDefault = (await deps.sites.defaultSite()) === site.name;
    const before = site.discovery ?? DISCOVERY_OFF;
    const cleaningBefore = site.cleaning ?? CLEANING_DEFAULT;
    const patched = applyPatch(
      {
        description: site.description,
        location: site.location,
        default: wasDefault,
        discovery: { ...before } as Partial<SiteDiscovery>,
        cleaning: { ...cleaningBefore } as Partial<SiteCleaning>,
      },
      patch,
    );
    // `remove` clears a field; an explicit null is a value, checked as any other.
    const view = validateView({
      description: patched.description ?? null,
      location: patched.location ?? null,
      default: patched.default === undefined ? false : patched.default,
      ...(patched.discovery === undefined ? {} : { discovery: patched.discovery }),
      ...(patched.cleaning === undefined ? {} : { cleaning: patched.cleaning }),
    });
    // Everything is checked before anything is written.
    const discovery = await checkDiscovery(site.name, view.discovery);
    const discoveryChanged = JSON.stringify(discovery) !== JSON.stringify(before);
    const cleaning = normalizeCleaning(view.cleaning);
    const cleaningChanged = JSON.stringify(cleaning) !== JSON.stringify(cleaningBefore);
    let updated = site;
    const changed = discoveryChanged || cleaningChanged;
    if (view.description !== site.description || view.location !== site.location || changed) {
      updated = {
        ...site,
        description: view.description,
        location: view.location,
        ...(discoveryChanged ? { discovery } : {}),
        ...(cleaningChanged ? { cleaning } : {}),
        updated_at: deps.now(),
      };
      await deps.sites.update(updated, version);
    }
    if (discoveryChanged) await wakeAgents(site.name);
    if (view.default && !wasDefault) await deps.sites.setDefault(site.name);
    if (!view.default && wasDefault) await deps.sites.clearDefault(site.name);
    return json(render(request, updated, view.default));
  });

  router.on('DELETE', '/v1/sites/{site}', async (request) => {
    authorize(request, 'site:delete');
    const name = request.params.site as string;
    const { site, version } = await find(name);
    const nodes = await deps.store.query({
      index: 'bySite',
      partitionAttribute: 'sitePk',
      partitionValue: `node#${name}`,
      sortAttribute: 'listSk',
      limit: 1,
    });
    // The index finds nodes written before sites counted theirs (long indexed); the
    // count, checked in the deleting transaction, the rest (the index may lag behind).
    if (nodes.items.length > 0) throw siteHasNodes(name);
    const enrolled = await agents.ofSite(name);
    if (enrolled.length > 0) {
      const hostnames = enrolled.map((agent) => agent.hostname).join(', ');
      throw conflict(
        `Site ${name} still has agents (${hostnames}): delete them first (DELETE /v1/agents/{hostname}).`,
      );
    }
    await deps.sites.delete(name, version);
    await conductor().deleteSiteQueue(name, site.queue_url);
    return noContent();
  });
}
