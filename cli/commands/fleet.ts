/**
 * `metalplane fleet`: one action over every node a selector picks, as a rollout with
 * limits (docs/fleet.md). The engine is cli/fleet/rollout.ts; this file reads the options,
 * selects the nodes, wires the progress display and Ctrl-C, and prints the result.
 *
 * Exit codes: 0 every node done; 1 some nodes failed (within the limit) or an error;
 * 2 usage; 3 stopped at the failure limit; 130 interrupted (resumable in both cases).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ActionSpec, fleetAction, PROVISION_VERBS } from '../fleet/actions.ts';
import { logReporter, progressTable, terminalReporter } from '../fleet/progress.ts';
import {
  failureLimit,
  parseMaxFailures,
  prepareResume,
  type Reporter,
  runRollout,
  summaryBySite,
} from '../fleet/rollout.ts';
import { apiFilters, matches, NODE_FIELDS, type NodeView, parseSelector } from '../fleet/selector.ts';
import {
  newRolloutId,
  type RolloutLimits,
  type RolloutRecord,
  RolloutStore,
  stateDirectory,
} from '../fleet/store.ts';
import { type Client, CommandError, UsageError } from '../os-config.ts';
import type { OutputOptions } from '../output.ts';
import { type Context, listAll, positiveInt, printList, printOne, query, withOutput } from './context.ts';

/** A rollout that ended without every node done: the exit code says how. */
export class RolloutEnded extends CommandError {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

interface LimitOptions {
  maxParallel?: number;
  maxFailures?: string;
  perSite?: number;
  timeout?: number;
  pollInterval?: number;
}

type RunOptions = OutputOptions &
  LimitOptions & {
    selector?: string;
    resume?: string;
    retryFailed?: boolean;
    dryRun?: boolean;
  };

const positive = (value: string) => {
  const n = positiveInt(value);
  if (n < 1) throw new InvalidArgumentError(`${value}: at least 1`);
  return n;
};

const maxFailures = (value: string) => {
  try {
    return parseMaxFailures(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

function withLimits(command: Command): Command {
  return command
    .option('--max-parallel <n>', 'nodes in flight at once (default 10)', positive)
    .option('--max-failures <n|p%>', 'stop launching once more nodes than this fail (default 0)', maxFailures)
    .option('--per-site <n>', 'nodes in flight at once in one site (default: no limit)', positiveInt)
    .option('--timeout <seconds>', 'seconds one node may take (default 3600; 0: no limit)', positiveInt)
    .addOption(new Option('--poll-interval <ms>', 'how often nodes are read').argParser(positive).hideHelp());
}

function withRunOptions(command: Command): Command {
  return withLimits(withOutput(command))
    .option('--selector <terms>', 'the nodes: KEY=VALUE[,KEY!=VALUE...] (docs/fleet.md)')
    .option('--resume <id>', 'resume this interrupted or stopped rollout')
    .option('--retry-failed', 'on resume, try the failed nodes again')
    .option('--dry-run', 'list the nodes the selector picks, and do nothing');
}

function limitsOf(options: LimitOptions, saved?: RolloutLimits): RolloutLimits {
  return {
    maxParallel: options.maxParallel ?? saved?.maxParallel ?? 10,
    maxFailures: options.maxFailures ?? saved?.maxFailures ?? '0',
    perSite: options.perSite ?? saved?.perSite ?? 0,
    timeoutSeconds: options.timeout ?? saved?.timeoutSeconds ?? 3600,
  };
}

async function selectNodes(client: Client, text: string): Promise<NodeView[]> {
  const selector = parseSelector(text);
  const path = `/v1/nodes${query({ ...apiFilters(selector), fields: NODE_FIELDS.join(','), limit: 1000 })}`;
  const listed = (await listAll(client, path, 'nodes')) as NodeView[];
  return listed
    .filter((node) => matches(selector, node))
    .sort(
      (a, b) =>
        a.conductor_group.localeCompare(b.conductor_group) ||
        (a.name ?? a.uuid).localeCompare(b.name ?? b.uuid),
    );
}

function newRecord(
  spec: ActionSpec,
  selector: string,
  endpoint: string,
  limits: RolloutLimits,
  nodes: NodeView[],
): RolloutRecord {
  const now = new Date().toISOString();
  return {
    format: 1,
    id: newRolloutId(),
    action: spec,
    selector,
    endpoint,
    createdAt: now,
    updatedAt: now,
    status: 'running',
    limits,
    nodes: nodes.map((node) => ({
      uuid: node.uuid,
      name: node.name,
      site: node.conductor_group,
      status: 'pending',
      attempts: 0,
    })),
  };
}

function summary(record: RolloutRecord) {
  const count = (status: string) => record.nodes.filter((node) => node.status === status).length;
  return {
    id: record.id,
    action: record.action.kind === 'power' ? `power ${record.action.verb}` : record.action.verb,
    selector: record.selector,
    status: record.status,
    reason: record.reason ?? null,
    nodes: record.nodes.length,
    succeeded: count('succeeded'),
    failed: count('failed'),
    pending: count('pending') + count('sending') + count('running'),
    sites: summaryBySite(record),
    failures: record.nodes
      .filter((node) => node.status === 'failed')
      .map((node) => ({ node: node.name ?? node.uuid, site: node.site, error: node.error ?? null })),
  };
}

/** Ctrl-C (or SIGTERM) stops the rollout cleanly once; a second one exits at once. */
function interruptOnSignals(controller: AbortController, note: (text: string) => void): () => void {
  const handler = () => {
    if (controller.signal.aborted) process.exit(130);
    note('interrupted: saving the rollout (Ctrl-C again to quit at once)');
    controller.abort();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

async function drive(
  context: Context,
  record: RolloutRecord,
  options: RunOptions,
  store: RolloutStore,
): Promise<void> {
  const client = await context.client();
  const action = fleetAction(record.action);
  const unlock = await store.lock(record.id);
  const controller = new AbortController();
  const stopListening = interruptOnSignals(controller, context.note);
  const reporter: Reporter = process.stderr.isTTY
    ? terminalReporter((text) => process.stderr.write(text))
    : logReporter((text) => context.note(text.trimEnd()));
  const limit = failureLimit(record.limits.maxFailures, record.nodes.length);
  context.note(
    `rollout ${record.id}: ${action.label} on ${record.nodes.length} nodes in ${new Set(record.nodes.map((node) => node.site)).size} sites (at most ${record.limits.maxParallel} at once${record.limits.perSite ? `, ${record.limits.perSite} per site` : ''}; stops past ${limit} failures)`,
  );
  try {
    await runRollout(record, action, {
      client,
      store,
      reporter,
      signal: controller.signal,
      ...(options.pollInterval ? { pollMs: options.pollInterval } : {}),
    });
  } finally {
    stopListening();
    await unlock();
  }
  await report(context, record, options);
}

async function report(context: Context, record: RolloutRecord, options: OutputOptions): Promise<void> {
  const shown = summary(record);
  if ((options.format ?? 'table') === 'table') {
    const failures = shown.failures.length;
    context.out(
      progressTable(record, {
        failures,
        failureLimit: failureLimit(record.limits.maxFailures, record.nodes.length),
        stopping: record.status === 'stopped',
      }),
    );
  } else {
    await printOne(context, shown, options);
  }
  if (record.status === 'interrupted') {
    throw new RolloutEnded(
      `rollout ${record.id} interrupted: resume with metalplane fleet resume ${record.id}`,
      130,
    );
  }
  if (record.status === 'stopped') {
    throw new RolloutEnded(
      `rollout ${record.id} stopped: ${record.reason}; resume with metalplane fleet resume ${record.id} [--retry-failed]`,
      3,
    );
  }
  if (shown.failed > 0)
    throw new RolloutEnded(`rollout ${record.id}: ${shown.failed} of ${shown.nodes} nodes failed`, 1);
}

async function resume(
  context: Context,
  id: string,
  options: RunOptions,
  store: RolloutStore,
  expected?: ActionSpec,
) {
  const record = await store.load(id);
  if (expected && (expected.kind !== record.action.kind || expected.verb !== record.action.verb)) {
    throw new UsageError(`rollout ${id} is a ${record.action.verb} rollout, not ${expected.verb}`);
  }
  const client = await context.client();
  if (client.config.endpoint !== record.endpoint) {
    throw new UsageError(
      `rollout ${id} was started against ${record.endpoint}, and this CLI points at ${client.config.endpoint}`,
    );
  }
  if (record.status === 'completed' && !options.retryFailed) {
    context.note(`rollout ${id} is already completed`);
    return report(context, record, options);
  }
  record.limits = limitsOf(options, record.limits);
  prepareResume(record, options.retryFailed === true);
  await drive(context, record, options, store);
}

async function start(
  context: Context,
  spec: ActionSpec,
  options: RunOptions,
  store: RolloutStore,
): Promise<void> {
  if (options.resume) return resume(context, options.resume, options, store, spec);
  if (!options.selector) throw new UsageError('give --selector (or --resume ID)');
  const client = await context.client();
  const nodes = await selectNodes(client, options.selector);
  if (options.dryRun) {
    await printList(
      context,
      ['conductor_group', 'name', 'uuid', 'provision_state', 'power_state', 'maintenance'],
      nodes,
      options,
    );
    return;
  }
  if (nodes.length === 0) throw new CommandError(`no node matches ${options.selector}`);
  const record = newRecord(spec, options.selector, client.config.endpoint, limitsOf(options), nodes);
  await store.save(record);
  await drive(context, record, options, store);
}

function cleanSteps(text: string | undefined): unknown[] {
  if (!text) throw new UsageError('clean needs --clean-steps (a JSON list of steps)');
  let steps: unknown;
  try {
    steps = JSON.parse(text);
  } catch {
    throw new UsageError('--clean-steps is not JSON');
  }
  if (!Array.isArray(steps)) throw new UsageError('--clean-steps is a JSON list of steps');
  return steps;
}

export function registerFleetCommands(program: Command, context: Context): void {
  const store = () => new RolloutStore(stateDirectory(process.env));
  const fleet = program
    .command('fleet')
    .description('one action over many nodes, as a rollout with limits (docs/fleet.md)');

  withRunOptions(
    fleet
      .command('power <target>')
      .description('power nodes on, off or reboot them')
      .option('--soft', 'soft power off / soft reboot'),
  ).action(async (target: string, options: RunOptions & { soft?: boolean }) => {
    if (!['on', 'off', 'reboot'].includes(target))
      throw new UsageError(`power ${target}: use on, off or reboot`);
    await start(
      context,
      { kind: 'power', verb: target, ...(options.soft ? { soft: true } : {}) },
      options,
      store(),
    );
  });

  for (const verb of Object.keys(PROVISION_VERBS)) {
    const command = withRunOptions(
      fleet.command(verb).description(`${verb} nodes (PUT .../states/provision)`),
    );
    if (verb === 'clean') command.option('--clean-steps <json>', 'the manual clean steps, a JSON list');
    if (verb === 'deploy' || verb === 'rebuild')
      command.option('--config-drive <drive>', 'a config drive (JSON or gzipped base64)');
    command.action(async (options: RunOptions & { cleanSteps?: string; configDrive?: string }) => {
      const spec: ActionSpec = {
        kind: 'provision',
        verb,
        ...(verb === 'clean' && !options.resume ? { cleanSteps: cleanSteps(options.cleanSteps) } : {}),
        ...(options.configDrive !== undefined ? { configDrive: options.configDrive } : {}),
      };
      await start(context, spec, options, store());
    });
  }

  withLimits(withOutput(fleet.command('resume <id>').description('resume an interrupted or stopped rollout')))
    .option('--retry-failed', 'try the failed nodes again')
    .action((id: string, options: RunOptions) => resume(context, id, options, store()));

  withOutput(fleet.command('list').description('rollouts recorded on this machine')).action(
    async (options: OutputOptions) => {
      const rows = (await store().list()).map((record) => {
        const { sites: _sites, failures: _failures, ...row } = summary(record);
        return { ...row, created_at: record.createdAt };
      });
      await printList(
        context,
        ['id', 'action', 'selector', 'status', 'nodes', 'succeeded', 'failed', 'pending', 'created_at'],
        rows,
        options,
      );
    },
  );

  withOutput(
    fleet.command('show <id>').description("a rollout: its sites, or with --nodes each node's outcome"),
  )
    .option('--nodes', "each node's status and error")
    .action(async (id: string, options: OutputOptions & { nodes?: boolean }) => {
      const record = await store().load(id);
      if (options.nodes) {
        const rows = record.nodes.map((node) => ({
          ...node,
          name: node.name ?? node.uuid,
          error: node.error ?? null,
        }));
        await printList(context, ['site', 'name', 'uuid', 'status', 'error'], rows, options);
        return;
      }
      await printOne(context, summary(record), options);
    });
}
