/**
 * The commands `metalplane` shares with the `baremetal` CLI (python-ironicclient): node,
 * port, driver, conductor. Same verbs, options, field names and JSON output.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { CommandError, UsageError } from '../os-config.ts';
import type { OutputOptions } from '../output.ts';
import {
  applyPatch,
  type Context,
  collect,
  deleteEach,
  detailed,
  keyValues,
  listAll,
  type Options,
  pagingParams,
  patchOps,
  positiveInt,
  printList,
  printOne,
  query,
  type Row,
  segment,
  waitSeconds,
  withOutput,
  without,
} from './context.ts';

const NODE_LIST_FIELDS = ['uuid', 'name', 'instance_uuid', 'power_state', 'provision_state', 'maintenance'];
/** Fields python-ironicclient leaves out of `node show` and `node create`. */
const NODE_HIDDEN = ['links', 'ports', 'portgroups', 'states', 'volume'];
const PORT_LIST_FIELDS = ['uuid', 'address'];
/** python-ironicclient's PORT_DETAILED_RESOURCE: `port create` and `port list --long` show these ('' when absent). */
const PORT_DETAILED_FIELDS = [
  'uuid',
  'address',
  'created_at',
  'extra',
  'node_uuid',
  'category',
  'vendor',
  'local_link_connection',
  'portgroup_uuid',
  'pxe_enabled',
  'physical_network',
  'updated_at',
  'internal_info',
  'is_smartnic',
  'name',
];
/** python-ironicclient's NODE_DETAILED_RESOURCE: the columns of `node list --long`. */
const NODE_DETAILED_FIELDS = (
  'allocation_uuid automated_clean bios_interface boot_interface boot_mode chassis_uuid clean_step conductor ' +
  'conductor_group console_enabled console_interface created_at raid_config deploy_interface deploy_step ' +
  'description disable_power_off driver driver_info driver_internal_info extra fault firmware_interface health ' +
  'inspect_interface inspection_finished_at inspection_started_at instance_info instance_name instance_uuid ' +
  'last_error lessee maintenance maintenance_reason management_interface name network_data network_interface ' +
  'owner parent_node power_interface power_state properties protected protected_reason provision_updated_at ' +
  'provision_state raid_interface rescue_interface reservation resource_class retired retired_reason secure_boot ' +
  'storage_interface target_power_state target_provision_state target_raid_config traits uuid updated_at ' +
  'vendor_interface'
).split(' ');
const DRIVER_DETAILED_FIELDS = ['name', 'type', 'hosts'].concat(
  ['default', 'enabled'].flatMap((kind) =>
    'bios boot console deploy firmware inspect management network power raid rescue storage vendor'
      .split(' ')
      .map((name) => (kind === 'default' ? `default_${name}_interface` : `enabled_${name}_interfaces`)),
  ),
);
const CONDUCTOR_DETAILED_FIELDS = [
  'hostname',
  'conductor_group',
  'alive',
  'drivers',
  'created_at',
  'updated_at',
];
const HISTORY_FIELDS = ['uuid', 'created_at', 'severity', 'event'];
const HISTORY_DETAILED_FIELDS = [
  'uuid',
  'created_at',
  'severity',
  'event_type',
  'event',
  'conductor',
  'user',
  'project',
  'state',
  'target_provision_state',
  'duration_seconds',
];

/** The verbs of `PUT /v1/nodes/{node}/states/provision`, and where `--wait` stops. */
const PROVISION: Record<string, { target: string; expect?: string; help: string }> = {
  manage: { target: 'manage', expect: 'manageable', help: 'move a node to manageable' },
  provide: { target: 'provide', expect: 'available', help: 'move a node to available' },
  inspect: { target: 'inspect', expect: 'manageable', help: 'inspect a node' },
  clean: { target: 'clean', expect: 'manageable', help: 'clean a node (manual cleaning)' },
  deploy: { target: 'active', expect: 'active', help: 'deploy a node' },
  undeploy: { target: 'deleted', expect: 'available', help: 'undeploy a node' },
  rebuild: { target: 'rebuild', expect: 'active', help: 'rebuild a node' },
  abort: { target: 'abort', help: 'abort an operation' },
  rescue: { target: 'rescue', expect: 'rescue', help: 'boot a node into its rescue ramdisk' },
  unrescue: { target: 'unrescue', expect: 'active', help: 'leave rescue' },
  adopt: { target: 'adopt', expect: 'active', help: 'adopt a node already deployed' },
};

async function waitFor(
  context: Context,
  node: string,
  expected: string,
  timeoutSeconds: number,
): Promise<void> {
  const client = await context.client();
  const deadline = timeoutSeconds > 0 ? Date.now() + timeoutSeconds * 1000 : Number.POSITIVE_INFINITY;
  let last = '';
  const progress = process.stderr.isTTY;
  for (;;) {
    const shown = (await client.request('GET', `/v1/nodes/${segment(node)}`)).body as Row;
    const state = String(shown.provision_state);
    const target = shown.target_provision_state;
    if (progress && state !== last) context.note(`${node}: ${state}${target ? ` → ${target}` : ''}`);
    last = state;
    if (state === expected && !target) return;
    if (/failed$/.test(state) || state === 'error') {
      throw new CommandError(
        `Node ${node} failed to reach state ${expected}: it is in ${state}${shown.last_error ? `: ${shown.last_error}` : ''}`,
      );
    }
    if (Date.now() > deadline) {
      throw new CommandError(
        `Node ${node} did not reach ${expected} within ${timeoutSeconds} seconds (it is ${state})`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

const NODE_MAPS = {
  property: 'properties',
  driverInfo: 'driver_info',
  instanceInfo: 'instance_info',
  extra: 'extra',
};

export function registerBaremetalCommands(program: Command, context: Context): void {
  const node = program.command('node').description('bare metal nodes');

  withOutput(
    node
      .command('list')
      .description('list nodes')
      .option('--provision-state <state>', 'only nodes in this provision state')
      .option('--maintenance', 'only nodes in maintenance')
      .option('--no-maintenance', 'only nodes not in maintenance')
      .option('--driver <driver>', 'only nodes with this driver')
      .option('--resource-class <class>', 'only nodes of this resource class')
      .option('--conductor-group <group>', 'only nodes of this conductor group (site)')
      .option('--long', 'every field')
      .option('--limit <n>', 'at most this many nodes (0: all)', positiveInt)
      .option('--marker <uuid>', 'start after this node')
      .option('--sort <key[:dir]>', 'sort by a field, asc or desc'),
  ).action(async (options: Options) => {
    const client = await context.client();
    const limit = options.limit as number | undefined;
    const params = query({
      provision_state: options.provisionState as string | undefined,
      maintenance: options.maintenance as boolean | undefined,
      driver: options.driver as string | undefined,
      resource_class: options.resourceClass as string | undefined,
      conductor_group: options.conductorGroup as string | undefined,
      ...pagingParams(options),
    });
    const nodes = await listAll(client, `/v1/nodes${options.long ? '/detail' : ''}${params}`, 'nodes', limit);
    if (options.long) {
      const rows = nodes.map((item) => detailed(item, NODE_DETAILED_FIELDS));
      await printList(context, NODE_DETAILED_FIELDS, rows, options);
    } else {
      await printList(context, NODE_LIST_FIELDS, nodes, options);
    }
  });

  withOutput(
    node.command('show <node>').description('show a node').option('--fields <field...>', 'only these fields'),
  ).action(async (name: string, options: OutputOptions & { fields?: string[] }) => {
    const client = await context.client();
    const path = `/v1/nodes/${segment(name)}${options.fields ? query({ fields: options.fields.join(',') }) : ''}`;
    const shown = without((await client.request('GET', path)).body, NODE_HIDDEN);
    if ((!options.fields || options.fields.includes('chassis_uuid')) && !('chassis_uuid' in shown))
      shown.chassis_uuid = '';
    await printOne(context, shown, options);
  });

  withOutput(
    node
      .command('create')
      .description('register a node')
      .requiredOption('--driver <driver>', 'its hardware type')
      .option('--name <name>', 'a unique name')
      .option('--uuid <uuid>', 'its UUID')
      .option('--description <text>', 'description')
      .option('--resource-class <class>', 'resource class')
      .option('--conductor-group <group>', 'conductor group (its site)')
      .option('--owner <owner>', 'owner project')
      .option('--property <key=value>', 'a property (repeatable)', collect)
      .option('--driver-info <key=value>', 'driver info (repeatable)', collect)
      .option('--extra <key=value>', 'extra (repeatable)', collect),
  ).action(async (options: Options) => {
    const client = await context.client();
    const body: Row = { driver: options.driver };
    for (const [option, field] of Object.entries({
      name: 'name',
      uuid: 'uuid',
      description: 'description',
      resourceClass: 'resource_class',
      conductorGroup: 'conductor_group',
      owner: 'owner',
    })) {
      if (options[option] !== undefined) body[field] = options[option];
    }
    for (const [option, field] of Object.entries({
      property: 'properties',
      driverInfo: 'driver_info',
      extra: 'extra',
    })) {
      const values = keyValues(options[option] as string[] | undefined);
      if (values) body[field] = values;
    }
    const created = without((await client.request('POST', '/v1/nodes', body)).body as Row, NODE_HIDDEN);
    if (!('chassis_uuid' in created)) created.chassis_uuid = '';
    await printOne(context, created, options);
  });

  node
    .command('set <node>')
    .description('set node fields (a JSON patch of "add" operations)')
    .option('--name <name>', 'its name')
    .option('--driver <driver>', 'its hardware type')
    .option('--description <text>', 'description')
    .option('--resource-class <class>', 'resource class')
    .option('--conductor-group <group>', 'conductor group')
    .option('--owner <owner>', 'owner project')
    .option('--instance-uuid <uuid>', 'instance UUID')
    .option('--property <key=value>', 'a property (repeatable)', collect)
    .option('--driver-info <key=value>', 'driver info (repeatable)', collect)
    .option('--instance-info <key=value>', 'instance info (repeatable)', collect)
    .option('--extra <key=value>', 'extra (repeatable)', collect)
    .action(async (name: string, options: Record<string, unknown>) => {
      const ops = patchOps('add', options, NODE_MAPS, {
        name: 'name',
        driver: 'driver',
        description: 'description',
        resourceClass: 'resource_class',
        conductorGroup: 'conductor_group',
        owner: 'owner',
        instanceUuid: 'instance_uuid',
      });
      await applyPatch(context, `/v1/nodes/${segment(name)}`, ops, 'set');
    });

  node
    .command('unset <node>')
    .description('unset node fields (a JSON patch of "remove" operations)')
    .option('--name', 'its name')
    .option('--description', 'description')
    .option('--resource-class', 'resource class')
    .option('--owner', 'owner project')
    .option('--instance-uuid', 'instance UUID')
    .option('--property <key>', 'a property (repeatable)', collect)
    .option('--driver-info <key>', 'a driver info key (repeatable)', collect)
    .option('--instance-info <key>', 'an instance info key (repeatable)', collect)
    .option('--extra <key>', 'an extra key (repeatable)', collect)
    .action(async (name: string, options: Record<string, unknown>) => {
      const ops = patchOps('remove', options, NODE_MAPS, {
        name: 'name',
        description: 'description',
        resourceClass: 'resource_class',
        owner: 'owner',
        instanceUuid: 'instance_uuid',
      });
      await applyPatch(context, `/v1/nodes/${segment(name)}`, ops, 'unset');
    });

  node
    .command('delete <node...>')
    .description('delete nodes')
    .action((names: string[]) => deleteEach(context, 'node', names, (name) => `/v1/nodes/${segment(name)}`));

  const power = node.command('power').description('power a node on or off, or reboot it');
  const setPower = async (name: string, target: string, timeout?: number) => {
    await (await context.client()).request('PUT', `/v1/nodes/${segment(name)}/states/power`, {
      target,
      ...(timeout ? { timeout } : {}),
    });
  };
  for (const [verb, target] of [
    ['on', 'power on'],
    ['off', 'power off'],
    ['reboot', 'rebooting'],
  ] as const) {
    power
      .command(`${verb} <node>`)
      .description(`${target === 'rebooting' ? 'reboot' : target} a node`)
      .option('--power-timeout <seconds>', 'how long the BMC may take', positiveInt)
      .option('--soft', 'a soft (ACPI) power off or reboot')
      .action(async (name: string, options: { powerTimeout?: number; soft?: boolean }) => {
        const soft = options.soft && verb !== 'on' ? `soft ${target}` : target;
        await setPower(name, soft, options.powerTimeout);
      });
  }
  node
    .command('reboot <node>')
    .description('reboot a node')
    .option('--soft', 'a soft (ACPI) reboot')
    .option('--power-timeout <seconds>', 'how long the BMC may take', positiveInt)
    .action(async (name: string, options: { powerTimeout?: number; soft?: boolean }) =>
      setPower(name, options.soft ? 'soft rebooting' : 'rebooting', options.powerTimeout),
    );

  const boot = node.command('boot').description("a node's boot device");
  const device = boot.command('device').description("a node's boot device");
  device
    .command('set <node> <device>')
    .description('set the boot device (pxe, disk, cdrom, bios, safe)')
    .option('--persistent', 'for every boot, not only the next')
    .action(async (name: string, bootDevice: string, options: { persistent?: boolean }) => {
      await (await context.client()).request('PUT', `/v1/nodes/${segment(name)}/management/boot_device`, {
        boot_device: bootDevice,
        persistent: options.persistent === true,
      });
    });
  withOutput(
    device
      .command('show <node>')
      .description('show the boot device')
      .option('--supported', 'the devices the node supports'),
  ).action(async (name: string, options: OutputOptions & { supported?: boolean }) => {
    const client = await context.client();
    const path = `/v1/nodes/${segment(name)}/management/boot_device${options.supported ? '/supported' : ''}`;
    const body = (await client.request('GET', path)).body as Row;
    if (options.supported) {
      await printOne(
        context,
        { supported_boot_devices: (body.supported_boot_devices as string[] | undefined)?.join(', ') ?? '' },
        options,
      );
    } else {
      await printOne(context, body, options);
    }
  });

  for (const [verb, spec] of Object.entries(PROVISION)) {
    const command = node
      .command(`${verb} <node>`)
      .description(spec.help)
      .option('--wait [timeout]', 'wait for the end of the operation (seconds; 0 or none: forever)');
    if (verb === 'clean') command.option('--clean-steps <json>', 'the clean steps, as JSON');
    if (verb === 'deploy' || verb === 'rebuild') {
      command
        .option('--config-drive <json>', 'a config drive, as JSON')
        .option('--deploy-steps <json>', 'steps');
    }
    if (verb === 'rescue') command.requiredOption('--rescue-password <password>', 'the rescue password');
    command.action(async (name: string, options: Record<string, string | boolean | undefined>) => {
      const body: Row = { target: spec.target };
      const json = (option: string, field: string) => {
        const raw = options[option];
        if (typeof raw !== 'string') return;
        try {
          body[field] = JSON.parse(raw);
        } catch {
          throw new UsageError(`--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: not JSON`);
        }
      };
      json('cleanSteps', 'clean_steps');
      json('deploySteps', 'deploy_steps');
      if (typeof options.configDrive === 'string') {
        try {
          body.configdrive = JSON.parse(options.configDrive);
        } catch {
          body.configdrive = options.configDrive;
        }
      }
      if (typeof options.rescuePassword === 'string') body.rescue_password = options.rescuePassword;
      if (verb === 'clean' && body.clean_steps === undefined)
        throw new UsageError('clean needs --clean-steps');
      const timeout = waitSeconds(options.wait);
      await (await context.client()).request('PUT', `/v1/nodes/${segment(name)}/states/provision`, body);
      if (timeout !== undefined && spec.expect) await waitFor(context, name, spec.expect, timeout);
    });
  }

  const maintenance = node.command('maintenance').description('maintenance mode');
  maintenance
    .command('set <node>')
    .description('put a node in maintenance')
    .option('--reason <reason>', 'why')
    .action(async (name: string, options: { reason?: string }) => {
      await (await context.client()).request(
        'PUT',
        `/v1/nodes/${segment(name)}/maintenance`,
        options.reason !== undefined ? { reason: options.reason } : {},
      );
    });
  maintenance
    .command('unset <node>')
    .description('take a node out of maintenance')
    .action(async (name: string) => {
      await (await context.client()).request('DELETE', `/v1/nodes/${segment(name)}/maintenance`);
    });

  withOutput(node.command('validate <node>').description("validate a node's interfaces")).action(
    async (name: string, options: OutputOptions) => {
      const body = (await (await context.client()).request('GET', `/v1/nodes/${segment(name)}/validate`))
        .body as Record<string, { result: boolean | null; reason: string | null }>;
      const rows = Object.keys(body)
        .sort()
        .map((key) => ({
          Interface: key,
          Result: body[key]?.result ?? null,
          Reason: body[key]?.reason ?? '',
        }));
      await printList(context, ['Interface', 'Result', 'Reason'], rows, options);
    },
  );

  const trait = node.command('trait').description("a node's traits");
  withOutput(trait.command('list <node>').description("list a node's traits")).action(
    async (name: string, options: OutputOptions) => {
      const body = (await (await context.client()).request('GET', `/v1/nodes/${segment(name)}/traits`)).body;
      const rows = ((body?.traits ?? []) as string[]).map((traits) => ({ traits }));
      await printList(context, ['traits'], rows, options);
    },
  );
  const addTraits = async (name: string, traits: string[]) => {
    const client = await context.client();
    for (const item of traits) {
      await client.request('PUT', `/v1/nodes/${segment(name)}/traits/${segment(item)}`);
    }
  };
  const removeTraits = async (name: string, traits: string[], options: { all?: boolean }) => {
    const client = await context.client();
    if (options.all) {
      await client.request('DELETE', `/v1/nodes/${segment(name)}/traits`);
      return;
    }
    if (traits.length === 0) throw new UsageError('name a trait, or --all');
    for (const item of traits) {
      await client.request('DELETE', `/v1/nodes/${segment(name)}/traits/${segment(item)}`);
    }
  };
  // `node trait add|remove`, and python-ironicclient's own spelling `node add|remove trait`.
  trait.command('add <node> <trait...>').description('add traits to a node').action(addTraits);
  trait
    .command('remove <node> [trait...]')
    .description('remove traits from a node (--all: every one)')
    .option('--all', 'every trait')
    .action(removeTraits);
  node
    .command('add')
    .description('add to a node')
    .command('trait <node> <trait...>')
    .description('add traits to a node')
    .action(addTraits);
  node
    .command('remove')
    .description('remove from a node')
    .command('trait <node> [trait...]')
    .description('remove traits from a node (--all: every one)')
    .option('--all', 'every trait')
    .action(removeTraits);

  const history = node.command('history').description("a node's history of events");
  withOutput(
    history.command('list <node>').description("list a node's history").option('--long', 'every field'),
  ).action(async (name: string, options: OutputOptions & { long?: boolean }) => {
    const client = await context.client();
    const items = await listAll(
      client,
      `/v1/nodes/${segment(name)}/history${options.long ? '?detail=true' : ''}`,
      'history',
    );
    const fields = options.long ? HISTORY_DETAILED_FIELDS : HISTORY_FIELDS;
    await printList(context, fields, items, options);
  });

  registerPorts(program, context);
  registerDrivers(program, context);
}

function registerPorts(program: Command, context: Context): void {
  const port = program.command('port').description('network ports of nodes');
  withOutput(
    port
      .command('list')
      .description('list ports')
      .option('--node <node>', "only this node's ports")
      .option('--address <mac>', 'only the port with this MAC address')
      .option('--long', 'every field')
      .option('--limit <n>', 'at most this many ports (0: all)', positiveInt)
      .option('--marker <uuid>', 'start after this port')
      .option('--sort <key[:dir]>', 'sort by a field, asc or desc'),
  ).action(async (options: Options) => {
    const client = await context.client();
    const limit = options.limit as number | undefined;
    const params = query({
      node: options.node as string | undefined,
      address: options.address as string | undefined,
      ...pagingParams(options),
    });
    const ports = await listAll(client, `/v1/ports${options.long ? '/detail' : ''}${params}`, 'ports', limit);
    const fields = options.long ? PORT_DETAILED_FIELDS : PORT_LIST_FIELDS;
    await printList(
      context,
      fields,
      options.long ? ports.map((port) => detailed(port, fields)) : ports,
      options,
    );
  });

  withOutput(
    port
      .command('show <port>')
      .description('show a port (by UUID, or --address)')
      .option('--address', 'the argument is a MAC address'),
  ).action(async (id: string, options: OutputOptions & { address?: boolean }) => {
    const client = await context.client();
    let shown: Row;
    if (options.address) {
      const found = await listAll(client, `/v1/ports/detail${query({ address: id })}`, 'ports');
      if (!found[0]) throw new CommandError(`Port with address ${id} could not be found.`);
      shown = found[0];
    } else {
      shown = (await client.request('GET', `/v1/ports/${segment(id)}`)).body as Row;
    }
    await printOne(context, without(shown, ['links']), options);
  });

  withOutput(
    port
      .command('create <address>')
      .description('register a port')
      .requiredOption('--node <uuid>', 'its node')
      .option('--extra <key=value>', 'extra (repeatable)', collect)
      .option('--local-link-connection <key=value>', 'local link connection (repeatable)', collect)
      .option('--pxe-enabled <bool>', 'boots from the network (true/false)', (value) => {
        if (value !== 'true' && value !== 'false') throw new InvalidArgumentError('true or false');
        return value === 'true';
      })
      .option('--physical-network <name>', 'its physical network')
      .option('--name <name>', 'its name'),
  ).action(async (address: string, options: Options) => {
    const body: Row = { address, node_uuid: options.node };
    const extra = keyValues(options.extra as string[] | undefined);
    if (extra) body.extra = extra;
    const link = keyValues(options.localLinkConnection as string[] | undefined);
    if (link) body.local_link_connection = link;
    if (options.pxeEnabled !== undefined) body.pxe_enabled = options.pxeEnabled;
    if (options.physicalNetwork !== undefined) body.physical_network = options.physicalNetwork;
    if (options.name !== undefined) body.name = options.name;
    const created = (await (await context.client()).request('POST', '/v1/ports', body)).body as Row;
    await printOne(context, detailed(created, PORT_DETAILED_FIELDS), options);
  });

  port
    .command('delete <port...>')
    .description('delete ports')
    .action((ids: string[]) => deleteEach(context, 'port', ids, (id) => `/v1/ports/${segment(id)}`));
}

/** Lists as python-ironicclient prints them in a driver: "a, b". */
function joinLists(record: Row): Row {
  return Object.fromEntries(
    Object.entries(record).map(([key, value]) => [key, Array.isArray(value) ? value.join(', ') : value]),
  );
}

function registerDrivers(program: Command, context: Context): void {
  const driver = program.command('driver').description('hardware types');
  withOutput(
    driver.command('list').description('list hardware types').option('--long', 'every field'),
  ).action(async (options: OutputOptions & { long?: boolean }) => {
    const client = await context.client();
    const drivers = (await client.request('GET', `/v1/drivers${options.long ? '?detail=true' : ''}`)).body
      .drivers as Row[];
    const rows = drivers.map((item) => joinLists(detailed(item, DRIVER_DETAILED_FIELDS)));
    await printList(context, options.long ? DRIVER_DETAILED_FIELDS : ['name', 'hosts'], rows, options);
  });
  withOutput(driver.command('show <driver>').description('show a hardware type')).action(
    async (name: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/drivers/${segment(name)}`))
        .body as Row;
      const record = joinLists(without(shown, ['links', 'properties']));
      await printOne(context, record, options, Object.keys(record).sort());
    },
  );

  const conductor = program.command('conductor').description('conductors (one per site here)');
  withOutput(conductor.command('list').description('list conductors').option('--long', 'every field')).action(
    async (options: OutputOptions & { long?: boolean }) => {
      const client = await context.client();
      const items = await listAll(
        client,
        `/v1/conductors${options.long ? '?detail=true' : ''}`,
        'conductors',
      );
      const fields = options.long ? CONDUCTOR_DETAILED_FIELDS : ['hostname', 'conductor_group', 'alive'];
      await printList(
        context,
        fields,
        items.map((item) => joinLists(detailed(item, fields))),
        options,
      );
    },
  );
  withOutput(conductor.command('show <hostname>').description('show a conductor')).action(
    async (hostname: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/conductors/${segment(hostname)}`))
        .body;
      await printOne(context, joinLists(without(shown, ['links'])), options);
    },
  );
}
