/**
 * Bad BMC answers through the API alone (issue 15): what the operator reads in a node's
 * `last_error` after a power action — and in its `maintenance_reason` after the power
 * sync gives up — when the BMC times out, presents a certificate the node does not trust,
 * or keeps answering 401. (5xx and malformed JSON: `redfish.test.ts`.)
 *
 * The full stack as in `redfish.test.ts`: the control plane on moto, a real agent process
 * (driver redfish, a 2 s request timeout) and real Redfish services: sushy-emulator
 * behind the lab's wrapper over HTTPS with a self-signed certificate, the same wrapper in
 * its 401-loop mode (logins succeed, every request with the session token is refused), and
 * two local servers: one that accepts TCP connections and never answers, one that answers
 * the service root and the login at once and the system only long after the timeout.
 *
 * Requests are counted on the BMC side: the emulator's log (werkzeug writes one line per
 * request before answering it) and the local servers' own counts. Nothing sleeps to
 * synchronise: every wait polls the API with a bound.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../../agent/testing/agent-process.ts';
import { blackHole as openBlackHole } from '../support/black-hole.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';
import { startRedfishAgent } from '../support/redfish-agent.ts';
import { type SushyEmulator, startSushy } from '../support/sushy.ts';

const SITE = 'rf-faults';
const PASSWORD = 'rf-Fault-S3cret-pw';
/** The agent's `redfish.request_timeout`. */
const REQUEST_TIMEOUT = '2s';
/** Long enough that a circuit opened by one test stays open for the rest of it. */
const CIRCUIT_COOLDOWN = '120s';

let stack: ChannelStack;
let agent: AgentProcess;
let tls: SushyEmulator; // the wrapper over HTTPS, a self-signed certificate for IP:127.0.0.1
let loop: SushyEmulator; // the wrapper in its 401-loop mode
let scratch: string;
/** A self-signed certificate that did not sign the emulator's: a CA bundle of the wrong CA. */
let otherCa: string;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'metalplane-rf-faults-'));
  otherCa = join(scratch, 'other-ca.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '30',
      '-subj',
      '/CN=some-other-ca',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(scratch, 'other-ca.key'),
      '-out',
      otherCa,
    ],
    { stdio: 'ignore', timeout: 30_000 },
  );
  const ready = { readyTimeoutMs: 90_000, password: PASSWORD };
  const [channel, tlsBmc, loopBmc] = await Promise.all([
    startChannel({ syncWaitMs: 15_000 }),
    startSushy({ ...ready, wrapper: true, tls: true, systems: 3, name: 'rf-tls' }),
    startSushy({ ...ready, wrapper: true, refuseSessionTokens: true, systems: 2, name: 'rf-loop' }),
  ]);
  stack = channel;
  tls = tlsBmc;
  loop = loopBmc;
  expect((await stack.createSite(SITE)).status).toBe(201);
  agent = await startRedfishAgent(stack, SITE, 'rf-faults-agent', {
    powerSync: { interval: '1s', timeout: '3s' },
    redfish: {
      request_timeout: REQUEST_TIMEOUT,
      min_request_interval: '0ms',
      circuit_cooldown: CIRCUIT_COOLDOWN,
      poll_interval: '100ms',
    },
  });
}, 120_000);

afterAll(async () => {
  await agent?.cleanup();
  for (const close of closers.splice(0).reverse()) await close();
  await Promise.all([tls?.stop(), loop?.stop()]);
  await stack?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const api = (method: string, path: string, body?: unknown) =>
  stack.api.call(method, path, body === undefined ? {} : { body });

const read = async (uuid: string) => (await api('GET', `/v1/nodes/${uuid}`)).body;

/** Waits for the node to be free again (no task, no target power state); answers it. */
async function settled(uuid: string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const node = await read(uuid);
      return node.reservation === null && node.target_power_state === null ? node : undefined;
    },
    `node ${uuid} to settle`,
    timeoutMs,
  );
}

async function redfishNode(driverInfo: Record<string, unknown>): Promise<string> {
  return stack.createNode(SITE, {
    driver: 'redfish',
    driver_info: { redfish_username: 'admin', redfish_password: PASSWORD, ...driverInfo },
  });
}

/** Asks for `power on` and answers the node once the action has ended. */
async function powerOn(uuid: string) {
  expect((await api('PUT', `/v1/nodes/${uuid}/states/power`, { target: 'power on' })).status).toBe(202);
  return settled(uuid);
}

const FAILED = "Failed to change power state to 'power on' by 'power on': ";
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The open circuit's refusal after a timeout (it says how many seconds of the cool-down are left). */
const circuitOpen = (prefix: string, url: string) =>
  new RegExp(
    `^${literal(`${prefix}Redfish BMC at ${url} is unreachable (circuit open, next try in `)}\\d+${literal(
      's, after: did not answer GET /redfish/v1/Systems/1 within 2 s)',
    )}$`,
  );

/** What must never show: the password, or its Basic header. */
function expectNoSecret(text: unknown) {
  const shown = JSON.stringify(text);
  expect(shown).not.toContain(PASSWORD);
  expect(shown).not.toContain(Buffer.from(`admin:${PASSWORD}`).toString('base64'));
}

/** The requests an emulator served, `METHOD path status`, from its log. */
function served(emulator: SushyEmulator): string[] {
  return emulator
    .log()
    .split('\n')
    .flatMap((line) => {
      // `"GET /path HTTP/1.1" 200`; error lines are coloured (escape codes around the request).
      const match = /(GET|POST|PATCH|PUT|DELETE) (\/\S*) HTTP\/1\.[01]\S*" (\d{3})/.exec(line);
      return match ? [`${match[1]} ${match[2]} ${match[3]}`] : [];
    });
}

/** The requests the emulator served after the first `from`, once it has served `count` of them. */
async function servedSince(emulator: SushyEmulator, from: number, count: number): Promise<string[]> {
  return waitFor(
    () => {
      const lines = served(emulator).slice(from);
      return lines.length >= count ? lines : undefined;
    },
    `${count} requests in the emulator's log`,
    10_000,
  );
}

/** A hung BMC, closed after the test. */
async function blackHole() {
  const hole = await openBlackHole();
  closers.push(() => hole.close());
  return hole;
}

describe('a BMC that does not answer in time', () => {
  it('a BMC that accepts the connection and never answers: the timeout, then the open circuit', async () => {
    const hole = await blackHole();
    const node = await redfishNode({
      redfish_address: hole.url,
      redfish_system_id: '/redfish/v1/Systems/1',
      redfish_auth_type: 'basic',
    });
    const first = await powerOn(node);
    expect(first.last_error).toBe(
      `${FAILED}Redfish BMC at ${hole.url} did not answer GET /redfish/v1/Systems/1 within 2 s`,
    );
    expect(first.power_state).toBeNull();
    expect(hole.connections()).toBe(1);
    // Asked again within the cool-down: refused at once, saying why, without a connection.
    const second = await powerOn(node);
    expect(second.last_error).toMatch(circuitOpen(FAILED, hole.url));
    expect(hole.connections()).toBe(1);
    expectNoSecret([first, second]);
  }, 60_000);

  it('a BMC that logs in at once but answers the system only long after the timeout', async () => {
    const timers = new Set<NodeJS.Timeout>();
    const requests: string[] = [];
    const server = http.createServer((request, response) => {
      requests.push(`${request.method} ${request.url}`);
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
        response.end(JSON.stringify(body));
      };
      if (request.url === '/redfish/v1/') {
        json(200, {
          Systems: { '@odata.id': '/redfish/v1/Systems' },
          Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
        });
      } else if (request.method === 'POST' && request.url === '/redfish/v1/SessionService/Sessions') {
        request.resume();
        json(
          201,
          { '@odata.id': '/redfish/v1/SessionService/Sessions/1' },
          { 'X-Auth-Token': 'slow-token-1', Location: '/redfish/v1/SessionService/Sessions/1' },
        );
      } else {
        // Four times the agent's request timeout: it has given up long before.
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!response.destroyed) json(200, { PowerState: 'Off' });
        }, 8000);
        timers.add(timer);
      }
    });
    server.on('clientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          for (const timer of timers) clearTimeout(timer);
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const url = `http://127.0.0.1:${port}`;
    const node = await redfishNode({
      redfish_address: url,
      redfish_system_id: '/redfish/v1/Systems/slow',
      redfish_auth_type: 'session',
    });
    const done = await powerOn(node);
    expect(done.last_error).toBe(
      `${FAILED}Redfish BMC at ${url} did not answer GET /redfish/v1/Systems/slow within 2 s`,
    );
    expect(requests).toStrictEqual([
      'GET /redfish/v1/',
      'POST /redfish/v1/SessionService/Sessions',
      'GET /redfish/v1/Systems/slow',
    ]);
    expectNoSecret(done);
  }, 60_000);
});

describe('a BMC whose certificate the node does not trust', () => {
  const tlsNode = (extra: Record<string, unknown> = {}) =>
    redfishNode({
      redfish_address: tls.url,
      redfish_system_id: tls.systems[0]?.path,
      redfish_auth_type: 'session',
      ...extra,
    });

  it('the system CAs (redfish_verify_ca unset, or true): a certificate error naming the fix', async () => {
    for (const verify of [{}, { redfish_verify_ca: true }]) {
      const done = await powerOn(await tlsNode(verify));
      expect(done.last_error).toBe(
        `${FAILED}Redfish BMC at ${tls.url} failed TLS verification (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate): set redfish_verify_ca to the BMC's CA bundle, or false to skip verification`,
      );
      expect(done.last_error).not.toMatch(/unreachable|did not answer/);
      expectNoSecret(done);
    }
  }, 60_000);

  it('the CA bundle of another CA: a certificate error too; the right bundle powers the node on', async () => {
    const wrong = await powerOn(await tlsNode({ redfish_verify_ca: otherCa }));
    // The bundle is named: it was read, and holds no CA of this certificate.
    expect(wrong.last_error).toBe(
      `${FAILED}Redfish BMC at ${tls.url} failed TLS verification (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate) against redfish_verify_ca ${otherCa}: set redfish_verify_ca to the BMC's CA bundle, or false to skip verification`,
    );
    expectNoSecret(wrong);
    // The same BMC with its own CA: the fault was the certificate, nothing else.
    const right = await powerOn(await tlsNode({ redfish_verify_ca: tls.caPath }));
    expect(right).toMatchObject({ last_error: null, power_state: 'power on' });
  }, 60_000);
});

describe('a BMC answering 401', () => {
  const loopNode = (extra: Record<string, unknown> = {}) =>
    redfishNode({ redfish_address: loop.url, redfish_system_id: loop.systems[0]?.path, ...extra });

  it('sessions refused right after each login: one new login and one retry, then an authentication error', async () => {
    const node = await loopNode({ redfish_auth_type: 'auto' });
    const system = loop.systems[0]?.path;
    const before = served(loop).length;
    const first = await powerOn(node);
    const refused = `${FAILED}Redfish BMC at ${loop.url} refused the session it had just opened for user admin (HTTP 401 after a new login): authentication failed; check the account's role and the BMC's session limit`;
    expect(first.last_error).toBe(refused);
    expect(await servedSince(loop, before, 5)).toStrictEqual([
      'GET /redfish/v1/ 200',
      'POST /redfish/v1/SessionService/Sessions 201',
      `GET ${system} 401`,
      'POST /redfish/v1/SessionService/Sessions 201',
      `GET ${system} 401`,
    ]);
    // Asked again: the same bounded exchange (the service root is known by now), no loop.
    const second = await powerOn(node);
    expect(second.last_error).toBe(refused);
    expect(await servedSince(loop, before + 5, 3)).toStrictEqual([
      `GET ${system} 401`,
      'POST /redfish/v1/SessionService/Sessions 201',
      `GET ${system} 401`,
    ]);
    expectNoSecret([first, second, agent.logs]);
  }, 60_000);

  it('a wrong password with session auth: one refused login per action, never retried', async () => {
    const node = await loopNode({
      redfish_system_id: loop.systems[1]?.path,
      redfish_password: 'not-the-Passw0rd',
      redfish_auth_type: 'session',
    });
    const before = served(loop).length;
    const first = await powerOn(node);
    expect(first.last_error).toBe(
      `${FAILED}Redfish BMC at ${loop.url} refused the credentials for user admin (HTTP 401)`,
    );
    expect(await servedSince(loop, before, 2)).toStrictEqual([
      'GET /redfish/v1/ 200',
      'POST /redfish/v1/SessionService/Sessions 401',
    ]);
    const second = await powerOn(node);
    expect(second.last_error).toBe(first.last_error);
    expect(await servedSince(loop, before + 2, 1)).toStrictEqual([
      'POST /redfish/v1/SessionService/Sessions 401',
    ]);
    expect(JSON.stringify([first, second, agent.logs])).not.toContain('not-the-Passw0rd');
  }, 60_000);
});

describe('the power sync against bad BMCs', () => {
  it('faults a node past the retry limit, the BMC’s failure in maintenance_reason', async () => {
    const hole = await blackHole();
    const nodes = {
      certificate: await redfishNode({
        redfish_address: tls.url,
        redfish_system_id: tls.systems[2]?.path,
        redfish_auth_type: 'session',
      }),
      timeout: await redfishNode({
        redfish_address: hole.url,
        redfish_system_id: '/redfish/v1/Systems/1',
        redfish_auth_type: 'basic',
      }),
    };
    for (const uuid of Object.values(nodes)) {
      // Enrolling nodes are not synced (Ironic's SYNC_EXCLUDED_STATES): a managed one is.
      await stack.api.deps.nodes.modify(uuid, (n) => ({
        ...n,
        provision_state: 'manageable',
        power_state: 'power off',
      }));
    }
    const faulted = async (uuid: string) =>
      waitFor(
        async () => {
          const node = await read(uuid);
          return node.fault === 'power failure' ? node : undefined;
        },
        `node ${uuid} faulted by the power sync`,
        45_000,
      );
    const reason = (uuid: string) =>
      `During sync_power_state, max retries exceeded for node ${uuid}, node state None does not match expected state 'power off'. Updating DB state to 'None' Switching node to maintenance mode. Error: `;
    const certificate = await faulted(nodes.certificate);
    expect(certificate).toMatchObject({ maintenance: true, power_state: null });
    expect(certificate.maintenance_reason).toBe(
      `${reason(nodes.certificate)}Redfish BMC at ${tls.url} failed TLS verification (DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate): set redfish_verify_ca to the BMC's CA bundle, or false to skip verification`,
    );
    const timeout = await faulted(nodes.timeout);
    expect(timeout).toMatchObject({ maintenance: true, power_state: null });
    // The first probe timed out and opened the circuit; the later ones quote it.
    expect(timeout.maintenance_reason).toMatch(circuitOpen(reason(nodes.timeout), hole.url));
    expect(hole.connections()).toBe(1);
    expectNoSecret([certificate, timeout, agent.logs]);
  }, 90_000);
});
