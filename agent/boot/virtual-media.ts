/**
 * Virtual media from this agent's HTTP tree (`redfish-virtual-media` boot): a catalog ISO
 * synced to the site is already served at `<base>/images/<uuid>/iso`; the BMC fetches it
 * from there when told to insert it. The base is the agent's HTTP server as the
 * management network reaches it (`boot.virtual_media_url`, else the nodes' `http_url`).
 *
 * While inserted, the image is pinned for the node (as `boot.prepare` pins its images),
 * so the image sync's garbage collection never removes an ISO a BMC still reads; eject
 * (or a failed insert) releases it. Pins live in memory, as the other boot pins do.
 */
import type { VirtualMediaSource } from '../drivers/types.ts';
import { imageFile } from './actions.ts';
import type { ImagePins } from './pins.ts';

export interface VirtualMediaOptions {
  readonly imagesDir: string;
  /** The base URL BMCs reach this agent's HTTP server at. */
  readonly baseUrl: string;
  readonly pins: () => ImagePins | undefined;
}

export function virtualMediaSource(options: VirtualMediaOptions): VirtualMediaSource {
  const base = options.baseUrl.replace(/\/+$/, '');
  const held = new Map<string, string>();
  const holder = (node: string) => `vmedia:${node}`;
  const release = (node: string) => {
    const image = held.get(node);
    if (image === undefined) return;
    options.pins()?.unpin(image, holder(node));
    held.delete(node);
  };
  return {
    async url(image, node) {
      // Present, a regular file inside the images tree (an ActionFailure otherwise).
      await imageFile(options.imagesDir, image, 'iso');
      const id = image.toLowerCase();
      const key = node.toLowerCase();
      release(key);
      options.pins()?.pin(id, holder(key));
      held.set(key, id);
      return `${base}/images/${encodeURIComponent(id)}/iso`;
    },
    release: (node) => release(node.toLowerCase()),
  };
}
