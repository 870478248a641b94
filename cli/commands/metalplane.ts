/** What only Metalplane has: sites, site agents and their enrollment tokens, webhooks, the audit trail. */
import type { Command } from 'commander';
import type { OutputOptions } from '../output.ts';
import {
  type Context,
  collect,
  deleteEach,
  listAll,
  type Options,
  positiveInt,
  printList,
  printOne,
  query,
  type Row,
  segment,
  withOutput,
  without,
} from './context.ts';

const dropLinks = (record: Row): Row => without(record, ['links']);

export function registerMetalplaneCommands(program: Command, context: Context): void {
  const site = program.command('site').description('sites (datacenters), each with its agents');
  withOutput(site.command('list').description('list sites').option('--long', 'every field')).action(
    async (options: OutputOptions & { long?: boolean }) => {
      const sites = await listAll(await context.client(), '/v1/sites', 'sites');
      const fields = options.long
        ? ['name', 'description', 'location', 'default', 'discovery', 'cleaning', 'created_at', 'updated_at']
        : ['name', 'description', 'location', 'default'];
      await printList(context, fields, sites, options);
    },
  );
  withOutput(site.command('show <site>').description('show a site')).action(
    async (name: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/sites/${segment(name)}`)).body;
      await printOne(context, dropLinks(shown), options);
    },
  );
  withOutput(
    site
      .command('create <name>')
      .description('create a site (and its command queue)')
      .option('--description <text>', 'description')
      .option('--location <text>', 'where it is')
      .option('--default', 'nodes created without a conductor group join it'),
  ).action(
    async (
      name: string,
      options: OutputOptions & { description?: string; location?: string; default?: boolean },
    ) => {
      const body: Row = { name };
      if (options.description !== undefined) body.description = options.description;
      if (options.location !== undefined) body.location = options.location;
      if (options.default) body.default = true;
      const created = (await (await context.client()).request('POST', '/v1/sites', body)).body;
      await printOne(context, dropLinks(created), options);
    },
  );
  site
    .command('delete <site...>')
    .description('delete sites without nodes or agents')
    .action((names: string[]) => deleteEach(context, 'site', names, (name) => `/v1/sites/${segment(name)}`));
  withOutput(
    site
      .command('agent-token <site>')
      .description("an enrollment token for one of the site's agents (shown once)"),
  ).action(async (name: string, options: OutputOptions) => {
    const issued = (await (await context.client()).request('POST', `/v1/sites/${segment(name)}/agents`, {}))
      .body;
    await printOne(context, issued, options);
  });

  const agent = program.command('agent').description('site agents');
  withOutput(
    agent.command('list').description('list agents').option('--site <site>', "only this site's agents"),
  ).action(async (options: OutputOptions & { site?: string }) => {
    const body = (await (await context.client()).request('GET', `/v1/agents${query({ site: options.site })}`))
      .body;
    await printList(
      context,
      ['hostname', 'site', 'alive', 'agent_version', 'last_heartbeat'],
      (body?.agents ?? []) as Row[],
      options,
    );
  });
  withOutput(agent.command('show <hostname>').description('show an agent and its credentials')).action(
    async (hostname: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/agents/${segment(hostname)}`)).body;
      await printOne(context, dropLinks(shown), options);
    },
  );
  agent
    .command('revoke <hostname>')
    .description('revoke every credential of an agent (it must enroll again)')
    .action(async (hostname: string) => {
      await (await context.client()).request('DELETE', `/v1/agents/${segment(hostname)}/credentials`);
      context.out(`Revoked the credentials of agent ${hostname}`);
    });
  agent
    .command('delete <hostname...>')
    .description('delete agents (and their credentials)')
    .action((names: string[]) =>
      deleteEach(context, 'agent', names, (name) => `/v1/agents/${segment(name)}`),
    );

  const webhook = program.command('webhook').description('webhook subscriptions to events');
  withOutput(webhook.command('list').description('list webhooks')).action(async (options: OutputOptions) => {
    const body = (await (await context.client()).request('GET', '/v1/webhooks')).body;
    await printList(
      context,
      ['id', 'url', 'event_types', 'enabled', 'description'],
      (body?.webhooks ?? []) as Row[],
      options,
    );
  });
  withOutput(webhook.command('show <id>').description('show a webhook')).action(
    async (id: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/webhooks/${segment(id)}`)).body;
      await printOne(context, dropLinks(shown), options);
    },
  );
  withOutput(
    webhook
      .command('create <url>')
      .description('subscribe a URL to events (the HMAC secret is shown once)')
      .option(
        '--event-type <type>',
        'an event type, e.g. node.provision_state.changed (repeatable; default: all)',
        collect,
      )
      .option('--description <text>', 'description')
      .option('--secret <secret>', 'the HMAC secret (default: generated)')
      .option('--disabled', 'created disabled'),
  ).action(
    async (
      url: string,
      options: OutputOptions & {
        eventType?: string[];
        description?: string;
        secret?: string;
        disabled?: boolean;
      },
    ) => {
      const body: Row = { url };
      if (options.eventType) body.event_types = options.eventType;
      if (options.description !== undefined) body.description = options.description;
      if (options.secret !== undefined) body.secret = options.secret;
      if (options.disabled) body.enabled = false;
      const created = (await (await context.client()).request('POST', '/v1/webhooks', body)).body;
      await printOne(context, dropLinks(created), options);
    },
  );
  webhook
    .command('delete <id...>')
    .description('delete webhooks')
    .action((ids: string[]) => deleteEach(context, 'webhook', ids, (id) => `/v1/webhooks/${segment(id)}`));

  const audit = program.command('audit').description('the audit trail of changes');
  withOutput(
    audit
      .command('list')
      .description('list audit records, newest first')
      .option('--actor <name>', 'by this user, token or agent')
      .option('--resource-type <type>', 'on this kind of resource (node, port, site...)')
      .option('--resource <id>', 'on this resource (UUID or name)')
      .option('--since <time>', 'at or after this ISO 8601 time')
      .option('--until <time>', 'before this ISO 8601 time')
      .option('--limit <n>', 'at most this many (0: all)', positiveInt)
      .option('--marker <id>', 'start after this record')
      .option('--long', 'every field'),
  ).action(async (options: Options) => {
    const client = await context.client();
    const limit = options.limit === undefined ? 100 : (options.limit as number);
    const text = (name: string) => options[name] as string | undefined;
    const records = await listAll(
      client,
      `/v1/audit${query({
        actor: text('actor'),
        resource_type: text('resourceType'),
        resource: text('resource'),
        since: text('since'),
        until: text('until'),
        limit: limit || undefined,
        marker: text('marker'),
      })}`,
      'audit',
      limit,
    );
    const rows = records.map((record) => ({
      ...record,
      actor:
        (record.actor as { name?: string | null; kind?: string } | null)?.name ??
        (record.actor as { kind?: string } | null)?.kind ??
        null,
    }));
    const fields = options.long
      ? Object.keys(records[0] ?? {})
      : ['id', 'created_at', 'actor', 'method', 'path', 'status', 'resource_type', 'resource'];
    await printList(context, fields.length > 0 ? fields : ['id'], options.long ? records : rows, options);
  });
  withOutput(audit.command('show <id>').description('show an audit record')).action(
    async (id: string, options: OutputOptions) => {
      const shown = (await (await context.client()).request('GET', `/v1/audit/${segment(id)}`)).body;
      await printOne(context, shown, options);
    },
  );
}
