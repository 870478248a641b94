/**
 * The conductor's facade, as Ironic's `conductor/rpcapi.py` is: the one door the API
 * routes go through to act on hardware. A route parses, authorizes, calls one method
 * here and renders; what a request sets in motion (tasks and locks, flows, the inputs a
 * deploy reads, the command queue) stays behind this class.
 *
 *   power / boot device   → power.ts (tasks on the node, one agent command each)
 *   provision state       → provision.ts (plans the flow, flows/*.ts run it) — a deploy's
 *                           inputs (MACs, images) are read here, not by the route
 *   commands, site queues → the command queue and its records
 *
 * The queue reports finished commands to the conductor through the CommandCompletions
 * port (`runtime.ts` wires it), and the tick (`tick.ts`/`handler.ts`) drives expiries and
 * waits: neither passes through here, as neither is an API request.
 */

import type { BootMode } from '../../protocol/actions.ts';
import type { CommandQueue, EnqueueInput } from '../adapters/command-queue.ts';
import type { CommandRepository } from '../adapters/dynamo/command-repository.ts';
import type { DeployTemplateRepository } from '../adapters/dynamo/deploy-template-repository.ts';
import type { ImageRepository } from '../adapters/dynamo/image-repository.ts';
import type { VersionedNode } from '../adapters/dynamo/node-repository.ts';
import type { PortRepository } from '../adapters/dynamo/port-repository.ts';
import type { SiteRepository } from '../adapters/dynamo/site-repository.ts';
import type { CommandRecord } from '../domain/commands/command.ts';
import { invalid } from '../domain/errors.ts';
import { unsupported } from '../domain/hardware/generic.ts';
import type { Node } from '../domain/nodes/node.ts';
import type { BootDeviceRequest, PowerRequest } from '../domain/power/power.ts';
import type { ProvisionRequest } from '../domain/provisioning/request.ts';
import type { SiteCleaning } from '../domain/sites/site.ts';
import type { Conductor } from './conductor.ts';
import { deployRequestInputs, ramdiskInputs } from './deploy-inputs.ts';
import { rescuesWithRamdisk } from './flows/rescue.ts';
import {
  type IndicatorRequest,
  startBootDeviceChange,
  startBootDeviceRead,
  startBootModeChange,
  startIndicatorCall,
  startInjectNmi,
  startPowerChange,
  startSecureBootChange,
  startSupportedBootDevicesRead,
} from './power.ts';
import {
  cleansWithRamdisk,
  inspectsInBand,
  manualCleanNeedsRamdisk,
  type Provisioner,
  withSiteCleaning,
} from './provision.ts';

export interface ConductorServiceDeps {
  readonly conductor: Conductor;
  readonly provisioner: Provisioner;
  readonly queue: CommandQueue;
  readonly commands: CommandRepository;
  readonly images: ImageRepository;
  readonly ports: PortRepository;
  /** The deploy templates a deploy's instance traits name (none read without it). */
  readonly templates?: DeployTemplateRepository;
  /** The sites, for their cleaning setting (the control plane's alone without it). */
  readonly sites?: Pick<SiteRepository, 'get'>;
}

/** A command the caller waits for: its record once finished, or `undefined` at the wait's end. */
export type Awaited = CommandRecord | undefined;

export class ConductorService {
  readonly #deps: ConductorServiceDeps;

  constructor(deps: ConductorServiceDeps) {
    this.#deps = deps;
  }

  /** `PUT /v1/nodes/{node}/states/power`: starts the change; the node shows `target_power_state`. */
  setPowerState(found: VersionedNode, request: PowerRequest, user: string | null): Promise<CommandRecord> {
    return startPowerChange(this.#deps.conductor, found, request, user);
  }

  /** `PUT .../management/boot_device`, waiting up to `waitMs` for the agent. */
  async setBootDevice(
    found: VersionedNode,
    request: BootDeviceRequest,
    user: string | null,
    waitMs: number,
  ): Promise<{ command: CommandRecord; done: Awaited }> {
    const command = await startBootDeviceChange(this.#deps.conductor, found, request, user);
    return { command, done: await this.#deps.conductor.waitForTask(command, waitMs) };
  }

  /** `GET .../management/boot_device` (Ironic takes the node's lock for a read too). */
  async readBootDevice(
    found: VersionedNode,
    user: string | null,
    waitMs: number,
  ): Promise<{ command: CommandRecord; done: Awaited }> {
    const command = await startBootDeviceRead(this.#deps.conductor, found, user);
    return { command, done: await this.#deps.conductor.waitForTask(command, waitMs) };
  }

  /**
   * `PUT /v1/nodes/{node}/states/provision`, the request already checked against the
   * state machine. A deploy or rebuild whose boot interface renders boot files reads its
   * inputs first (the node's MACs, its images: a bad image is the client's 400, before
   * anything is written).
   */
  async changeProvisionState(
    found: VersionedNode,
    request: ProvisionRequest,
    user: string | null,
  ): Promise<void> {
    const node = found.node;
    if (request.action === 'inspect' && node.inspect_interface === 'no-inspect') {
      // Ironic: the inspect interface's validation, UnsupportedDriverExtension (400).
      throw invalid(unsupported(node, 'inspect'));
    }
    const siteCleaning = await this.#siteCleaning(node, request);
    const inputs =
      request.action === 'deploy' || request.action === 'rebuild'
        ? await deployRequestInputs(node, request, this.#deps)
        : this.#bootsRamdisk(node, request, siteCleaning)
          ? await ramdiskInputs(node, this.#deps, request.action === 'rescue' ? 'rescue' : 'deploy')
          : undefined;
    await this.#deps.provisioner.start(found, request, user, inputs, siteCleaning);
  }

  /**
   * The node's site's cleaning setting, for the verbs that may clean automatically
   * (provide, undeploy); one read, skipped when the node's own `automated_clean` decides.
   */
  async #siteCleaning(node: Node, request: ProvisionRequest): Promise<SiteCleaning | null> {
    if (request.action !== 'provide' && request.action !== 'undeploy') return null;
    if (!this.#deps.sites || node.automated_clean === false) return null;
    return (await this.#deps.sites.get(node.conductor_group))?.cleaning ?? null;
  }

  /** Whether the request's flow boots the Metalplane ramdisk (its inputs are read first). */
  #bootsRamdisk(node: Node, request: ProvisionRequest, siteCleaning: SiteCleaning | null): boolean {
    const settings = () => withSiteCleaning(this.#deps.provisioner.settings(), siteCleaning);
    switch (request.action) {
      case 'inspect':
        return inspectsInBand(node);
      case 'provide':
        return node.provision_state === 'manageable' && cleansWithRamdisk(node, settings());
      case 'undeploy':
        return cleansWithRamdisk(node, settings());
      case 'clean':
        return manualCleanNeedsRamdisk(node, request.cleanSteps);
      case 'rescue':
        return rescuesWithRamdisk(node);
      default:
        return false;
    }
  }

  /** `PUT .../states/boot_mode`: starts the change (the node shows the outcome). */
  setBootMode(found: VersionedNode, mode: BootMode, user: string | null): Promise<CommandRecord> {
    return startBootModeChange(this.#deps.conductor, found, mode, user);
  }

  /** `PUT .../states/secure_boot`: starts the change (the node shows the outcome). */
  setSecureBoot(found: VersionedNode, enabled: boolean, user: string | null): Promise<CommandRecord> {
    return startSecureBootChange(this.#deps.conductor, found, enabled, user);
  }

  /** `GET .../boot_device/supported` of a node whose BMC says, waiting up to `waitMs`. */
  async readSupportedBootDevices(
    found: VersionedNode,
    user: string | null,
    waitMs: number,
  ): Promise<{ command: CommandRecord; done: Awaited }> {
    const command = await startSupportedBootDevicesRead(this.#deps.conductor, found, user);
    return { command, done: await this.#deps.conductor.waitForTask(command, waitMs) };
  }

  /** `.../management/indicators[/{indicator}]` (list, read, set), waiting up to `waitMs`. */
  async indicators(
    found: VersionedNode,
    request: IndicatorRequest,
    user: string | null,
    waitMs: number,
  ): Promise<{ command: CommandRecord; done: Awaited }> {
    const command = await startIndicatorCall(this.#deps.conductor, found, request, user);
    return { command, done: await this.#deps.conductor.waitForTask(command, waitMs) };
  }

  /** `PUT .../management/inject_nmi`, waiting up to `waitMs` for the agent. */
  async injectNmi(
    found: VersionedNode,
    user: string | null,
    waitMs: number,
  ): Promise<{ command: CommandRecord; done: Awaited }> {
    const command = await startInjectNmi(this.#deps.conductor, found, user);
    return { command, done: await this.#deps.conductor.waitForTask(command, waitMs) };
  }

  /** `POST /v1/nodes/{node}/commands`: an action for the node's site agent, outside any task. */
  sendCommand(request: EnqueueInput): Promise<CommandRecord> {
    return this.#deps.queue.enqueue(request);
  }

  async command(id: string): Promise<CommandRecord | undefined> {
    return (await this.#deps.commands.get(id))?.command;
  }

  /** A node's commands, newest first, before the sort key `before`. */
  commandsOfNode(node: string, limit: number, before?: string) {
    return this.#deps.commands.ofNode(node, limit, before);
  }

  /** A new site's command queue (idempotent: an orphan from a failed creation is found again). */
  createSiteQueue(site: string): Promise<string> {
    return this.#deps.queue.createQueue(site);
  }

  deleteSiteQueue(site: string, queueUrl?: string | null): Promise<void> {
    return this.#deps.queue.deleteQueue(site, queueUrl);
  }
}
