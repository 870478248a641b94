/**
 * `GET /` and `GET /v1`: Ironic's version documents, which clients read to discover
 * the API and negotiate a microversion. Both answer without credentials.
 */
import { resourceLinks } from '../../http/links.ts';
import { atLeast, formatVersion, MAX_VERSION, MIN_VERSION } from '../../http/microversion.ts';
import { type ApiRequest, type ApiResponse, json } from '../../http/request.ts';
import type { Router } from '../../http/router.ts';

const DOCS_URL = 'https://docs.openstack.org//ironic/latest/contributor//webapi.html';

function versionSummary(baseUrl: string) {
  return {
    id: 'v1',
    links: [{ href: `${baseUrl}/v1/`, rel: 'self' }],
    status: 'CURRENT',
    min_version: formatVersion(MIN_VERSION),
    version: formatVersion(MAX_VERSION),
  };
}

export async function rootDocument(request: ApiRequest): Promise<ApiResponse> {
  const version = versionSummary(request.baseUrl);
  return json({
    name: 'OpenStack Ironic API',
    description:
      'Ironic is an OpenStack project which enables the provision and management of baremetal machines.',
    default_version: version,
    versions: [version],
  });
}

/** Collections the v1 document advertises, each from the microversion that added it. */
const GATED_COLLECTIONS: ReadonlyArray<readonly [name: string, sinceMinor: number]> = [
  ['portgroups', 23],
  ['volume', 32],
  ['lookup', 22],
  ['heartbeat', 22],
  ['conductors', 49],
  ['allocations', 52],
  ['events', 54],
  ['deploy_templates', 55],
  ['shards', 82],
];

export async function v1Document(request: ApiRequest): Promise<ApiResponse> {
  const { baseUrl, version } = request;
  const document: Record<string, unknown> = {
    id: 'v1',
    links: [
      { href: `${baseUrl}/v1/`, rel: 'self' },
      { href: DOCS_URL, rel: 'describedby', type: 'text/html' },
    ],
    media_types: { base: 'application/json', type: 'application/vnd.openstack.ironic.v1+json' },
    chassis: resourceLinks(baseUrl, 'chassis'),
    nodes: resourceLinks(baseUrl, 'nodes'),
    ports: resourceLinks(baseUrl, 'ports'),
    drivers: resourceLinks(baseUrl, 'drivers'),
    version: versionSummary(baseUrl),
  };
  for (const [name, sinceMinor] of GATED_COLLECTIONS) {
    if (atLeast(version, sinceMinor)) document[name] = resourceLinks(baseUrl, name);
  }
  return json(document);
}

export function registerVersionRoutes(router: Router): void {
  router.on('GET', '/', rootDocument).on('GET', '/v1', v1Document);
}
