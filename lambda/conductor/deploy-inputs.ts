/**
 * What a deploy needs from outside the node, read before it starts, and the periodic
 * work of provisioning (the tick and image reports call these):
 *
 * - `deployInputs`: the node's PXE-enabled MACs and the images to boot (Ironic's ramdisk
 *   deploy inputs: `instance_info.image_source` — a Metalplane image name or UUID of kind
 *   `iso` or `kernel+ramdisk` — or `boot_iso`, or `kernel` + `ramdisk`), each checked to
 *   exist and be active; the ones the node's site does not hold yet are the deploy's
 *   `needs` (it waits for them, showing `deploy_step` wait_for_image).
 * - `ramdiskInputs`: the same for booting the Metalplane ramdisk (in-band inspection,
 *   cleaning): `driver_info.deploy_kernel` + `deploy_ramdisk`, the MACs, what to wait for.
 * - `resumeWaitingDeploys`, `timeoutWaitingCallbacks`: the held flows and the callbacks.
 */

import type { DeployTemplateRepository } from '../adapters/dynamo/deploy-template-repository.ts';
import type { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import type { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import type { PortRepository } from '../adapters/dynamo/port-repository.ts';
import { invalid } from '../domain/errors.ts';
import { isUuidLike } from '../domain/identifiers.ts';
import type { Image } from '../domain/images/image.ts';
import type { DeployTemplate } from '../domain/inventory/deploy-template.ts';
import type { Node } from '../domain/nodes/node.ts';
import {
  instanceTraits,
  resolveDeploySteps,
  type UserDeployStep,
} from '../domain/provisioning/deploy-steps.ts';
import type { ConfigDrive } from '../domain/provisioning/request.ts';
import type { DeployInputs } from './flows/boot-inputs.ts';
import { rendersBootFiles as rendersBootFilesOf, VIRTUAL_MEDIA_BOOT } from './flows/deploy.ts';
import type { Provisioner } from './provision.ts';

const PAGE = 200;

async function resolveImage(
  images: ImageRepository,
  ref: unknown,
  field: string,
  where = 'instance_info',
): Promise<Image> {
  if (typeof ref !== 'string' || ref === '')
    throw invalid(`${where}.${field} must be an image name or UUID.`);
  const uuid = isUuidLike(ref) ? ref.toLowerCase() : await images.uuidForName(ref);
  const found = uuid ? await images.get(uuid) : undefined;
  if (!found) throw invalid(`Image ${ref} (${where}.${field}) could not be found.`);
  if (found.image.state !== 'active') {
    throw invalid(
      `Image ${ref} (${where}.${field}) is ${found.image.state}, not active: it cannot be booted.`,
    );
  }
  return found.image;
}

const hasRole = (image: Image, role: string) => image.files.some((file) => file.role === role);

export async function deployInputs(
  node: Node,
  deps: { images: ImageRepository; ports: PortRepository },
): Promise<DeployInputs> {
  const info = node.instance_info;
  let chosen: DeployInputs['images'];
  const used: Image[] = [];
  if (info.image_source !== undefined && info.image_source !== null && info.image_source !== '') {
    const image = await resolveImage(deps.images, info.image_source, 'image_source');
    used.push(image);
    if (hasRole(image, 'iso')) chosen = { iso: image.uuid };
    else if (hasRole(image, 'kernel') && hasRole(image, 'ramdisk'))
      chosen = { kernel: image.uuid, ramdisk: image.uuid };
    else
      throw invalid(
        `Image ${image.name} is a ${image.kind}: image_source must be an ISO or a kernel+ramdisk pair.`,
      );
  } else if (info.boot_iso !== undefined && info.boot_iso !== null) {
    const image = await resolveImage(deps.images, info.boot_iso, 'boot_iso');
    if (!hasRole(image, 'iso')) throw invalid(`Image ${image.name} (instance_info.boot_iso) is not an ISO.`);
    used.push(image);
    chosen = { iso: image.uuid };
  } else if (info.kernel !== undefined && info.ramdisk !== undefined) {
    const kernel = await resolveImage(deps.images, info.kernel, 'kernel');
    const ramdisk = await resolveImage(deps.images, info.ramdisk, 'ramdisk');
    if (!hasRole(kernel, 'kernel'))
      throw invalid(`Image ${kernel.name} (instance_info.kernel) has no kernel.`);
    if (!hasRole(ramdisk, 'ramdisk'))
      throw invalid(`Image ${ramdisk.name} (instance_info.ramdisk) has no ramdisk.`);
    used.push(kernel, ramdisk);
    chosen = { kernel: kernel.uuid, ramdisk: ramdisk.uuid };
  } else {
    throw invalid(
      `Missing the following parameters in node's instance_info: ['image_source'] (or 'boot_iso', or 'kernel' and 'ramdisk').`,
    );
  }
  // Virtual media: the BMC mounts an ISO (the agent builds one from a kernel and ramdisk):
  // no boot files, so no MAC needed.
  const macs = node.boot_interface === VIRTUAL_MEDIA_BOOT ? [] : await pxeMacs(node, deps.ports);
  return { macs, images: chosen, needs: await notAtSite(node, used, deps.images) };
}

/** The node's PXE-enabled MACs (the boot files are keyed by them): none is the client's 400. */
async function pxeMacs(node: Node, ports: PortRepository): Promise<string[]> {
  const macs: string[] = [];
  let marker: string | undefined;
  for (let page = 0; page < 50; page++) {
    const listed = await ports.list({
      limit: PAGE,
      descending: false,
      nodeUuid: node.uuid,
      ...(marker ? { markerUuid: marker } : {}),
    });
    for (const port of listed.ports) if (port.pxe_enabled) macs.push(port.address);
    if (!listed.more || listed.ports.length === 0) break;
    marker = listed.ports.at(-1)?.uuid;
  }
  if (macs.length === 0) throw invalid(`Node ${node.uuid} does not have any port with PXE enabled.`);
  return macs;
}

/** The images the node's site does not hold yet (what the flow waits for first). */
async function notAtSite(node: Node, used: readonly Image[], images: ImageRepository): Promise<string[]> {
  const needs: string[] = [];
  for (const image of new Set(used.map((i) => i.uuid))) {
    const sync = await images.getSync(image, node.conductor_group);
    if (sync?.sync.state !== 'ready') needs.push(image);
  }
  return needs;
}

/**
 * What booting the Metalplane ramdisk needs (in-band inspection, cleaning): Ironic's
 * `driver_info.deploy_kernel` and `deploy_ramdisk`, Metalplane image names or UUIDs with
 * a kernel, and a ramdisk (one `kernel+ramdisk` image named in both is fine), active;
 * the node's PXE-enabled MACs (none over virtual media: the agent builds an ISO of the
 * ramdisk); the images its site does not hold yet.
 */
export async function ramdiskInputs(
  node: Node,
  deps: { images: ImageRepository; ports: PortRepository },
  mode: 'deploy' | 'rescue' = 'deploy',
): Promise<DeployInputs> {
  const info = node.driver_info;
  const given = (key: string) => info[key] !== undefined && info[key] !== null && info[key] !== '';
  // Rescue boots the same ramdisk: rescue_kernel/rescue_ramdisk when set, else the deploy ones.
  const pick = (role: 'kernel' | 'ramdisk') =>
    mode === 'rescue' && given(`rescue_${role}`) ? `rescue_${role}` : `deploy_${role}`;
  const [kernelKey, ramdiskKey] = [pick('kernel'), pick('ramdisk')];
  const missing = [kernelKey, ramdiskKey].filter((key) => !given(key));
  if (missing.length > 0) {
    throw invalid(
      `Cannot boot the ${mode} ramdisk of node ${node.uuid}. Some parameters were missing in node's driver_info. Missing are: [${missing.map((key) => `'${key}'`).join(', ')}]`,
    );
  }
  const kernel = await resolveImage(deps.images, info[kernelKey], kernelKey, 'driver_info');
  const ramdisk = await resolveImage(deps.images, info[ramdiskKey], ramdiskKey, 'driver_info');
  if (!hasRole(kernel, 'kernel'))
    throw invalid(`Image ${kernel.name} (driver_info.${kernelKey}) has no kernel.`);
  if (!hasRole(ramdisk, 'ramdisk'))
    throw invalid(`Image ${ramdisk.name} (driver_info.${ramdiskKey}) has no ramdisk.`);
  // Over virtual media the ramdisk boots from an ISO the agent builds: no MAC needed.
  const macs = node.boot_interface === VIRTUAL_MEDIA_BOOT ? [] : await pxeMacs(node, deps.ports);
  return {
    macs,
    images: { kernel: kernel.uuid, ramdisk: ramdisk.uuid },
    needs: await notAtSite(node, [kernel, ramdisk], deps.images),
  };
}

/**
 * Largest config drive Metalplane takes (its JSON text). It is kept sealed on the node
 * (DynamoDB items hold 400 KB, sealing adds a third) and travels in the agent's command,
 * and an API Gateway WebSocket message holds 128 KB: a few of them must fit in one pull.
 * Cloud-init user data is rarely over a few KiB.
 */
export const MAX_CONFIGDRIVE_BYTES = 32 * 1024;

/** The request's config drive, when the direct deploy can take it: inline, and small enough. */
function checkConfigdrive(configdrive: ConfigDrive | null): void {
  if (configdrive === null) return;
  if (typeof configdrive === 'string' && configdrive.includes('://')) {
    throw invalid(
      'A config drive given by URL is not supported by Metalplane: give it inline (its JSON form, or a gzipped and base64-encoded ISO 9660 image).',
    );
  }
  const size = Buffer.byteLength(JSON.stringify(configdrive));
  if (size > MAX_CONFIGDRIVE_BYTES) {
    throw invalid(
      `The config drive is too large: ${size} bytes, more than the ${MAX_CONFIGDRIVE_BYTES} Metalplane keeps with a node.`,
    );
  }
}

/** The deploy templates named by the instance's traits (Ironic's `_get_deployment_templates`). */
async function templatesOf(node: Node, templates: DeployTemplateRepository | undefined) {
  const found: DeployTemplate[] = [];
  if (!templates) return found;
  for (const trait of instanceTraits(node.instance_info).slice(0, 50)) {
    const uuid = await templates.uuidForName(trait);
    const template = uuid ? await templates.get(uuid) : undefined;
    if (template) found.push(template.template);
  }
  return found;
}

/**
 * What a deploy or rebuild reads before it starts. Every deploy interface: its deploy
 * steps (the driver's, the instance traits' deploy templates', the request's), checked
 * as Ironic checks them. The direct deploy also: the ramdisk to boot (`ramdiskInputs`),
 * the whole-disk image of `instance_info.image_source` (kind `disk`), what the site must
 * hold first, and the config drive's form and size. The ramdisk deploy: `deployInputs`.
 */
export async function deployRequestInputs(
  node: Node,
  request: {
    readonly configdrive: ConfigDrive | null;
    readonly deploySteps: readonly UserDeployStep[] | null;
  },
  deps: { images: ImageRepository; ports: PortRepository; templates?: DeployTemplateRepository },
): Promise<DeployInputs | undefined> {
  const steps = resolveDeploySteps({
    deployInterface: node.deploy_interface ?? '',
    requested: request.deploySteps,
    templates: await templatesOf(node, deps.templates),
  });
  if (node.deploy_interface !== 'direct') {
    return rendersBootFilesOf(node) ? { ...(await deployInputs(node, deps)), steps } : undefined;
  }
  checkConfigdrive(request.configdrive);
  const ramdisk = await ramdiskInputs(node, deps);
  const disk = await resolveImage(deps.images, node.instance_info.image_source, 'image_source');
  if (disk.kind !== 'disk') {
    throw invalid(
      `Image ${disk.name} is a ${disk.kind}: the direct deploy writes a whole-disk image (kind disk) to the node's disk.`,
    );
  }
  const diskNeeds = await notAtSite(node, [disk], deps.images);
  return { ...ramdisk, needs: [...ramdisk.needs, ...diskNeeds], diskImage: disk.uuid, steps };
}

async function nodesIn(nodes: NodeRepository, state: string, site?: string): Promise<Node[]> {
  const page = await nodes.list({
    limit: PAGE,
    sortKey: 'created_at',
    descending: false,
    equals: { provision_state: state, ...(site ? { conductor_group: site } : {}) },
  });
  return page.nodes;
}

/** The states in which a flow may wait for an image: a deploy, an inspection, a cleaning. */
const WAITING_STATES = ['deploying', 'inspecting', 'cleaning', 'deleting'] as const;

/** Held flows (of one site, or all: deploys, and the ramdisk's inspections and cleanings) whose images may be ready now. */
export async function resumeWaitingDeploys(
  provisioner: Provisioner,
  deps: { nodes: NodeRepository; images: ImageRepository },
  site?: string,
): Promise<number> {
  const deploying: Node[] = [];
  for (const state of WAITING_STATES)
    deploying.push(...(await nodesIn(deps.nodes, state, site)).filter((node) => node.task?.command === ''));
  if (deploying.length === 0) return 0;
  return provisioner.resumeImageWaits(
    deploying,
    async (image, at) => (await deps.images.getSync(image, at))?.sync.state === 'ready',
    provisioner.now(),
  );
}

export async function timeoutWaitingCallbacks(
  provisioner: Provisioner,
  nodes: NodeRepository,
): Promise<number> {
  return provisioner.timeoutCallbacks(await nodesIn(nodes, 'wait call-back'), provisioner.now());
}
