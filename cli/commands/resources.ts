/**
 * The `baremetal` CLI's other resources: port group, chassis, allocation, deploy template.
 * Same verbs, options, columns and JSON output as python-ironicclient (its
 * `resource_fields.py` column lists; `show` sorts the fields, `create` shows the detailed
 * fields, '' for those the API did not answer; `set`/`unset` send JSON patches).
 */
import { type Command, Option } from 'commander';
import { CommandError, UsageError } from '../os-config.ts';
import type { OutputOptions } from '../output.ts';
import {
  applyPatch,
  type Context,
  collect,
  deleteEach,
  detailed,
  jsonArgument,
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
  sortedFields,
  waitSeconds,
  withOutput,
  without,
} from './context.ts';

/** What the shared list, show and delete commands need to know of a resource. */
interface ResourceSpec {
  /** As python-ironicclient names it in messages: `port group`. */
  readonly noun: string;
  readonly plural: string;
  /** The collection: `/v1/portgroups`. */
  readonly path: string;
  /** The collection's key in a list answer: `portgroups`. */
  readonly key: string;
  readonly listFields: string[];
  readonly detailedFields: string[];
  /** How `--long` is asked for: the `/detail` path, `?detail=True`, or here (every field is listed). */
  readonly detail: 'path' | 'query' | 'client';
  /** Fields `show` leaves out. */
  readonly hidden: string[];
}

interface Filter {
  readonly flags: string;
  readonly help: string;
  readonly param: string;
}

const PORTGROUP: ResourceSpec = {
  noun: 'port group',
  plural: 'port groups',
  path: '/v1/portgroups',
  key: 'portgroups',
  listFields: ['uuid', 'address', 'name'],
  detailedFields: [
    'uuid',
    'address',
    'created_at',
    'extra',
    'standalone_ports_supported',
    'node_uuid',
    'name',
    'updated_at',
    'internal_info',
    'mode',
    'properties',
    'physical_network',
    'category',
  ],
  detail: 'path',
  hidden: ['links', 'ports'],
};

const CHASSIS: ResourceSpec = {
  noun: 'chassis',
  plural: 'chassis',
  path: '/v1/chassis',
  key: 'chassis',
  listFields: ['uuid', 'description'],
  detailedFields: ['uuid', 'description', 'created_at', 'updated_at', 'extra'],
  detail: 'path',
  hidden: ['links', 'nodes'],
};

const ALLOCATION: ResourceSpec = {
  noun: 'allocation',
  plural: 'allocations',
  path: '/v1/allocations',
  key: 'allocations',
  listFields: ['uuid', 'name', 'resource_class', 'state', 'node_uuid'],
  detailedFields: [
    'uuid',
    'name',
    'state',
    'owner',
    'node_uuid',
    'last_error',
    'resource_class',
    'traits',
    'candidate_nodes',
    'extra',
    'created_at',
    'updated_at',
  ],
  detail: 'client',
  hidden: ['links'],
};

const DEPLOY_TEMPLATE: ResourceSpec = {
  noun: 'deploy template',
  plural: 'deploy templates',
  path: '/v1/deploy_templates',
  key: 'deploy_templates',
  listFields: ['uuid', 'name'],
  detailedFields: ['uuid', 'name', 'steps', 'extra', 'created_at', 'updated_at'],
  detail: 'query',
  hidden: ['links'],
};

const resourcePath = (spec: ResourceSpec, id: string) => `${spec.path}/${segment(id)}`;

/** `--fields`: only these fields, fetched from the server (not with `--long`). */
const fieldsOption = (spec: ResourceSpec) =>
  new Option('--fields <field...>', 'only these fields').choices(spec.detailedFields);

/** The fields given by option name, in order, that were given (`{name: 'name'}`). */
function givenFields(options: Options, names: Record<string, string>): Row {
  const body: Row = {};
  for (const [option, field] of Object.entries(names))
    if (options[option] !== undefined) body[field] = options[option];
  return body;
}

function listPath(spec: ResourceSpec, options: Options, filters: Filter[]): string {
  const fields = options.fields as string[] | undefined;
  const params = query({
    ...Object.fromEntries(
      filters.map((filter) => [
        filter.param,
        options[new Option(filter.flags).attributeName()] as string | undefined,
      ]),
    ),
    ...pagingParams(options),
    fields: fields?.join(','),
    detail: options.long && spec.detail === 'query' ? 'True' : undefined,
  });
  return `${spec.path}${options.long && spec.detail === 'path' ? '/detail' : ''}${params}`;
}

function listColumns(spec: ResourceSpec, options: Options): string[] {
  if (options.long) return spec.detailedFields;
  return (options.fields as string[] | undefined) ?? spec.listFields;
}

function addList(group: Command, context: Context, spec: ResourceSpec, filters: Filter[]): void {
  const command = group.command('list').description(`list ${spec.plural}`);
  for (const filter of filters) command.option(filter.flags, filter.help);
  withOutput(
    command
      .addOption(new Option('--long', 'every field').conflicts('fields'))
      .addOption(fieldsOption(spec))
      .option('--limit <n>', `at most this many ${spec.plural} (0: all)`, positiveInt)
      .option('--marker <uuid>', `start after this ${spec.noun}`)
      .option('--sort <key[:dir]>', 'sort by a field, asc or desc'),
  ).action(async (options: Options) => {
    const client = await context.client();
    const items = await listAll(
      client,
      listPath(spec, options, filters),
      spec.key,
      options.limit as number | undefined,
    );
    const columns = listColumns(spec, options);
    const rows = items.map((item) => (options.long ? detailed(item, columns) : item));
    await printList(context, columns, rows, options);
  });
}

/** GET one, `?fields=` when asked. */
async function fetchOne(context: Context, spec: ResourceSpec, id: string, fields?: string[]): Promise<Row> {
  const path = `${resourcePath(spec, id)}${fields ? query({ fields: fields.join(',') }) : ''}`;
  return (await (await context.client()).request('GET', path)).body as Row;
}

async function printShown(context: Context, spec: ResourceSpec, shown: Row, options: OutputOptions) {
  const record = without(shown, spec.hidden);
  await printOne(context, record, options, sortedFields(record));
}

function addShow(group: Command, context: Context, spec: ResourceSpec): void {
  withOutput(
    group.command('show <id>').description(`show a ${spec.noun}`).addOption(fieldsOption(spec)),
  ).action(async (id: string, options: OutputOptions & { fields?: string[] }) => {
    await printShown(context, spec, await fetchOne(context, spec, id, options.fields), options);
  });
}

function addDelete(group: Command, context: Context, spec: ResourceSpec): void {
  group
    .command(`delete <${spec.key}...>`)
    .description(`delete ${spec.plural}`)
    .action((ids: string[]) =>
      deleteEach(context, spec.noun, ids, (id) => resourcePath(spec, id), spec.plural),
    );
}

async function create(context: Context, spec: ResourceSpec, body: Row): Promise<Row> {
  return (await (await context.client()).request('POST', spec.path, body)).body as Row;
}

/** `extra` (and other `key=value` maps) of a create body. */
function maps(options: Options, names: Record<string, string>): Row {
  const body: Row = {};
  for (const [option, field] of Object.entries(names)) {
    const values = keyValues(options[option] as string[] | undefined);
    if (values) body[field] = values;
  }
  return body;
}

export function registerResourceCommands(program: Command, context: Context): void {
  const port = program.commands.find((command) => command.name() === 'port') ?? program.command('port');
  registerPortGroups(port, context);
  registerChassis(program, context);
  registerAllocations(program, context);
  registerDeployTemplates(program, context);
}

/** `--support-standalone-ports` / `--unsupport-standalone-ports` → `standalone_ports_supported`. */
function standalone(options: Options): boolean | undefined {
  if (options.supportStandalonePorts) return true;
  if (options.unsupportStandalonePorts) return false;
  return undefined;
}

const withStandalone = (command: Command) =>
  command
    .option('--support-standalone-ports', 'member ports can be used as stand-alone ports')
    .addOption(
      new Option(
        '--unsupport-standalone-ports',
        'member ports cannot be used as stand-alone ports',
      ).conflicts('supportStandalonePorts'),
    );

/** `port group ...` (python-ironicclient's spelling: `baremetal port group list`). */
function registerPortGroups(port: Command, context: Context): void {
  const group = port.command('group').description('port groups (bonds) of nodes');
  addList(group, context, PORTGROUP, [
    { flags: '--node <node>', help: "only this node's port groups", param: 'node' },
    { flags: '--address <mac>', help: 'only the port group with this MAC address', param: 'address' },
  ]);
  withOutput(
    group
      .command('show <id>')
      .description('show a port group (by UUID or name, or --address)')
      .option('--address', 'the argument is a MAC address')
      .addOption(fieldsOption(PORTGROUP)),
  ).action(async (id: string, options: OutputOptions & { address?: boolean; fields?: string[] }) => {
    const shown = options.address
      ? await portGroupByAddress(context, id)
      : await fetchOne(context, PORTGROUP, id, options.fields);
    await printShown(context, PORTGROUP, shown, options);
  });
  registerPortGroupCreate(group, context);
  registerPortGroupChanges(group, context);
  addDelete(group, context, PORTGROUP);
}

function registerPortGroupCreate(group: Command, context: Context): void {
  withOutput(
    withStandalone(
      group
        .command('create')
        .description('register a port group')
        .requiredOption('--node <uuid>', 'its node')
        .option('--address <mac>', 'its MAC address')
        .option('--name <name>', 'its name')
        .option('--uuid <uuid>', 'its UUID')
        .option('--mode <mode>', 'the bonding mode (balance-rr, active-backup, 802.3ad...)')
        .option('--extra <key=value>', 'extra (repeatable)', collect)
        .option('--property <key=value>', 'a property of its configuration (repeatable)', collect),
    ),
  ).action(async (options: Options) => {
    const supported = standalone(options);
    const created = await create(context, PORTGROUP, {
      ...givenFields(options, {
        node: 'node_uuid',
        address: 'address',
        name: 'name',
        uuid: 'uuid',
        mode: 'mode',
      }),
      ...maps(options, { extra: 'extra', property: 'properties' }),
      ...(supported === undefined ? {} : { standalone_ports_supported: supported }),
    });
    await printOne(context, detailed(created, PORTGROUP.detailedFields), options);
  });
}

/** `port group set` and `unset`: JSON patches. */
function registerPortGroupChanges(group: Command, context: Context): void {
  withStandalone(
    group
      .command('set <portgroup>')
      .description('set port group fields')
      .option('--node <uuid>', 'move it to this node')
      .option('--address <mac>', 'its MAC address')
      .option('--name <name>', 'its name')
      .option('--mode <mode>', 'the bonding mode')
      .option('--extra <key=value>', 'extra (repeatable)', collect)
      .option('--property <key=value>', 'a property (repeatable)', collect),
  ).action(async (id: string, options: Options) => {
    const ops = patchOps(
      'add',
      options,
      { extra: 'extra', property: 'properties' },
      {
        node: 'node_uuid',
        address: 'address',
        name: 'name',
        mode: 'mode',
      },
    );
    const supported = standalone(options);
    if (supported !== undefined)
      ops.push({ op: 'add', path: '/standalone_ports_supported', value: supported });
    await applyPatch(context, resourcePath(PORTGROUP, id), ops, 'set');
  });
  group
    .command('unset <portgroup>')
    .description('unset port group fields')
    .option('--name', 'its name')
    .option('--address', 'its MAC address')
    .option('--extra <key>', 'an extra key (repeatable)', collect)
    .option('--property <key>', 'a property (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps(
        'remove',
        options,
        { extra: 'extra', property: 'properties' },
        {
          name: 'name',
          address: 'address',
        },
      );
      await applyPatch(context, resourcePath(PORTGROUP, id), ops, 'unset');
    });
}

async function portGroupByAddress(context: Context, address: string): Promise<Row> {
  const client = await context.client();
  const found = await listAll(client, `/v1/portgroups/detail${query({ address })}`, 'portgroups');
  if (!found[0]) throw new CommandError(`Port group with address ${address} could not be found.`);
  return found[0];
}

function registerChassis(program: Command, context: Context): void {
  const chassis = program.command('chassis').description('chassis (enclosures grouping nodes)');
  addList(chassis, context, CHASSIS, []);
  addShow(chassis, context, CHASSIS);
  withOutput(
    chassis
      .command('create')
      .description('register a chassis')
      .option('--description <text>', 'description')
      .option('--uuid <uuid>', 'its UUID')
      .option('--extra <key=value>', 'extra (repeatable)', collect),
  ).action(async (options: Options) => {
    const created = await create(context, CHASSIS, {
      ...givenFields(options, { description: 'description', uuid: 'uuid' }),
      ...maps(options, { extra: 'extra' }),
    });
    await printOne(context, without(created, CHASSIS.hidden), options);
  });
  chassis
    .command('set <chassis>')
    .description('set chassis fields')
    .option('--description <text>', 'description')
    .option('--extra <key=value>', 'extra (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps('add', options, { extra: 'extra' }, { description: 'description' });
      await applyPatch(context, resourcePath(CHASSIS, id), ops, 'set');
    });
  chassis
    .command('unset <chassis>')
    .description('unset chassis fields')
    .option('--description', 'description')
    .option('--extra <key>', 'an extra key (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps('remove', options, { extra: 'extra' }, { description: 'description' });
      await applyPatch(context, resourcePath(CHASSIS, id), ops, 'unset');
    });
  addDelete(chassis, context, CHASSIS);
}

/** Polls an allocation until it is active (as python-ironicclient's `allocation.wait`). */
async function waitActive(context: Context, id: string, timeoutSeconds: number): Promise<Row> {
  const deadline = timeoutSeconds > 0 ? Date.now() + timeoutSeconds * 1000 : Number.POSITIVE_INFINITY;
  for (;;) {
    const shown = await fetchOne(context, ALLOCATION, id);
    if (shown.state === 'active') return shown;
    if (shown.state === 'error') throw new CommandError(`Allocation ${id} failed: ${shown.last_error}`);
    if (Date.now() > deadline)
      throw new CommandError(`Allocation ${id} failed to become active in ${timeoutSeconds} seconds`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function allocationBody(options: Options): Row {
  if (options.node === undefined && options.resourceClass === undefined)
    throw new UsageError('--resource-class is required except when --node is used');
  return {
    ...givenFields(options, {
      name: 'name',
      uuid: 'uuid',
      resourceClass: 'resource_class',
      trait: 'traits',
      candidateNode: 'candidate_nodes',
      node: 'node',
      owner: 'owner',
    }),
    ...maps(options, { extra: 'extra' }),
  };
}

function registerAllocations(program: Command, context: Context): void {
  const allocation = program.command('allocation').description('allocations of nodes to workloads');
  addList(allocation, context, ALLOCATION, [
    { flags: '--node <node>', help: "only this node's allocation", param: 'node' },
    {
      flags: '--resource-class <class>',
      help: 'only allocations of this resource class',
      param: 'resource_class',
    },
    { flags: '--state <state>', help: 'only allocations in this state', param: 'state' },
    { flags: '--owner <owner>', help: 'only allocations of this owner', param: 'owner' },
  ]);
  addShow(allocation, context, ALLOCATION);
  withOutput(
    allocation
      .command('create')
      .description('allocate a node (of a resource class, with traits, among candidates)')
      .option('--resource-class <class>', 'the resource class to request')
      .option('--trait <trait>', 'a trait to request (repeatable)', collect)
      .option('--candidate-node <node>', 'a candidate node (repeatable)', collect)
      .option('--name <name>', 'a unique name')
      .option('--uuid <uuid>', 'its UUID')
      .option('--owner <owner>', 'its owner')
      .option('--extra <key=value>', 'extra (repeatable)', collect)
      .option('--node <node>', 'backfill: allocate this node, already deployed')
      .option('--wait [timeout]', 'wait until it is active (seconds; 0 or none: forever)'),
  ).action(async (options: Options) => {
    const timeout = waitSeconds(options.wait as string | boolean | undefined);
    let created = await create(context, ALLOCATION, allocationBody(options));
    if (timeout !== undefined) created = await waitActive(context, String(created.uuid), timeout);
    await printOne(context, detailed(created, ALLOCATION.detailedFields), options);
  });
  allocation
    .command('set <allocation>')
    .description('set allocation fields')
    .option('--name <name>', 'its name')
    .option('--extra <key=value>', 'extra (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps('add', options, { extra: 'extra' }, { name: 'name' });
      await applyPatch(context, resourcePath(ALLOCATION, id), ops, 'set');
    });
  allocation
    .command('unset <allocation>')
    .description('unset allocation fields')
    .option('--name', 'its name')
    .option('--extra <key>', 'an extra key (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps('remove', options, { extra: 'extra' }, { name: 'name' });
      await applyPatch(context, resourcePath(ALLOCATION, id), ops, 'unset');
    });
  addDelete(allocation, context, ALLOCATION);
}

const STEPS_HELP = 'the deploy steps: JSON, a JSON or YAML file, or - (standard input)';

/** `deploy template ...` (python-ironicclient's spelling: `baremetal deploy template list`). */
function registerDeployTemplates(program: Command, context: Context): void {
  const template = program
    .command('deploy')
    .description('deploy templates')
    .command('template')
    .description('deploy templates: named deploy steps a node trait selects');
  addList(template, context, DEPLOY_TEMPLATE, []);
  addShow(template, context, DEPLOY_TEMPLATE);
  withOutput(
    template
      .command('create <name>')
      .description('create a deploy template (its name is a trait, CUSTOM_...)')
      .requiredOption('--steps <steps>', STEPS_HELP)
      .option('--uuid <uuid>', 'its UUID')
      .option('--extra <key=value>', 'extra (repeatable)', collect),
  ).action(async (name: string, options: Options) => {
    const created = await create(context, DEPLOY_TEMPLATE, {
      name,
      steps: await jsonArgument(options.steps as string, '--steps'),
      ...givenFields(options, { uuid: 'uuid' }),
      ...maps(options, { extra: 'extra' }),
    });
    await printOne(context, detailed(created, DEPLOY_TEMPLATE.detailedFields), options);
  });
  template
    .command('set <template>')
    .description('set deploy template fields')
    .option('--name <name>', 'its name (a trait)')
    .option('--steps <steps>', STEPS_HELP)
    .option('--extra <key=value>', 'extra (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps('add', options, { extra: 'extra' }, { name: 'name' });
      if (options.steps !== undefined)
        ops.push({
          op: 'add',
          path: '/steps',
          value: await jsonArgument(options.steps as string, '--steps'),
        });
      await applyPatch(context, resourcePath(DEPLOY_TEMPLATE, id), ops, 'set');
    });
  template
    .command('unset <template>')
    .description('unset deploy template fields')
    .option('--extra <key>', 'an extra key (repeatable)', collect)
    .action(async (id: string, options: Options) => {
      const ops = patchOps('remove', options, { extra: 'extra' }, {});
      await applyPatch(context, resourcePath(DEPLOY_TEMPLATE, id), ops, 'unset');
    });
  addDelete(template, context, DEPLOY_TEMPLATE);
}
