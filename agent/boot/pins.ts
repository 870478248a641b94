/**
 * Images in use by a node's boot files stay on disk: `boot.prepare` pins the images it
 * boots from (the iPXE script fetches them from the images tree over HTTP), `boot.clean`
 * releases them, so the image sync's garbage collection never removes an image a node
 * being deployed still needs, even if the site stops selecting it.
 *
 * Pins live in memory (as the collection's grace period does): after a restart the
 * grace period starts again, which covers the nodes being deployed at that moment.
 */
import type { Action } from '../drivers/types.ts';

export interface ImagePins {
  pin(uuid: string, holder: string): void;
  unpin(uuid: string, holder: string): void;
}

const IMAGE_ARGS = ['kernel', 'ramdisk', 'iso'] as const;

export function withImagePins(actions: readonly Action[], pins: () => ImagePins | undefined): Action[] {
  const held = new Map<string, Set<string>>();
  const release = (node: string) => {
    for (const image of held.get(node) ?? []) pins()?.unpin(image, `node:${node}`);
    held.delete(node);
  };
  return actions.map((action) => {
    if (action.name !== 'boot.prepare' && action.name !== 'boot.clean') return action;
    return {
      ...action,
      run: async (ctx) => {
        const node = String(ctx.args.node_uuid).toLowerCase();
        const result = await action.run(ctx);
        release(node);
        if (action.name === 'boot.prepare') {
          const images = new Set(
            IMAGE_ARGS.map((key) => ctx.args[key]).filter((v): v is string => typeof v === 'string'),
          );
          for (const image of images) pins()?.pin(image.toLowerCase(), `node:${node}`);
          held.set(node, images);
        }
        return result;
      },
    };
  });
}
