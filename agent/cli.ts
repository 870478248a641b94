#!/usr/bin/env node
/**
 * metalplane-agent: the command line of the site agent.
 *
 *   metalplane-agent enroll --url URL --token TOKEN [--config FILE] [--force]
 *   metalplane-agent run [--config FILE]
 *   metalplane-agent check-config [--config FILE]
 *   metalplane-agent install --url URL (--token TOKEN | --token-file FILE) [--config FILE] [--no-start]
 *   metalplane-agent doctor [--config FILE]
 *
 * The config file defaults to $METALPLANE_AGENT_CONFIG, else
 * /etc/metalplane-agent/config.yaml. Exit codes: 0 done (or stopped cleanly), 1 failure,
 * 2 bad usage or configuration (systemd does not restart on 2). `install` also exits 3:
 * enrolled, but systemd is not running so the service was not started; `doctor` exits 1
 * when a check fails.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig } from './config.ts';
import { formatResults, runDoctor } from './doctor.ts';
import { enroll } from './enroll.ts';
import { DEFAULT_SERVICE_USER, install } from './install.ts';
import { createLogger, errorMessage } from './log.ts';
import { startAgent } from './main.ts';
import { CredentialError } from './state.ts';
import { AGENT_VERSION } from './version.ts';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

const defaultConfigFile = () => process.env.METALPLANE_AGENT_CONFIG || DEFAULT_CONFIG_FILE;

function die(error: unknown): never {
  const usage = error instanceof ConfigError || error instanceof CredentialError;
  process.stderr.write(`metalplane-agent: ${errorMessage(error)}\n`);
  process.exit(usage ? EXIT_USAGE : EXIT_FAILURE);
}

async function runCommand(options: { config?: string }): Promise<void> {
  const file = options.config ?? defaultConfigFile();
  const config = loadConfig(file, { required: true });
  if (!config.url) throw new ConfigError([`${file}:url: required`]);
  const agent = await startAgent(config);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      agent.log.warn('second signal: exiting now (the journal covers what was running)', { signal });
      process.exit(EXIT_FAILURE);
    }
    void agent.stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP (`metalplane-agent rotate-credential`, or `systemctl reload`): a new credential, no downtime.
  process.on('SIGHUP', () => {
    agent
      .rotateCredential()
      .catch((error) => agent.log.error('credential rotation failed', { error: errorMessage(error) }));
  });
  process.on('unhandledRejection', (error) =>
    agent.log.error('unhandled rejection', { error: errorMessage(error) }),
  );
  await agent.stopped;
  process.exit(0);
}

async function enrollCommand(options: {
  url?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  stateDir?: string;
  force?: boolean;
}): Promise<void> {
  const file = options.config ?? defaultConfigFile();
  const config = loadConfig(file, {
    required: options.config !== undefined,
    url: options.url,
    stateDir: options.stateDir,
  });
  if (!config.url) throw new ConfigError([`${file}:url: give --url or set url in the config file`]);
  let token = options.token ?? process.env.METALPLANE_ENROLL_TOKEN;
  if (options.tokenFile) token = readFileSync(options.tokenFile, 'utf8').trim();
  if (!token) throw new ConfigError(['enroll: give --token, --token-file or METALPLANE_ENROLL_TOKEN']);
  const outcome = await enroll({ url: config.url, token, config, force: options.force });
  const log = createLogger({ level: 'info', write: (line) => process.stderr.write(line) });
  log.info('enrolled', { credential_file: outcome.credentialPath, ...outcome.info });
  process.stdout.write(
    `enrolled ${config.hostname}${typeof outcome.info.site === 'string' ? ` in site ${outcome.info.site}` : ''}; credential stored in ${outcome.credentialPath}\n`,
  );
}

function checkConfigCommand(options: { config?: string }): void {
  const file = options.config ?? defaultConfigFile();
  const config = loadConfig(file, { required: true });
  process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
}

export function buildProgram(): Command {
  const program = new Command('metalplane-agent')
    .description("Metalplane site agent: runs the control plane's commands in one datacenter")
    .version(AGENT_VERSION)
    .showHelpAfterError()
    .exitOverride();
  program
    .command('enroll')
    .description(
      'exchange a one-time enrollment token for the agent credential (stored 0600 in the state directory)',
    )
    .option('--url <url>', 'control plane URL (default: url from the config file)')
    .option('--token <token>', 'one-time enrollment token (or METALPLANE_ENROLL_TOKEN, or --token-file)')
    .option('--token-file <file>', 'read the enrollment token from a file')
    .option(
      '-c, --config <file>',
      `config file (default: $METALPLANE_AGENT_CONFIG or ${DEFAULT_CONFIG_FILE})`,
    )
    .option('--state-dir <dir>', 'state directory (default: state_dir from the config file)')
    .option('--force', 'replace an existing credential')
    .action((options) => enrollCommand(options));
  program
    .command('run')
    .description('run the agent until SIGTERM/SIGINT')
    .option(
      '-c, --config <file>',
      `config file (default: $METALPLANE_AGENT_CONFIG or ${DEFAULT_CONFIG_FILE})`,
    )
    .action((options) => runCommand(options));
  program
    .command('check-config')
    .description('validate the config file and print it with every default filled in')
    .option(
      '-c, --config <file>',
      `config file (default: $METALPLANE_AGENT_CONFIG or ${DEFAULT_CONFIG_FILE})`,
    )
    .action((options) => checkConfigCommand(options));
  program
    .command('install')
    .description(
      'enroll (setting url in the config file when unset), give the state directory to the service user, enable and start the service',
    )
    .option('--url <url>', 'control plane URL (default: url from the config file, or url= in --token-file)')
    .option('--token <token>', 'one-time enrollment token (or METALPLANE_ENROLL_TOKEN, or --token-file)')
    .option('--token-file <file>', 'a file with the token alone, or url= and token= lines')
    .option('--remove-token-file', 'delete --token-file once enrolled (the package postinst does)')
    .option(
      '-c, --config <file>',
      `config file (default: $METALPLANE_AGENT_CONFIG or ${DEFAULT_CONFIG_FILE})`,
    )
    .option('--user <name>', `the service user given the state directory (as root)`, DEFAULT_SERVICE_USER)
    .option('--force', 'enroll again even if a credential exists')
    .option('--no-start', 'do not enable and start the systemd service')
    .action(
      async (options: {
        url?: string;
        token?: string;
        tokenFile?: string;
        removeTokenFile?: boolean;
        config?: string;
        user: string;
        force?: boolean;
        start: boolean;
      }) => {
        const status = await install({
          configFile: options.config ?? defaultConfigFile(),
          ...(options.url ? { url: options.url } : {}),
          ...(options.token ? { token: options.token } : {}),
          ...(options.tokenFile ? { tokenFile: options.tokenFile } : {}),
          removeTokenFile: options.removeTokenFile === true,
          user: options.user,
          force: options.force === true,
          start: options.start,
        });
        if (status !== 0) process.exit(status);
      },
    );
  program
    .command('doctor')
    .description(
      'check the config, the control plane, the WebSocket, the clock, the boot ports and trees, the credential and the tools; exits 1 if a check fails',
    )
    .option(
      '-c, --config <file>',
      `config file (default: $METALPLANE_AGENT_CONFIG or ${DEFAULT_CONFIG_FILE})`,
    )
    .option('--user <name>', 'the service user', DEFAULT_SERVICE_USER)
    .action(async (options: { config?: string; user: string }) => {
      const results = await runDoctor({
        configFile: options.config ?? defaultConfigFile(),
        user: options.user,
      });
      process.stdout.write(formatResults(results));
      const config = results.find((r) => r.name === 'config');
      if (config?.status === 'FAIL') process.exit(EXIT_USAGE);
      process.exit(results.some((r) => r.status === 'FAIL') ? EXIT_FAILURE : 0);
    });
  program
    .command('rotate-credential')
    .description(
      'have the running agent fetch a new credential and switch to it, without downtime (sends it SIGHUP)',
    )
    .option(
      '-c, --config <file>',
      `config file (default: $METALPLANE_AGENT_CONFIG or ${DEFAULT_CONFIG_FILE})`,
    )
    .action((options: { config?: string }) => {
      const config = loadConfig(options.config ?? defaultConfigFile(), { required: true });
      const pid = Number(readFileSync(join(config.stateDir, 'agent.lock'), 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 1)
        throw new Error(`${config.stateDir}/agent.lock: no running agent`);
      process.kill(pid, 'SIGHUP');
      process.stdout.write(
        `asked agent ${pid} to rotate its credential (see its log: "credential rotated")\n`,
      );
    });
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE);
  die(error);
}
