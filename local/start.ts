/**
 * `npm start`: runs the whole local stack in the foreground until Ctrl-C.
 *
 *   npm start [-- --api-port 6385 --ws-port 6386 --moto-port 4566]
 */
import { parseArgs } from 'node:util';
import { startLocalStack } from './stack.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'api-port': { type: 'string', default: '6385' },
    'ws-port': { type: 'string', default: '6386' },
    'moto-port': { type: 'string', default: '4566' },
    noauth: { type: 'boolean', default: false },
    'agent-status-port': { type: 'string', default: '9469' },
    'no-agent': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write(
    'usage: npm start [-- --host 127.0.0.1 --api-port 6385 --ws-port 6386 --moto-port 4566 --agent-status-port 9469 --noauth --no-agent]\n',
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

const started = Date.now();
const stack = await startLocalStack({
  host: values.host,
  apiPort: port('api-port', values['api-port']),
  webSocketPort: port('ws-port', values['ws-port']),
  motoPort: port('moto-port', values['moto-port']),
  noauth: values.noauth,
  agent: !values['no-agent'],
  agentStatusPort: port('agent-status-port', values['agent-status-port']),
}).catch((error: Error) => {
  process.stderr.write(`metalplane: the local stack did not start: ${error.message}\n`);
  process.exit(1);
});

process.stdout.write(
  [
    `metalplane local stack ready in ${Date.now() - started} ms`,
    `  API (Ironic v1):     ${stack.apiUrl}/v1`,
    `  agent WebSocket:     ${stack.webSocketUrl}`,
    `  AWS emulator (moto): ${stack.awsEndpoint}`,
    stack.admin
      ? `  admin (HTTP Basic):  ${stack.admin.username} / password in .local/admin-password\n` +
        `  baremetal CLI:       OS_CLIENT_CONFIG_FILE=${stack.admin.cloudsYaml} OS_CLOUD=metalplane-local .venv/bin/baremetal node list`
      : '  authentication:      none (--noauth): every caller is admin',
    stack.agent
      ? `  agent (site local):  ${stack.agent.hostname}, pid ${stack.agent.pid}, status ${stack.agent.statusUrl}/healthz`
      : '  agent:               none (--no-agent)',
    'Ctrl-C stops everything.',
    '',
  ].join('\n'),
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping the local stack...\n');
    stack.stop().then(() => process.exit(0));
  });
}
