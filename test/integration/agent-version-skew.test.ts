/**
 * Version skew (docs/upgrades.md): the previous release's agent — the agent as of commit
 * 398f5ab, protocol 1, unpacked from its fixture tarball and run from its own
 * sources — against today's control plane: power and provisioning work, and
 * `GET /v1/agents` shows it as the older version with the features it lacks. Agents of a
 * protocol not served (one too old, one too new) are refused with a clear reason, on the
 * WebSocket and over HTTPS; an agent lacking an action gets a clear command failure.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as AgentProcessModule from '../../agent/testing/agent-process.ts';
import * as current from '../../agent/testing/agent-process.ts';
import { AGENT_VERSION } from '../../agent/version.ts';
import { freePort } from '../../local/moto.ts';
import { CURRENT_FEATURES, PROTOCOL_VERSION } from '../../protocol/versions.ts';
import {
  type AgentSocket,
  type ChannelStack,
  nodeReaches,
  startChannel,
  waitFor,
} from '../support/channel.ts';
import { siteAgentConfig } from '../support/ramdisk-site.ts';

/**
 * The previous release: the last commit whose agent speaks protocol 1 (agent 0.1.0),
 * 398f5abd4e716128f10af2f5084a97b43a79cfdc; its sources are the fixture below.
 */
const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SITE = 'skew';
const RAW_SITE = 'skew-raw';
const TODAY_SITE = 'skew-today';

let stack: ChannelStack;
let previousDir: string;
let agent: AgentProcessModule.AgentProcess;
let today: current.AgentProcess | undefined;

/**
 * The previous agent's sources (agent/, protocol/, package.json) as of that commit,
 * kept as a fixture (`git archive --format=tar.gz <commit> agent protocol package.json`),
 * so a shallow clone runs this test too; beside a link to today's node_modules (its
 * dependencies — ws, yaml, ajv, commander — are the same).
 */
const PREVIOUS_AGENT_SOURCES = join(REPO, 'test/fixtures/agent-previous/agent-0.1.0-398f5ab.tar.gz');

function exportPreviousAgent(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-agent-previous-'));
  execFileSync('tar', ['-xzf', PREVIOUS_AGENT_SOURCES, '-C', dir]);
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

beforeAll(async () => {
  previousDir = exportPreviousAgent();
  const previous = (await import(
    join(previousDir, 'agent/testing/agent-process.ts')
  )) as typeof AgentProcessModule;
  stack = await startChannel({ syncWaitMs: 15_000 });
  expect((await stack.createSite(SITE)).status).toBe(201);
  expect((await stack.createSite(RAW_SITE)).status).toBe(201);
  expect((await stack.createSite(TODAY_SITE)).status).toBe(201);
  const httpPort = await freePort();
  const { credential } = await stack.enroll(SITE, 'test-agent');
  agent = new previous.AgentProcess().writeConfig(siteAgentConfig(stack, httpPort));
  await agent.writeCredential(credential);
  await agent.start();
}, 90_000);

afterAll(async () => {
  await agent?.cleanup();
  await today?.cleanup();
  await stack?.close();
  if (previousDir) rmSync(previousDir, { recursive: true, force: true });
});

async function node(uuid: string) {
  return (await stack.api.call('GET', `/v1/nodes/${uuid}`)).body;
}

const provision = (uuid: string, target: string) =>
  stack.api.call('PUT', `/v1/nodes/${uuid}/states/provision`, { body: { target }, version: '1.82' });

const reaches = (uuid: string, state: string, timeoutMs = 20_000) =>
  nodeReaches(node, uuid, state, timeoutMs);

describe('the previous release’s agent (protocol 1) against today’s control plane', () => {
  it('is shown as the older version, served, with the features it lacks', async () => {
    const shown = await waitFor(async () => {
      const body = (await stack.api.call('GET', '/v1/agents/test-agent')).body;
      return body?.alive ? body : undefined;
    }, 'the previous agent to say hello');
    expect(shown).toMatchObject({
      agent_version: '0.1.0',
      protocol_version: PROTOCOL_VERSION - 1,
      supported: true,
      missing_features: ['welcome'],
    });
    const listed = (await stack.api.call('GET', `/v1/agents?site=${SITE}`)).body.agents;
    expect(listed).toEqual([expect.objectContaining({ hostname: 'test-agent', protocol_version: 1 })]);
    expect(
      stack.logs.some(
        (line) =>
          line.message.startsWith('agent one protocol behind') && line.extra.hostname === 'test-agent',
      ),
    ).toBe(true);
  });

  it('powers a node on and off', async () => {
    const uuid = await stack.createNode(SITE);
    for (const target of ['power on', 'power off']) {
      const answer = await stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, {
        body: { target },
        version: '1.82',
      });
      expect(answer.status).toBe(202);
      const settled = await waitFor(async () => {
        const current = await node(uuid);
        return current.target_power_state === null && current.reservation === null ? current : undefined;
      }, `power ${target}`);
      expect(settled.power_state).toBe(target);
      expect(settled.last_error).toBeNull();
    }
  }, 30_000);

  it('provisions a node: manage → provide → deploy → undeploy (fake hardware)', async () => {
    const uuid = await stack.createNode(SITE);
    expect((await provision(uuid, 'manage')).status).toBe(202);
    expect((await reaches(uuid, 'manageable')).last_error).toBeNull();
    expect((await provision(uuid, 'provide')).status).toBe(202);
    await reaches(uuid, 'available');
    expect((await provision(uuid, 'active')).status).toBe(202);
    const active = await reaches(uuid, 'active');
    expect(active.power_state).toBe('power on');
    expect(active.last_error).toBeNull();
    expect((await provision(uuid, 'deleted')).status).toBe(202);
    expect((await reaches(uuid, 'available')).power_state).toBe('power off');
    // Never sent what it does not know (a `welcome` would be an invalid message to it).
    expect(agent.lines('invalid message from the control plane ignored')).toEqual([]);
  }, 60_000);
});

describe('today’s agent beside it', () => {
  it('announces its protocol and features, and is welcomed lacking nothing', async () => {
    const { credential } = await stack.enroll(TODAY_SITE, 'skew-today-agent');
    const config = siteAgentConfig(stack, await freePort()).replace(
      /^hostname: test-agent$/m,
      'hostname: skew-today-agent',
    );
    today = new current.AgentProcess().writeConfig(config);
    await today.writeCredential(credential);
    await today.start();
    const shown = await waitFor(async () => {
      const body = (await stack.api.call('GET', '/v1/agents/skew-today-agent')).body;
      return body?.alive ? body : undefined;
    }, 'today’s agent to say hello');
    expect(shown).toMatchObject({
      agent_version: AGENT_VERSION,
      protocol_version: PROTOCOL_VERSION,
      supported: true,
      missing_features: [],
    });
    const welcomed = await waitFor(
      () => today?.lines('welcomed by the control plane')[0],
      'the welcome in today’s agent log',
    );
    expect(welcomed).toMatchObject({ control_plane_protocol: PROTOCOL_VERSION, missing_features: [] });
    expect(today.lines('invalid message from the control plane ignored')).toEqual([]);
  }, 30_000);
});

describe('protocols not served', () => {
  const hello = (hostname: string, extra: Record<string, unknown>) => ({
    v: 1,
    type: 'hello',
    hostname,
    agent_version: '9.9.9',
    drivers: ['fake-hardware'],
    ...extra,
  });

  async function refusedOnSocket(socket: AgentSocket) {
    const error = await socket.next('error');
    await waitFor(() => socket.closed, 'the socket to be closed');
    return error.message;
  }

  it('an agent two protocols behind is refused, its socket closed; /v1/agents says unsupported', async () => {
    const old = await stack.enroll(RAW_SITE, 'skew-too-old');
    const socket = await stack.connect(old.credential);
    socket.send(hello(old.hostname, { protocol_version: PROTOCOL_VERSION - 2 }));
    expect(await refusedOnSocket(socket)).toBe(
      `agent skew-too-old (version 9.9.9, protocol ${PROTOCOL_VERSION - 2}) is too old: this control plane serves protocols ${PROTOCOL_VERSION - 1} to ${PROTOCOL_VERSION}; upgrade the agent`,
    );
    const shown = (await stack.api.call('GET', `/v1/agents/${old.hostname}`)).body;
    expect(shown).toMatchObject({ protocol_version: PROTOCOL_VERSION - 2, supported: false, alive: false });
    // Over HTTPS too: its pulls are refused with the same reason.
    const poll = await stack.asAgent(old.credential, 'GET', '/v1/agent/commands?wait=0');
    expect(poll.status).toBe(400);
    expect(poll.fault?.faultstring).toContain('is too old');
  });

  it('an agent one protocol ahead is refused, even with fields this control plane does not know', async () => {
    const ahead = await stack.enroll(RAW_SITE, 'skew-ahead');
    const message = hello(ahead.hostname, { protocol_version: PROTOCOL_VERSION + 1, novelty: true });
    const socket = await stack.connect(ahead.credential);
    socket.send(message);
    const reason = `agent skew-ahead (version unknown, protocol ${PROTOCOL_VERSION + 1}) is newer than the control plane: this control plane serves protocols ${PROTOCOL_VERSION - 1} to ${PROTOCOL_VERSION}; upgrade the control plane or roll the agent back`;
    expect(await refusedOnSocket(socket)).toBe(reason);
    const posted = await stack.asAgent(ahead.credential, 'POST', '/v1/agent/messages', message);
    expect(posted.status).toBe(400);
    expect(posted.fault?.faultstring).toBe(reason);
  });
});

describe('an agent lacking an action', () => {
  it('is welcomed with what it lacks, and a command it cannot run fails clearly, undelivered', async () => {
    const partial = await stack.enroll(RAW_SITE, 'skew-partial');
    const socket = await stack.connect(partial.credential);
    const features = CURRENT_FEATURES.filter((feature) => feature !== 'power.set');
    socket.send({
      v: 1,
      type: 'hello',
      hostname: partial.hostname,
      agent_version: '0.2.0',
      drivers: ['fake-hardware'],
      protocol_version: PROTOCOL_VERSION,
      features,
    });
    const welcome = await socket.next('welcome');
    expect(welcome).toEqual({
      v: 1,
      type: 'welcome',
      protocol_version: PROTOCOL_VERSION,
      oldest_supported_protocol: PROTOCOL_VERSION - 1,
      missing_features: ['power.set'],
    });
    const shown = (await stack.api.call('GET', `/v1/agents/${partial.hostname}`)).body;
    expect(shown).toMatchObject({
      protocol_version: PROTOCOL_VERSION,
      supported: true,
      missing_features: ['power.set'],
    });

    const uuid = await stack.createNode(RAW_SITE);
    const answer = await stack.api.call('PUT', `/v1/nodes/${uuid}/states/power`, {
      body: { target: 'power on' },
      version: '1.82',
    });
    expect(answer.status).toBe(202);
    await socket.next('wake');
    expect(await socket.pull()).toEqual([]);
    const failed = await waitFor(async () => {
      const current = await node(uuid);
      return current.reservation === null && current.last_error ? current : undefined;
    }, 'the power action to fail');
    expect(failed.last_error).toContain(
      `agent skew-partial (version 0.2.0, protocol ${PROTOCOL_VERSION}) does not support action power.set: upgrade the agent`,
    );
    expect(failed.power_state).toBeNull();
    await socket.close();
  });
});
