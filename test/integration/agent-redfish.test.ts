/**
 * The agent's redfish hardware type against real Redfish services: sushy-emulator
 * (sushy-tools 2.2.0, upstream and through the lab's wrapper, over HTTP and HTTPS), and a
 * few local `node:http`/`node:net` servers for what no emulator does on demand (5xx,
 * malformed JSON, a BMC that accepts connections and never answers).
 *
 * Requests are counted with the client's `onExchange` (what was sent, no secrets), and
 * connections on the local servers. Power states are polled by the driver itself, with a
 * deadline (`power.set`'s timeout); nothing here sleeps to synchronise, except where an
 * idle timeout of the BMC is the thing under test.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PowerState } from '../../agent/drivers/power-interface.ts';
import type { Exchange } from '../../agent/drivers/redfish/client.ts';
import {
  RedfishClient,
  type RedfishClientOptions,
  RedfishError,
  type RedfishTarget,
  redfishDriver,
  redfishTarget,
  supportedBootDevices,
} from '../../agent/drivers/redfish/index.ts';
import type { LoadedDriver } from '../../agent/drivers/types.ts';
import { createLogger, silentLogger } from '../../agent/log.ts';
import { freePort } from '../../local/moto.ts';
import { blackHole as openBlackHole } from '../support/black-hole.ts';
import { type SushyEmulator, startSushy } from '../support/sushy.ts';

const NODE = '7d3c2f7e-8a55-4c0b-9f3e-2f1b6c1d0a01';
/** Power actions get this much time; a busy 2-core machine never needs it. */
const POWER_TIMEOUT_S = 60;

let plain: SushyEmulator; // upstream: Basic auth, 2 systems, power applied 1-11 s later
let lab: SushyEmulator; // wrapper: sessions, power applied at once
let slow: SushyEmulator; // wrapper: power applied after 2 s, sessions expire after 2 s idle
let tls: SushyEmulator; // upstream over HTTPS, a self-signed certificate for IP:127.0.0.1
const scratch = mkdtempSync(join(tmpdir(), 'metalplane-redfish-'));
const timings: Record<string, number> = {};

beforeAll(async () => {
  const ready = { readyTimeoutMs: 90_000 };
  [plain, lab, slow, tls] = await Promise.all([
    startSushy({ ...ready, systems: 2, name: 'plain' }),
    startSushy({ ...ready, wrapper: true, name: 'lab' }),
    startSushy({ ...ready, wrapper: true, powerDelay: 2, sessionTimeout: 2, name: 'slow' }),
    startSushy({ ...ready, tls: true, name: 'tls' }),
  ]);
}, 120_000);

afterAll(async () => {
  await Promise.all([plain, lab, slow, tls].map((emulator) => emulator?.stop()));
  rmSync(scratch, { recursive: true, force: true });
  // The figures the report quotes (one power toggle against the emulator).
  console.info('redfish timings (ms):', JSON.stringify(timings));
});

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A client recording its exchanges, closed after the test. */
function recordingClient(options: RedfishClientOptions = {}) {
  const exchanges: Exchange[] = [];
  const client = new RedfishClient({ onExchange: (e) => exchanges.push(e), ...options });
  cleanups.push(() => client.close());
  const driver = redfishDriver(client, { pollIntervalMs: 100 });
  return { client, driver, exchanges };
}

const infoFor = (emulator: SushyEmulator, extra: Record<string, unknown> = {}) => ({
  redfish_address: emulator.url,
  redfish_username: emulator.username,
  redfish_password: emulator.password,
  redfish_system_id: emulator.systems[0]?.path,
  ...extra,
});

const targetOf = (info: Record<string, unknown>): RedfishTarget =>
  redfishTarget({ node: NODE, driverInfo: info });

/** Runs one of the driver's actions as the executor does (validate, then run). */
async function act(driver: LoadedDriver, action: string, args: Record<string, unknown>) {
  const found = Object.values(driver.interfaces)
    .flatMap((i) => i?.actions ?? [])
    .find((a) => a.name === action);
  if (!found) throw new Error(`no action ${action}`);
  const refusal = found.validate?.(args);
  if (refusal) throw new Error(`refused: ${refusal}`);
  return found.run({
    command: {
      id: 'cmd-1',
      node: NODE,
      action,
      args,
      deadline: new Date(Date.now() + 120_000).toISOString(),
      attempt: 1,
      receipt: 'r',
    },
    args,
    signal: AbortSignal.timeout(120_000),
    log: silentLogger,
  });
}

const powerSet = (driver: LoadedDriver, info: Record<string, unknown>, target: string) =>
  act(driver, 'power.set', { driver: 'redfish', driver_info: info, target, timeout: POWER_TIMEOUT_S });
const powerGet = async (driver: LoadedDriver, info: Record<string, unknown>) =>
  (await act(driver, 'power.get', { driver: 'redfish', driver_info: info })).power_state as PowerState;

const failure = async (work: Promise<unknown>): Promise<RedfishError> => {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RedfishError)) throw new Error(`expected a RedfishError, got ${String(error)}`);
  return error;
};

const count = (exchanges: Exchange[], method: string, path?: string | RegExp) =>
  exchanges.filter(
    (e) =>
      e.method === method &&
      (path === undefined || (typeof path === 'string' ? e.path === path : path.test(e.path))),
  ).length;

/** A direct request to an emulator with Basic auth (the test's own view of the BMC). */
async function basicRequest(emulator: SushyEmulator, method: string, path: string) {
  const response = await fetch(`${emulator.url}${path}`, {
    method,
    headers: {
      Authorization: `Basic ${Buffer.from(`${emulator.username}:${emulator.password}`).toString('base64')}`,
    },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

const sessionIds = async (emulator: SushyEmulator) => {
  const { body } = await basicRequest(emulator, 'GET', '/redfish/v1/SessionService/Sessions');
  return (body.Members as { '@odata.id': string }[]).map((m) => m['@odata.id']);
};

describe('redfish against sushy-emulator (upstream: Basic auth only)', () => {
  it('reads the power state with auto auth: no SessionService, so Basic', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(plain);
    expect(await powerGet(driver, info)).toBe('power off');
    expect(exchanges.map((e) => `${e.method} ${e.path} ${e.status}`)).toStrictEqual([
      'GET /redfish/v1/ 200', // auto: does the service root offer sessions? (no)
      `GET ${plain.systems[0]?.path} 200`,
    ]);
    expect(await powerGet(driver, info)).toBe('power off');
    expect(exchanges).toHaveLength(3);
  });

  it('follows the 307 of a system named by name, within the BMC', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(plain, { redfish_system_id: `/redfish/v1/Systems/${plain.systems[1]?.name}` });
    expect(await powerGet(driver, info)).toBe('power off');
    expect(exchanges.slice(-2).map((e) => `${e.path} ${e.status}`)).toStrictEqual([
      `/redfish/v1/Systems/${plain.systems[1]?.name} 307`,
      `${plain.systems[1]?.path} 200`,
    ]);
  });

  it('needs redfish_system_id on a BMC with several systems, and says how many', async () => {
    const { driver } = recordingClient();
    const error = await failure(powerGet(driver, infoFor(plain, { redfish_system_id: undefined })));
    expect(error.kind).toBe('config');
    expect(error.message).toMatch(
      new RegExp(
        `^Redfish BMC at ${plain.url} manages 2 systems \\(/redfish/v1/Systems/[0-9a-f-]+, /redfish/v1/Systems/[0-9a-f-]+\\): set driver_info/redfish_system_id to this node's$`,
      ),
    );
  });

  it('sets and reads the boot device; this emulator ignores BootSourceOverrideEnabled', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(plain, { redfish_system_id: plain.systems[1]?.path });
    const set = (boot_device: string, persistent: boolean) =>
      act(driver, 'management.set_boot_device', { driver_info: info, boot_device, persistent });
    const get = () => act(driver, 'management.get_boot_device', { driver_info: info });
    // Upstream sushy-emulator stores the target but not Enabled: it always reads "Continuous",
    // so a one-time device reads back as persistent here (the wrapper below keeps Once).
    await set('pxe', false);
    expect(await get()).toStrictEqual({ boot_device: 'pxe', persistent: true });
    await set('cdrom', true);
    expect(await get()).toStrictEqual({ boot_device: 'cdrom', persistent: true });
    await set('disk', false);
    expect(await get()).toStrictEqual({ boot_device: 'disk', persistent: true });
    expect(count(exchanges, 'PATCH', plain.systems[1]?.path)).toBe(3);
  });

  it('reads the supported boot devices from the system’s AllowableValues', async () => {
    const { client } = recordingClient();
    // UEFI mode: [Pxe, Cd, Hdd, UefiHttp]; no BiosSetup on this emulator.
    expect(
      await supportedBootDevices(client, targetOf(infoFor(plain)), { signal: AbortSignal.timeout(10_000) }),
    ).toStrictEqual(['pxe', 'disk', 'cdrom']);
  });

  it('answers a wrong password with one request and a clear 401, never retried', async () => {
    const { driver, exchanges } = recordingClient();
    const wrong = 'not-the-Password-42';
    const info = infoFor(plain, { redfish_password: wrong, redfish_auth_type: 'basic' });
    const error = await failure(powerGet(driver, info));
    expect(error.message).toBe(
      `Redfish BMC at ${plain.url} refused the credentials for user admin (HTTP 401)`,
    );
    expect(error).toMatchObject({ kind: 'auth', status: 401 });
    expect(exchanges.map((e) => `${e.method} ${e.status}`)).toStrictEqual(['GET 401']);
    expect(JSON.stringify(exchanges)).not.toContain(wrong);
  });

  it('refuses session auth on a BMC without a SessionService', async () => {
    const { driver } = recordingClient();
    const error = await failure(powerGet(driver, infoFor(plain, { redfish_auth_type: 'session' })));
    expect(error.message).toBe(
      `Redfish BMC at ${plain.url} offers no SessionService: set redfish_auth_type to basic or auto`,
    );
  });

  it('reports the 501 this emulator answers to Nmi, with its message', async () => {
    const { driver } = recordingClient();
    const error = await failure(act(driver, 'management.inject_nmi', { driver_info: infoFor(plain) }));
    expect(error.message).toBe(
      `Redfish BMC at ${plain.url} answered HTTP 501 to POST ${plain.systems[0]?.path}/Actions/ComputerSystem.Reset: Base.1.0.GeneralError: Power state Nmi is not supported`,
    );
  });

  it('probes the power state for the sync with one GET per node and call', async () => {
    const { driver, exchanges } = recordingClient();
    const probe = driver.powerProbe;
    if (!probe) throw new Error('no probe');
    const nodes = plain.systems.map((system, i) => ({
      uuid: `node-${i}`,
      driver_info: infoFor(plain, { redfish_system_id: system.path, redfish_auth_type: 'basic' }),
      power_state: null,
    }));
    for (let sweep = 0; sweep < 3; sweep++) {
      for (const node of nodes) expect(await probe(node, AbortSignal.timeout(10_000))).toBe('power off');
    }
    expect(exchanges.map((e) => `${e.method} ${e.status}`)).toStrictEqual(Array(6).fill('GET 200'));
    expect(new Set(exchanges.map((e) => e.path))).toStrictEqual(new Set(plain.systems.map((s) => s.path)));
  });
});

describe('redfish against upstream sushy-emulator’s delayed power', () => {
  // Upstream's fake driver applies a power change 1-11 s after acknowledging it (random),
  // so only the driver's own wait (read back every 0.5 s until the state shows) makes this work.
  it('powers a node on and off, waiting for the state to show', async () => {
    const exchanges: Exchange[] = [];
    const client = new RedfishClient({ onExchange: (e) => exchanges.push(e) });
    cleanups.push(() => client.close());
    const driver = redfishDriver(client, { pollIntervalMs: 500 });
    const info = infoFor(plain);
    for (const [target, name] of [
      ['power on', 'upstream power on (1-11 s BMC delay, 0.5 s polls)'],
      ['power off', 'upstream power off (1-11 s BMC delay, 0.5 s polls)'],
    ] as const) {
      const started = performance.now();
      expect(await powerSet(driver, info, target)).toStrictEqual({ power_state: target });
      timings[name] = Math.round(performance.now() - started);
    }
    expect(count(exchanges, 'POST', /ComputerSystem\.Reset$/)).toBe(2);
    expect(await powerGet(driver, info)).toBe('power off');
  }, 90_000);
});

describe('redfish through sushy-lab.py (sessions, power applied at once)', () => {
  it('powers on, off, reboots and soft-powers-off through power.set, as ipmi does', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(lab, { redfish_system_id: undefined }); // the only system, found
    const resets = () => count(exchanges, 'POST', /ComputerSystem\.Reset$/);
    const timed = async (name: string, target: string) => {
      const started = performance.now();
      const result = await powerSet(driver, info, target);
      timings[name] = Math.round(performance.now() - started);
      return result;
    };
    expect(await powerGet(driver, info)).toBe('power off');

    expect(await timed('lab power on', 'power on')).toStrictEqual({ power_state: 'power on' });
    expect(resets()).toBe(1);
    expect(await powerSet(driver, info, 'power on')).toStrictEqual({ power_state: 'power on' });
    expect(resets()).toBe(1); // already on: nothing sent (Ironic's _can_skip_state_change)

    expect(await timed('lab reboot', 'rebooting')).toStrictEqual({ power_state: 'power on' });
    expect(resets()).toBe(3); // ForceOff, wait, On, wait
    expect(await powerSet(driver, info, 'soft rebooting')).toStrictEqual({ power_state: 'power on' });
    expect(resets()).toBe(5); // GracefulShutdown, wait, On, wait
    expect(await powerSet(driver, info, 'soft power off')).toStrictEqual({ power_state: 'power off' });
    expect(resets()).toBe(6);
    expect(await powerSet(driver, info, 'rebooting')).toStrictEqual({ power_state: 'power on' });
    expect(resets()).toBe(7); // off already: On only
    expect(await timed('lab power off', 'power off')).toStrictEqual({ power_state: 'power off' });
    expect(resets()).toBe(8);
    expect(await powerGet(driver, info)).toBe('power off');
    // One session for all of it, the system looked up once.
    expect(count(exchanges, 'POST', '/redfish/v1/SessionService/Sessions')).toBe(1);
    expect(count(exchanges, 'GET', '/redfish/v1/Systems')).toBe(1);
  });

  it('injects an NMI (ResetType Nmi)', async () => {
    const { driver, exchanges } = recordingClient();
    expect(await act(driver, 'management.inject_nmi', { driver_info: infoFor(lab) })).toStrictEqual({});
    expect(exchanges.at(-1)).toMatchObject({
      method: 'POST',
      path: `${lab.systems[0]?.path}/Actions/ComputerSystem.Reset`,
      status: 204,
    });
  });

  it('keeps one session per BMC and user, and deletes it on close', async () => {
    const before = await sessionIds(lab);
    const exchanges: Exchange[] = [];
    const client = new RedfishClient({ onExchange: (e) => exchanges.push(e) });
    const driver = redfishDriver(client);
    const info = infoFor(lab);
    for (let i = 0; i < 3; i++) await powerGet(driver, info);
    await driver.powerProbe?.(
      { uuid: NODE, driver_info: info, power_state: null },
      AbortSignal.timeout(10_000),
    );
    expect(count(exchanges, 'POST', '/redfish/v1/SessionService/Sessions')).toBe(1);
    const opened = (await sessionIds(lab)).filter((id) => !before.includes(id));
    expect(opened).toHaveLength(1);
    await client.close();
    expect(exchanges.at(-1)).toMatchObject({ method: 'DELETE', path: opened[0], status: 204 });
    expect(await sessionIds(lab)).not.toContain(opened[0]);
  });

  it('uses Basic when told to, without a session', async () => {
    const { driver, exchanges } = recordingClient();
    expect(await powerGet(driver, infoFor(lab, { redfish_auth_type: 'basic' }))).toMatch(/^power o/);
    expect(exchanges.map((e) => e.method)).toStrictEqual(['GET']);
  });

  it('keeps a one-time boot device until the next power on consumes it', async () => {
    const { driver } = recordingClient();
    const info = infoFor(lab);
    const get = () => act(driver, 'management.get_boot_device', { driver_info: info });
    await act(driver, 'management.set_boot_device', {
      driver_info: info,
      boot_device: 'pxe',
      persistent: false,
    });
    expect(await get()).toStrictEqual({ boot_device: 'pxe', persistent: false });
    await powerSet(driver, info, 'power off');
    await powerSet(driver, info, 'power on');
    expect(await get()).toStrictEqual({ boot_device: null, persistent: null }); // Enabled: Disabled
    await act(driver, 'management.set_boot_device', {
      driver_info: info,
      boot_device: 'disk',
      persistent: true,
    });
    expect(await get()).toStrictEqual({ boot_device: 'disk', persistent: true });
    await powerSet(driver, info, 'power off');
  });

  it('logs in once more when the BMC dropped the session, and retries once', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(lab);
    await powerGet(driver, info);
    const ours = exchanges.find((e) => e.method === 'POST' && e.status === 201);
    expect(ours).toBeDefined();
    for (const id of await sessionIds(lab)) await basicRequest(lab, 'DELETE', id); // as a BMC reboot would
    exchanges.length = 0;
    expect(await powerGet(driver, info)).toMatch(/^power o/);
    expect(exchanges.map((e) => `${e.method} ${e.status}`)).toStrictEqual(['GET 401', 'POST 201', 'GET 200']);
  });

  it('answers a wrong password with a clear 401: one login per call, never a loop', async () => {
    const { driver, exchanges } = recordingClient();
    const wrong = 'wrong-Secret-Passw0rd';
    const info = infoFor(lab, { redfish_password: wrong });
    for (let call = 0; call < 2; call++) {
      const error = await failure(powerGet(driver, info));
      expect(error.message).toBe(
        `Redfish BMC at ${lab.url} refused the credentials for user admin (HTTP 401)`,
      );
      expect(error.message).not.toContain(wrong);
    }
    // The service root once (remembered), then one refused login per call.
    expect(exchanges.map((e) => `${e.method} ${e.path} ${e.status}`)).toStrictEqual([
      'GET /redfish/v1/ 200',
      'POST /redfish/v1/SessionService/Sessions 401',
      'POST /redfish/v1/SessionService/Sessions 401',
    ]);
  });
});

describe('redfish against a slow BMC (power after 2 s, sessions expiring after 2 s idle)', () => {
  it('waits, reading the state back, until the BMC reports the target', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(slow);
    expect(await powerGet(driver, info)).toBe('power off');
    const reads = () => count(exchanges, 'GET', slow.systems[0]?.path);
    const readsBefore = reads();
    const started = performance.now();
    expect(await powerSet(driver, info, 'power on')).toStrictEqual({ power_state: 'power on' });
    timings['slow power on (2 s BMC delay, 100 ms polls)'] = Math.round(performance.now() - started);
    // The BMC acknowledged at once but read Off for at least a second: several reads.
    expect(reads() - readsBefore).toBeGreaterThanOrEqual(3);
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('logs in again once after the session expired, and retries once', async () => {
    const { driver, exchanges } = recordingClient();
    const info = infoFor(slow);
    await powerGet(driver, info);
    expect(count(exchanges, 'POST', '/redfish/v1/SessionService/Sessions')).toBe(1);
    // The session's idle timeout (2 s) is what is under test: let it pass.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    exchanges.length = 0;
    expect(await powerGet(driver, info)).toMatch(/^power o/);
    expect(exchanges.map((e) => `${e.method} ${e.status}`)).toStrictEqual(['GET 401', 'POST 201', 'GET 200']);
  });
});

describe('redfish over HTTPS', () => {
  it('verifies the certificate against redfish_verify_ca (a file, or a directory of PEM files)', async () => {
    const { driver } = recordingClient();
    expect(await powerGet(driver, infoFor(tls, { redfish_verify_ca: tls.caPath }))).toBe('power off');
    const dir = mkdtempSync(join(scratch, 'cas-'));
    copyFileSync(tls.caPath as string, join(dir, 'bmc.pem'));
    const { driver: second } = recordingClient();
    expect(await powerGet(second, infoFor(tls, { redfish_verify_ca: dir }))).toBe('power off');
  });

  it('refuses a self-signed certificate by default, naming the BMC and the TLS error', async () => {
    const { driver, exchanges } = recordingClient();
    const error = await failure(powerGet(driver, infoFor(tls)));
    expect(error.kind).toBe('tls');
    expect(error.message).toMatch(
      new RegExp(
        `^Redfish BMC at ${tls.url} failed TLS verification \\(DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate\\): set redfish_verify_ca to the BMC's CA bundle, or false to skip verification$`,
      ),
    );
    // A certificate problem is no outage: the circuit stays closed, the next call goes out.
    expect(await powerGet(driver, infoFor(tls, { redfish_verify_ca: false }))).toBe('power off');
    expect(exchanges.at(-1)?.status).toBe(200);
  });

  it('skips verification when redfish_verify_ca is false (or "false")', async () => {
    const { driver } = recordingClient();
    expect(await powerGet(driver, infoFor(tls, { redfish_verify_ca: 'false' }))).toBe('power off');
  });

  it('refuses a trusted certificate issued for another name', async () => {
    const { driver } = recordingClient();
    // The certificate names IP:127.0.0.1 only; "localhost" reaches the same server.
    const info = infoFor(tls, {
      redfish_address: `https://localhost:${tls.port}`,
      redfish_verify_ca: tls.caPath,
    });
    const error = await failure(powerGet(driver, info));
    expect(error.kind).toBe('tls');
    expect(error.message).toContain(
      `Redfish BMC at https://localhost:${tls.port} failed TLS verification (ERR_TLS_CERT_ALTNAME_INVALID`,
    );
  });
});

// --- a misbehaving BMC --------------------------------------------------------------------

interface LocalBmc {
  readonly url: string;
  readonly requests: string[];
  connections(): number;
  close(): Promise<void>;
}

type Handler = (request: http.IncomingMessage, body: string, response: http.ServerResponse) => void;

/** A local HTTP server answering as `handler` says, counting connections and requests. */
async function localBmc(handler: Handler): Promise<LocalBmc> {
  let connections = 0;
  const requests: string[] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    request.on('end', () => {
      requests.push(`${request.method} ${request.url}`);
      handler(request, body, response);
    });
  });
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const bmc: LocalBmc = {
    url: `http://127.0.0.1:${port}`,
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  cleanups.push(() => bmc.close());
  return bmc;
}

/** A hung BMC, closed after the test. */
async function blackHole() {
  const hole = await openBlackHole();
  cleanups.push(() => hole.close());
  return hole;
}

const json = (response: http.ServerResponse, status: number, body: unknown, type = 'application/json') => {
  response.writeHead(status, { 'Content-Type': type });
  response.end(typeof body === 'string' ? body : JSON.stringify(body));
};

const SECRET = 'Very-S3cret-BMC-password';
const basicInfo = (url: string, extra: Record<string, unknown> = {}) => ({
  redfish_address: url,
  redfish_username: 'admin',
  redfish_password: SECRET,
  redfish_system_id: '/redfish/v1/Systems/1',
  redfish_auth_type: 'basic',
  ...extra,
});
const call = () => ({ signal: AbortSignal.timeout(20_000) });

describe('redfish against a misbehaving BMC', () => {
  it('reports a 5xx with the Redfish message, or an excerpt of a text or HTML body', async () => {
    const bmc = await localBmc((request, _body, response) => {
      if (request.url?.endsWith('/json')) {
        json(response, 500, {
          error: {
            code: 'Base.1.0.InternalError',
            message: 'See ExtendedInfo',
            '@Message.ExtendedInfo': [{ Message: 'The BMC is updating its firmware.' }],
          },
        });
      } else if (request.url?.endsWith('/text')) json(response, 503, 'busy, try later');
      else
        json(
          response,
          500,
          '<html><title>500 Internal Server Error</title><h1>Oops</h1></html>',
          'text/html',
        );
    });
    const { client } = recordingClient();
    const target = targetOf(basicInfo(bmc.url));
    const message = async (path: string) => (await failure(client.get(target, path, call()))).message;
    expect(await message('/redfish/v1/json')).toBe(
      `Redfish BMC at ${bmc.url} answered HTTP 500 to GET /redfish/v1/json: Base.1.0.InternalError: The BMC is updating its firmware.`,
    );
    expect(await message('/redfish/v1/text')).toBe(
      `Redfish BMC at ${bmc.url} answered HTTP 503 to GET /redfish/v1/text: busy, try later`,
    );
    expect(await message('/redfish/v1/html')).toBe(
      `Redfish BMC at ${bmc.url} answered HTTP 500 to GET /redfish/v1/html: 500 Internal Server Error Oops`,
    );
    // HTTP errors come from a live BMC: the circuit stayed closed for each of them.
    expect(bmc.requests).toHaveLength(3);
  });

  it('reports malformed JSON in a 200, and an answer over the size limit', async () => {
    const bmc = await localBmc((request, _body, response) => {
      if (request.url === '/redfish/v1/Systems/1') json(response, 200, '{"PowerState": "On", ');
      else json(response, 200, { padding: 'x'.repeat(10_000) });
    });
    const { driver, client } = recordingClient({ maxBodyBytes: 4096 });
    const error = await failure(powerGet(driver, basicInfo(bmc.url)));
    expect(error.message).toBe(
      `Redfish BMC at ${bmc.url} answered malformed JSON for GET /redfish/v1/Systems/1`,
    );
    const big = await failure(client.get(targetOf(basicInfo(bmc.url)), '/redfish/v1/big', call()));
    expect(big.message).toBe(
      `Redfish BMC at ${bmc.url} answered more than 4096 bytes to GET /redfish/v1/big`,
    );
  });

  it('never shows the password, even from a BMC echoing the request back', async () => {
    const bmc = await localBmc((request, body, response) => {
      if (request.url === '/redfish/v1/') {
        json(response, 200, { Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } } });
      } else json(response, 500, `you sent ${request.headers.authorization ?? ''} ${body}`, 'text/plain');
    });
    const lines: string[] = [];
    const log = createLogger({ level: 'debug', write: (line) => lines.push(line) });
    const { driver, exchanges } = recordingClient({ log });
    const basicError = await failure(powerGet(driver, basicInfo(bmc.url)));
    expect(basicError.message).toBe(
      `Redfish BMC at ${bmc.url} answered HTTP 500 to GET /redfish/v1/Systems/1: you sent Basic ***`,
    );
    const sessionError = await failure(
      powerGet(driver, basicInfo(bmc.url, { redfish_auth_type: 'session' })),
    );
    expect(sessionError.message).toBe(
      `Redfish BMC at ${bmc.url} answered HTTP 500 to POST /redfish/v1/SessionService/Sessions: you sent {"UserName":"admin","Password":"***"}`,
    );
    const everything = JSON.stringify([basicError.message, sessionError.message, exchanges, lines]);
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain(Buffer.from(`admin:${SECRET}`).toString('base64'));
  });

  it('a session refused twice: one new login and one retry, then a clear error', async () => {
    const bmc = await localBmc((request, _body, response) => {
      if (request.url === '/redfish/v1/') {
        json(response, 200, { Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } } });
      } else if (request.method === 'POST') {
        response.writeHead(201, {
          'X-Auth-Token': `token-${bmc.requests.length}`,
          Location: '/redfish/v1/SessionService/Sessions/1',
        });
        response.end('{}');
      } else json(response, 401, { error: { code: 'Base.1.0.NoValidSession', message: 'no' } });
    });
    const { driver, exchanges } = recordingClient();
    const error = await failure(powerGet(driver, basicInfo(bmc.url, { redfish_auth_type: 'auto' })));
    expect(error.message).toBe(
      `Redfish BMC at ${bmc.url} refused the session it had just opened for user admin (HTTP 401 after a new login): authentication failed; check the account's role and the BMC's session limit`,
    );
    expect(exchanges.map((e) => `${e.method} ${e.status}`)).toStrictEqual([
      'GET 200',
      'POST 201',
      'GET 401',
      'POST 201',
      'GET 401',
    ]);
  });

  it('follows a redirect within the BMC, not to another origin', async () => {
    const bmc = await localBmc((request, _body, response) => {
      if (request.url === '/redfish/v1/Systems/by-name') {
        response.writeHead(307, { Location: '/redfish/v1/Systems/1' }).end();
      } else if (request.url === '/redfish/v1/Systems/away') {
        response.writeHead(308, { Location: 'http://192.0.2.1/redfish/v1/Systems/1' }).end();
      } else json(response, 200, { PowerState: 'On' });
    });
    const { driver } = recordingClient();
    expect(
      await powerGet(driver, basicInfo(bmc.url, { redfish_system_id: '/redfish/v1/Systems/by-name' })),
    ).toBe('power on');
    const error = await failure(
      powerGet(driver, basicInfo(bmc.url, { redfish_system_id: '/redfish/v1/Systems/away' })),
    );
    expect(error.message).toBe(
      `Redfish BMC at ${bmc.url} redirected GET /redfish/v1/Systems/away to another origin (http://192.0.2.1): not followed`,
    );
  });

  it('talks to one BMC one request at a time, spaced by the minimum interval', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const arrivals: number[] = [];
    const bmc = await localBmc((_request, _body, response) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      arrivals.push(performance.now());
      setTimeout(() => {
        inFlight--;
        json(response, 200, { PowerState: 'Off' });
      }, 20);
    });
    const { client } = recordingClient({ minIntervalMs: 50 });
    const target = targetOf(basicInfo(bmc.url));
    await Promise.all(Array.from({ length: 5 }, () => client.get(target, '/redfish/v1/Systems/1', call())));
    expect(maxInFlight).toBe(1);
    const gaps = arrivals.slice(1).map((at, i) => at - (arrivals[i] as number));
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(65); // 20 ms answer + 50 ms pause, less jitter
  });
});

describe('redfish circuit breaker against a dead BMC', () => {
  it('one timeout, then calls fail at once without connecting until the cool-down ends', async () => {
    const hole = await blackHole();
    let now = 1_000_000;
    const { client, exchanges } = recordingClient({
      requestTimeoutMs: 1500,
      circuitCooldownMs: 60_000,
      now: () => now,
    });
    const target = targetOf(basicInfo(hole.url));
    const first = await failure(client.get(target, '/redfish/v1/Systems/1', call()));
    expect(first.kind).toBe('timeout');
    expect(first.message).toBe(
      `Redfish BMC at ${hole.url} did not answer GET /redfish/v1/Systems/1 within 1.5 s`,
    );
    expect(hole.connections()).toBe(1);

    // Answered by the open circuit, not by another wait: no new connection reached the hole.
    const second = await failure(client.get(target, '/redfish/v1/Systems/1', call()));
    expect(second.kind).toBe('circuit');
    expect(hole.connections()).toBe(1);
    expect(second.message).toBe(
      `Redfish BMC at ${hole.url} is unreachable (circuit open, next try in 60s, after: did not answer GET /redfish/v1/Systems/1 within 1.5 s)`,
    );
    expect(exchanges).toHaveLength(1);

    now += 60_000; // cooled down: one trial call goes out, times out, and opens the circuit again
    expect((await failure(client.get(target, '/redfish/v1/Systems/1', call()))).kind).toBe('timeout');
    expect(hole.connections()).toBe(2); // the first and the trial: nothing in between
    expect((await failure(client.get(target, '/redfish/v1/Systems/1', call()))).kind).toBe('circuit');
    expect(exchanges).toHaveLength(2);
  });

  it('opens on a refused connection too', async () => {
    const port = await freePort(); // nobody listens there
    const { client } = recordingClient();
    const target = targetOf(basicInfo(`http://127.0.0.1:${port}`));
    const refused = await failure(client.get(target, '/redfish/v1/Systems/1', call()));
    expect(refused.kind).toBe('unreachable');
    expect(refused.message).toBe(
      `Redfish BMC at http://127.0.0.1:${port} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    const next = await failure(client.get(target, '/redfish/v1/Systems/1', call()));
    expect(next.message).toBe(
      `Redfish BMC at http://127.0.0.1:${port} is unreachable (circuit open, next try in 30s, after: connect ECONNREFUSED 127.0.0.1:${port})`,
    );
  });

  it('makes a dead BMC cost the power sync one probe timeout, not one per node', async () => {
    const hole = await blackHole();
    const { driver } = recordingClient(); // the default 10 s request timeout: the probe's deadline ends first
    const probe = driver.powerProbe;
    if (!probe) throw new Error('no probe');
    const node = (i: number) => ({
      uuid: `node-${i}`,
      driver_info: basicInfo(hole.url, { redfish_system_id: `/redfish/v1/Systems/${i}` }),
      power_state: null,
    });
    const first = await failure(probe(node(1), AbortSignal.timeout(1500)));
    expect(first.message).toBe(`Redfish BMC at ${hole.url} did not answer GET /redfish/v1/Systems/1 in time`);
    for (let i = 2; i <= 4; i++) {
      // The open circuit answers: no connection, so no probe timeout waited.
      const error = await failure(probe(node(i), AbortSignal.timeout(1500)));
      expect(error.kind).toBe('circuit');
      expect(hole.connections()).toBe(1);
    }
    expect(hole.connections()).toBe(1);
  });

  it('a caller giving up is no failure of the BMC: the circuit stays closed', async () => {
    const hole = await blackHole();
    const { client } = recordingClient();
    const target = targetOf(basicInfo(hole.url));
    const stop = new AbortController();
    const pending = failure(client.get(target, '/redfish/v1/Systems/1', { signal: stop.signal }));
    // Give up once the request is on the wire (the hole counts the connection).
    for (let i = 0; i < 200 && hole.connections() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    stop.abort(new Error('agent stopping'));
    const error = await pending;
    expect(error.kind).toBe('aborted');
    expect(error.message).toBe(
      `GET /redfish/v1/Systems/1 to the Redfish BMC at ${hole.url} cancelled (agent stopping)`,
    );
    const next = client.get(target, '/redfish/v1/Systems/1', { signal: AbortSignal.timeout(300) });
    expect((await failure(next)).kind).toBe('timeout'); // it went out: not refused by a circuit
    expect(hole.connections()).toBe(2);
  });
});
