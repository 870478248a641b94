/**
 * The deploy's writes to disk ("direct" deploy), as agent actions over the ramdisk:
 *
 * - `ramdisk.write_image {node_uuid, image_uuid, root_device?}`: the site's prepared file
 *   of a whole-disk image (`ImageManager.served`: raw or raw+gzip, its SHA-256) is granted
 *   to the node's ramdisk under a capability URL (`file-grants.ts`) and pinned against the
 *   image collection meanwhile; the ramdisk's `write_image` step downloads, verifies and
 *   writes it; the action succeeds with the step's result.
 * - `ramdisk.write_configdrive {node_uuid, configdrive, root_device?}`: Ironic's config
 *   drive (image or JSON form) made into one gzipped image (`configdrive.ts`), granted the
 *   same way, written by the `write_configdrive` step. It holds secrets (user data): never
 *   logged, never in the result, its temporary files removed when the action ends.
 *
 * Each grant lives exactly as long as its step: revoked when the step ends whatever the
 * outcome (and by the grants themselves when the node's session ends first).
 */
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { ACTIONS } from '../../protocol/actions.ts';
import { errorsText, lazyValidator } from '../../protocol/lazy-validator.ts';
import type { ServedDiskImage } from '../../protocol/messages.ts';
import { RAMDISK_STEP_ARGS_SCHEMAS, type RootDeviceHints } from '../../protocol/ramdisk.ts';
import { type Action, type ActionContext, ActionFailure, type CatalogAction } from '../drivers/types.ts';
import {
  ConfigdriveError,
  type ConfigdriveOptions,
  configdriveJsonProblem,
  prepareConfigdrive,
} from './configdrive.ts';
import type { FileGrants } from './file-grants.ts';
import type { RamdiskSessions } from './sessions.ts';
import { runRamdiskStep, sessionProblem } from './step.ts';

/** What the writes need of the image sync (`ImageManager`). */
export interface DiskImages {
  served(uuid: string): (ServedDiskImage & { readonly file: string }) | undefined;
  pin(uuid: string, holder: string): void;
  unpin(uuid: string, holder: string): void;
}

export interface RamdiskWritesOptions {
  /** Serves the granted files; undefined when the agent's HTTP boot server is off. */
  readonly grants: FileGrants | undefined;
  /** The image sync; undefined (or returning undefined) when it is off. */
  readonly images?: () => DiskImages | undefined;
  /** Where and how config drives are built (tests point it at their own directory). */
  readonly configdrive?: Omit<ConfigdriveOptions, 'signal'>;
}

const writeImageSchema = RAMDISK_STEP_ARGS_SCHEMAS.write_image as { properties: { root_device: object } };
/** The step's own check of the hints, so that a bad hint fails before anything is granted. */
const checkHints: ValidateFunction = lazyValidator(
  'ramdisk.root-device-hints',
  { strict: false },
  writeImageSchema.properties.root_device,
);

function hintsProblem(action: string, hints: unknown): string | undefined {
  if (hints === undefined || checkHints(hints)) return undefined;
  return `${action}: args.root_device: ${errorsText(checkHints.errors, { dataVar: 'root_device' })}`;
}

function validateWriteImage(args: Record<string, unknown>): string | undefined {
  return (
    ACTIONS['ramdisk.write_image'].validate(args) ?? hintsProblem('ramdisk.write_image', args.root_device)
  );
}

function validateWriteConfigdrive(args: Record<string, unknown>): string | undefined {
  const shape = ACTIONS['ramdisk.write_configdrive'].validate(args);
  if (shape) return shape;
  // The JSON form is checked before the command starts; the image form is decoded at run.
  if (typeof args.configdrive !== 'string') {
    const problem = configdriveJsonProblem(args.configdrive);
    if (problem) return `ramdisk.write_configdrive: ${problem}`;
  }
  return hintsProblem('ramdisk.write_configdrive', args.root_device);
}

/** Grants `file` to the node's ramdisk for the time of `use(url)`. */
async function withGrant<T>(
  grants: FileGrants,
  node: string,
  file: string,
  use: (url: string) => Promise<T>,
) {
  const grant = grants.grant(node, file);
  try {
    return await use(grant.url);
  } finally {
    grant.revoke();
  }
}

/** What a write action is, short of its run. */
interface WriteSpec<N extends 'ramdisk.write_image' | 'ramdisk.write_configdrive'> {
  readonly name: N;
  readonly description: string;
  readonly validate: (args: Record<string, unknown>) => string | undefined;
}

const WRITE_IMAGE: WriteSpec<'ramdisk.write_image'> = {
  name: 'ramdisk.write_image',
  description:
    "writes a whole-disk image the site holds onto the node's root device through its Metalplane ramdisk: args node_uuid, image_uuid, root_device",
  validate: validateWriteImage,
};

const WRITE_CONFIGDRIVE: WriteSpec<'ramdisk.write_configdrive'> = {
  name: 'ramdisk.write_configdrive',
  description:
    "writes Ironic's config drive (gzipped ISO in base64, or the JSON form, built here) to a partition of the node's root device through its Metalplane ramdisk: args node_uuid, configdrive, root_device",
  validate: validateWriteConfigdrive,
};

/**
 * The write action `spec` whose run checks, before anything is prepared, its args, the
 * HTTP server (which serves the ramdisk its files) and a live session, then `write`s.
 */
function writeAction<N extends 'ramdisk.write_image' | 'ramdisk.write_configdrive'>(
  sessions: RamdiskSessions,
  options: RamdiskWritesOptions,
  { name, description, validate }: WriteSpec<N>,
  write: (ctx: ActionContext, node: string, grants: FileGrants) => Promise<Record<string, unknown>>,
): CatalogAction<N> {
  return {
    name,
    description,
    validate,
    async run(ctx) {
      const node = String(ctx.args.node_uuid).toLowerCase();
      const problem = validate(ctx.args);
      if (problem) throw new ActionFailure(problem);
      const grants = options.grants;
      if (!grants) {
        throw new ActionFailure(
          `${name} needs the agent’s HTTP boot server (http.enabled), which serves the ramdisk its files`,
        );
      }
      const noSession = sessionProblem(sessions, node);
      if (noSession) throw new ActionFailure(noSession);
      const result = await write(ctx, node, grants);
      return result as Awaited<ReturnType<CatalogAction<N>['run']>>;
    },
  };
}

const withHints = (hints: unknown) => (hints === undefined ? {} : { root_device: hints as RootDeviceHints });

export function writeActions(sessions: RamdiskSessions, options: RamdiskWritesOptions): Action[] {
  const writeImage = writeAction(sessions, options, WRITE_IMAGE, async (ctx, node, grants) => {
    const { args, command, log } = ctx;
    const image = String(args.image_uuid).toLowerCase();
    const images = options.images?.();
    // Pinned before it is looked up: the collection cannot remove it between the two.
    const holder = `ramdisk:${node}:${command.id}`;
    images?.pin(image, holder);
    try {
      const served = images?.served(image);
      if (!served) throw new ActionFailure(`ramdisk.write_image: image ${image} is not ready at this site`);
      log.info('image granted to the ramdisk', { node, image, format: served.format, bytes: served.size });
      return await withGrant(grants, node, served.file, (url) =>
        runRamdiskStep(sessions, ctx, node, 'write_image', {
          url,
          sha256: served.sha256,
          format: served.format,
          ...withHints(args.root_device),
        }),
      );
    } finally {
      images?.unpin(image, holder);
    }
  });

  const writeConfigdrive = writeAction(sessions, options, WRITE_CONFIGDRIVE, async (ctx, node, grants) => {
    const { args, signal, log } = ctx;
    let drive: Awaited<ReturnType<typeof prepareConfigdrive>>;
    try {
      drive = await prepareConfigdrive(args.configdrive, node, { ...options.configdrive, signal });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof ConfigdriveError)
        throw new ActionFailure(`ramdisk.write_configdrive: ${error.message}`);
      throw error;
    }
    try {
      // Its size and digest only: the content is the node owner's secret.
      log.info('config drive granted to the ramdisk', { node, bytes: drive.size });
      return await withGrant(grants, node, drive.file, (url) =>
        runRamdiskStep(sessions, ctx, node, 'write_configdrive', {
          url,
          sha256: drive.sha256,
          ...withHints(args.root_device),
        }),
      );
    } finally {
      await drive.remove();
    }
  });

  return [writeImage, writeConfigdrive];
}
