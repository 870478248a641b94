/**
 * A real agent process for the Redfish tests: enrolled at `site`, driver redfish, images
 * refreshed every second, its HTTP server on `httpPort` when given (the BMC fetches
 * virtual media from it), and the power sync and `redfish:` settings each test needs.
 */
import { AgentProcess, testConfig } from '../../agent/testing/agent-process.ts';
import type { ChannelStack } from './channel.ts';

export interface RedfishAgentOptions {
  /** The agent's HTTP port (default: any free one, chosen by the agent). */
  readonly httpPort?: number;
  /** The power sync's interval and timeout, or false for none. */
  readonly powerSync: false | { readonly interval: string; readonly timeout: string };
  /** The `redfish:` section (request_timeout, min_request_interval, poll_interval...). */
  readonly redfish: Readonly<Record<string, string>>;
  /** The `boot:` section (virtual_media_url, http_url...). */
  readonly boot?: Readonly<Record<string, string>>;
}

const section = (name: string, values: Readonly<Record<string, string>>) => [
  `${name}:`,
  ...Object.entries(values).map(([key, value]) => `  ${key}: ${value}`),
];

export async function startRedfishAgent(
  stack: ChannelStack,
  site: string,
  hostname: string,
  options: RedfishAgentOptions,
): Promise<AgentProcess> {
  const { credential } = await stack.enroll(site, hostname);
  const sync = options.powerSync;
  const extra = [
    'drivers: [redfish]',
    ...section(
      'power_sync',
      sync ? { interval: sync.interval, timeout: sync.timeout } : { enabled: 'false' },
    ),
    ...section('redfish', options.redfish),
    ...section('images', { refresh_interval: '1s' }),
    ...(options.boot ? section('boot', options.boot) : []),
  ].join('\n');
  const config = testConfig({ url: stack.api.url, websocketUrl: stack.gateway.url, extra });
  const agent = new AgentProcess().writeConfig(
    options.httpPort === undefined
      ? config
      : config.replace(/^(http:\n.*\n.*\n {2}port:) 0$/m, `$1 ${options.httpPort}`),
  );
  await agent.writeCredential(credential);
  await agent.start();
  return agent;
}
