/**
 * The program of `metalplane` (cli/metalplane.ts starts it): the operator's command line — the
 * `baremetal` CLI's commands (node, port, port group, driver, conductor, chassis, allocation,
 * deploy template) and what only Metalplane has (site, agent, webhook, audit, image, user,
 * token, fleet). See docs/cli.md.
 *
 *   metalplane [--os-cloud NAME] [--os-endpoint URL] [--os-auth-type none|http_basic|token]
 *              [--os-username U --os-password P | --os-token T] [--os-baremetal-api-version 1.N]
 *              [--debug] COMMAND ... [-f table|json|yaml|value|csv] [-c COLUMN]... [--noindent]
 *
 * Configuration as OpenStack clients (cli/os-config.ts): options, then OS_* variables,
 * then the clouds.yaml cloud; the microversion negotiated as python-ironicclient does.
 * Output as cliff (cli/output.ts). Exit codes: 0 done, 1 the API or the command failed
 * (its message on stderr), 2 a usage error.
 *
 * Each group is registered from cli/commands/; this file holds the global options, the
 * context the commands share, and the exit codes. The password is never printed.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { registerAccessCommands } from './commands/access.ts';
import { registerBaremetalCommands } from './commands/baremetal.ts';
import { registerCompletionCommand } from './commands/completion.ts';
import type { Context } from './commands/context.ts';
import { registerFleetCommands } from './commands/fleet.ts';
import { registerImageCommands } from './commands/images.ts';
import { registerMetalplaneCommands } from './commands/metalplane.ts';
import { registerResourceCommands } from './commands/resources.ts';
import { applyTls, Client, type GlobalOptions, resolveConfig, UsageError } from './os-config.ts';
import { ColumnError } from './output.ts';

export { CliError, digestFile, diskFormatOf } from './commands/images.ts';

export function cliProgram(
  out: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
  env: NodeJS.ProcessEnv = process.env,
  err: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Command {
  const program = new Command('metalplane')
    .description(
      "Metalplane's operator CLI: nodes, ports, port groups, chassis, allocations, deploy templates, sites, agents, webhooks, audit, images, users, tokens, fleets",
    )
    .option('--os-cloud <name>', 'the clouds.yaml cloud (env OS_CLOUD)')
    .option('--os-endpoint <url>', 'the API endpoint (env OS_ENDPOINT; default http://127.0.0.1:6385)')
    .addOption(new Option('--url <url>', 'the same as --os-endpoint').hideHelp())
    .addOption(
      new Option('--os-auth-type <type>', 'none, http_basic or token (env OS_AUTH_TYPE)').choices([
        'none',
        'http_basic',
        'token',
      ]),
    )
    .option('--os-username <name>', 'HTTP Basic user (env OS_USERNAME)')
    .option('--os-password <password>', 'HTTP Basic password (env OS_PASSWORD)')
    .option('--os-token <token>', 'an API token, mpt_... (env OS_TOKEN)')
    .option(
      '--os-baremetal-api-version <version>',
      'a microversion, 1.N or latest (env OS_BAREMETAL_API_VERSION; default: negotiated)',
    )
    .option('--os-cacert <file>', 'CA certificates (PEM) to trust for HTTPS (env OS_CACERT)')
    .option('--insecure', 'do not verify the HTTPS certificate (env OS_INSECURE)')
    .option('--debug', 'print requests (method, URL, status) on stderr')
    .exitOverride();

  let client: Promise<Client> | undefined;
  const context: Context = {
    client: () => {
      const options = program.opts<GlobalOptions>();
      client ??= resolveConfig(options, env).then(async (config) => {
        await applyTls(config);
        return new Client(config, options.debug ? (line) => err(`DEBUG: ${line}`) : undefined);
      });
      return client;
    },
    out,
    note: err,
  };
  registerBaremetalCommands(program, context);
  registerResourceCommands(program, context);
  registerMetalplaneCommands(program, context);
  registerImageCommands(program, context);
  registerAccessCommands(program, context);
  registerFleetCommands(program, context);
  registerCompletionCommand(program, out);

  return program;
}

/** The exit code for an error: 2 for usage errors (commander's own, bad options), else 1. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof CommanderError && !(error instanceof InvalidArgumentError)) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
    return 2;
  }
  if (error instanceof UsageError || error instanceof ColumnError) return 2;
  // A command that says its own code (a fleet rollout: 3 stopped, 130 interrupted).
  const own = (error as { exitCode?: unknown } | null)?.exitCode;
  if (typeof own === 'number' && Number.isInteger(own) && own > 0) return own;
  return 1;
}
