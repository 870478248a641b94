/**
 * `npm start`: runs the whole local stack in the foreground until Ctrl-C.
 *
 *   npm start [-- --api-port 6385 --ws-port 6386 --moto-port 4566 --state-dir .local]
 *
 * SIGINT, SIGTERM and SIGHUP stop it at any moment, start-up included: the handlers are
 * installed before anything is started, and a signal during start-up aborts it and stops
 * what was already started. Exit status: 0 after a stop of a ready stack, 128 + the
 * signal's number when start-up was interrupted, 1 when start-up failed. A second signal
 * while stopping kills the children at once (SIGKILL).
 */
import { parseArgs } from 'node:util';
import { killOwnedNow } from './processes.ts';
import type { LocalStack } from './stack.ts';

const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;
type StopSignal = keyof typeof SIGNALS;

const startup = new AbortController();
let stack: LocalStack | undefined;
let stopping: StopSignal | undefined;

function onSignal(signal: StopSignal): void {
  if (stopping) {
    process.stderr.write(`metalplane: ${signal} again: killing the local stack's processes now\n`);
    killOwnedNow();
    process.exit(128 + SIGNALS[signal]);
  }
  stopping = signal;
  if (stack) {
    process.stdout.write('\nstopping the local stack...\n');
    stack.stop().then(() => process.exit(0));
  } else {
    process.stdout.write(`\n${signal} during start-up: stopping what was started...\n`);
    startup.abort(new Error(`start-up interrupted by ${signal}`));
  }
}
for (const signal of Object.keys(SIGNALS) as StopSignal[]) process.on(signal, () => onSignal(signal));

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'api-port': { type: 'string', default: '6385' },
    'ws-port': { type: 'string', default: '6386' },
    'moto-port': { type: 'string', default: '4566' },
    noauth: { type: 'boolean', default: false },
    'agent-status-port': { type: 'string', default: '9469' },
    'no-agent': { type: 'boolean', default: false },
    'state-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'usage: npm start [-- --host 127.0.0.1 --api-port 6385 --ws-port 6386 --moto-port 4566 --agent-status-port 9469 --noauth --no-agent --state-dir .local]\n',
  );
  process.exit(0);
}

function port(name: string, value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535) {
    process.stderr.write(`--${name} must be a port number (0-65535), not '${value}'\n`);
    process.exit(2);
  }
  return parsed;
}

function interrupted(signal: StopSignal): never {
  process.stderr.write(`metalplane: start-up interrupted by ${signal}; everything it started is stopped\n`);
  process.exit(128 + SIGNALS[signal]);
}

const started = Date.now();
// Imported only after the handlers are in place: loading the handlers takes a while.
const { startLocalStack } = await import('./stack.ts');
if (stopping) interrupted(stopping);
const stateDir = values['state-dir'];
stack = await startLocalStack({
  host: values.host,
  apiPort: port('api-port', values['api-port']),
  webSocketPort: port('ws-port', values['ws-port']),
  motoPort: port('moto-port', values['moto-port']),
  noauth: values.noauth,
  agent: !values['no-agent'],
  agentStatusPort: port('agent-status-port', values['agent-status-port']),
  ...(stateDir ? { stateDir } : {}),
  signal: startup.signal,
}).catch((error: Error) => {
  if (stopping) interrupted(stopping);
  process.stderr.write(`metalplane: the local stack did not start: ${error.message}\n`);
  process.exit(1);
});

const adminPasswordFile = stateDir ? `${stateDir}/admin-password` : '.local/admin-password';
process.stdout.write(
  [
    `metalplane local stack ready in ${Date.now() - started} ms`,
    `  API (Ironic v1):     ${stack.apiUrl}/v1`,
    `  agent WebSocket:     ${stack.webSocketUrl}`,
    `  AWS emulator (moto): ${stack.awsEndpoint}`,
    stack.admin
      ? `  admin (HTTP Basic):  ${stack.admin.username} / password in ${adminPasswordFile}\n` +
        `  baremetal CLI:       OS_CLIENT_CONFIG_FILE=${stack.admin.cloudsYaml} OS_CLOUD=metalplane-local .venv/bin/baremetal node list`
      : '  authentication:      none (--noauth): every caller is admin',
    stack.agent
      ? `  agent (site local):  ${stack.agent.hostname}, pid ${stack.agent.pid}, status ${stack.agent.statusUrl}/healthz`
      : '  agent:               none (--no-agent)',
    'Ctrl-C stops everything.',
    '',
  ].join('\n'),
);
