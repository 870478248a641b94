/**
 * What a deploy needs from outside the node, read before it starts, and the periodic
 * work of provisioning (the tick and image reports call these):
 *
 * - `deployInputs`: the node's PXE-enabled MACs and the images to boot (Ironic's ramdisk
 *   deploy inputs: `instance_info.image_source` — a Metalplane image name or UUID of kind
 *   `iso` or `kernel+ramdisk` — or `boot_iso`, or `kernel` + `ramdisk`), each checked to
 *   exist and be active; the ones the node's site does not hold yet are the deploy's
 *   `needs` (it waits for them, showing `deploy_step` wait_for_image).
 * - `resumeWaitingDeploys`, `timeoutWaitingCallbacks`: the held deploys and the callbacks.
 */
import type { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import type { NodeRepository } from '../adapters/dynamo/node-repository.ts';
import type { PortRepository } from '../adapters/dynamo/port-repository.ts';
import { invalid } from '../domain/errors.ts';
import { isUuidLike } from '../domain/identifiers.ts';
import type { Image } from '../domain/images/image.ts';
import type { Node } from '../domain/nodes/node.ts';
import type { DeployInputs } from './flows/deploy.ts';
import type { Provisioner } from './provision.ts';

const PAGE = 200;

async function resolveImage(images: ImageRepository, ref: unknown, field: string): Promise<Image> {
  if (typeof ref !== 'string' || ref === '')
    throw invalid(`instance_info.${field} must be an image name or UUID.`);
  const uuid = isUuidLike(ref) ? ref.toLowerCase() : await images.uuidForName(ref);
  const found = uuid ? await images.get(uuid) : undefined;
  if (!found) throw invalid(`Image ${ref} (instance_info.${field}) could not be found.`);
  if (found.image.state !== 'active') {
    throw invalid(
      `Image ${ref} (instance_info.${field}) is ${found.image.state}, not active: it cannot be booted.`,
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
  const macs: string[] = [];
  let marker: string | undefined;
  for (let page = 0; page < 50; page++) {
    const listed = await deps.ports.list({
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
  const needs: string[] = [];
  for (const image of new Set(used.map((i) => i.uuid))) {
    const sync = await deps.images.getSync(image, node.conductor_group);
    if (sync?.sync.state !== 'ready') needs.push(image);
  }
  return { macs, images: chosen, needs };
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

/** Held deploys (of one site, or all) whose images may be ready now. */
export async function resumeWaitingDeploys(
  provisioner: Provisioner,
  deps: { nodes: NodeRepository; images: ImageRepository },
  site?: string,
): Promise<number> {
  const deploying = (await nodesIn(deps.nodes, 'deploying', site)).filter(
    (node) => node.task?.command === '',
  );
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
