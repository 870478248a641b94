/**
 * An agent's image sync on its own, for the image tests: a fake control plane, a real
 * WebSocket channel to it and an `ImageManager` on a directory (temporary unless given),
 * everything stopped by the caller's `cleanups`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Channel } from '../../agent/channel.ts';
import { ImageManager, type ImageManagerOptions } from '../../agent/images/manager.ts';
import { createLogger } from '../../agent/log.ts';
import { FakeControlPlane } from '../../agent/testing/fake-control-plane.ts';

export interface ImageRig {
  readonly cp: FakeControlPlane;
  readonly manager: ImageManager;
  readonly dir: string;
  readonly logs: string[];
  stop(): Promise<void>;
}

export async function startImageRig(
  images: FakeControlPlane['images'],
  cleanups: Array<() => Promise<void> | void>,
  options: Partial<ImageManagerOptions> & { pageSize?: number; dir?: string } = {},
): Promise<ImageRig> {
  const { pageSize, ...managerOptions } = options;
  const cp = await new FakeControlPlane({ images, imagesPageSize: pageSize ?? 20 }).start();
  cleanups.push(() => cp.close());
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'metalplane-images-'));
  if (!options.dir) cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const logs: string[] = [];
  const log = createLogger({ level: 'debug', write: (line) => logs.push(line) });
  let manager!: ImageManager;
  const channel = new Channel({
    url: cp.url,
    websocketUrl: cp.websocketUrl,
    transport: 'websocket',
    credential: cp.credential,
    hostname: 'test-agent',
    drivers: ['fake-hardware'],
    heartbeatIntervalMs: 1000,
    pollWaitSeconds: 1,
    reconnect: {
      initialDelayMs: 50,
      maxDelayMs: 500,
      websocketFailuresBeforePolling: 3,
      websocketRetryIntervalMs: 60_000,
    },
    log,
    capacity: () => 0,
    onCommands: () => {},
    onImages: (msg) => manager.onImages(msg),
    onImagesWake: () => manager.onWake(),
    onUp: () => manager.onConnected(),
  });
  manager = new ImageManager({
    dir,
    send: (msg) => channel.send(msg),
    log,
    retryInitialMs: 300,
    retryMaxMs: 1000,
    reportIntervalMs: 200,
    ...managerOptions,
  });
  manager.start();
  channel.start();
  const stop = async () => {
    await manager.stop();
    await channel.stop();
  };
  cleanups.push(stop);
  return { cp, manager, dir, logs, stop };
}
