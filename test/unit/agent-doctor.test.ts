/** `metalplane-agent doctor` and `install` (agent/doctor.ts, agent/install.ts) with fakes and temp dirs. */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CheckResult,
  type DoctorDeps,
  formatResults,
  realDoctorDeps,
  runDoctor,
  writableBy,
} from '../../agent/doctor.ts';
import type { HttpResponse } from '../../agent/http-client.ts';
import { EXIT_NOT_STARTED, type InstallDeps, install, parseTokenFile } from '../../agent/install.ts';

let dir: string;
let configFile: string;
const ME = { uid: process.getuid!(), gid: process.getgid!() };

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'metalplane-doctor-'));
  configFile = join(dir, 'config.yaml');
  for (const d of ['state', 'tftp', 'http']) mkdirSync(join(dir, d), { mode: 0o700 });
  chmodSync(join(dir, 'state'), 0o700);
  writeFileSync(join(dir, 'state', 'credential'), 'mpa_0123456789abcdef\n', { mode: 0o600 });
  writeConfig();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(extra: string[] = []): void {
  writeFileSync(
    configFile,
    [
      'url: https://metal.example.com',
      'state_dir: ./state',
      'drivers: [ipmi]',
      'tftp:',
      '  root: ./tftp',
      '  address: 127.0.0.1',
      '  port: 6969',
      'http:',
      '  root: ./http',
      '  address: 127.0.0.1',
      '  port: 8080',
      ...extra,
      '',
    ].join('\n'),
  );
}

/** An answer of the control plane, as agent/http-client.ts gives it. */
function answer(status: number, date?: number): HttpResponse {
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: date === undefined ? {} : { date: new Date(date).toUTCString() },
    text: '{}',
  };
}

function fakes(over: Partial<DoctorDeps> = {}): DoctorDeps {
  const now = Date.parse('2026-12-04T12:00:00.000Z');
  return {
    request: async () => answer(200, now),
    now: () => now,
    openWebSocket: async () => undefined,
    which: () => true,
    lookupUser: async () => ({ ...ME, gids: [ME.gid] }),
    uid: () => ME.uid,
    tryBind: async () => undefined,
    portHolders: async () => [],
    processAlive: () => false,
    ...over,
  };
}

const byName = (results: CheckResult[], name: string) => {
  const found = results.find((r) => r.name === name);
  if (!found) throw new Error(`no ${name} check in ${formatResults(results)}`);
  return found;
};

describe('doctor', () => {
  it('all ok on a healthy host: one line per check, exit-worthy FAILs none', async () => {
    const results = await runDoctor({ configFile, user: 'svc' }, fakes());
    expect(
      results.filter((r) => r.status !== 'ok'),
      formatResults(results),
    ).toEqual([]);
    const text = formatResults(results);
    expect(text.trim().split('\n')).toHaveLength(results.length);
    for (const name of [
      'config',
      'control plane',
      'clock',
      'websocket',
      'tftp port',
      'http port',
      'state dir',
    ]) {
      expect(text).toMatch(new RegExp(`^ok +${name} `, 'm'));
    }
    expect(byName(results, 'websocket').detail).toContain('wss://metal.example.com/v1/agent/ws');
  });

  it('a config that does not parse is the one result', async () => {
    writeFileSync(configFile, 'url: [unclosed\n');
    const results = await runDoctor({ configFile }, fakes());
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ name: 'config', status: 'FAIL' });
    writeConfig(['bogus: 1']);
    expect((await runDoctor({ configFile }, fakes()))[0]!.detail).toContain('bogus: unknown field');
  });

  it('an unreachable control plane fails with what to check; the clock is then not measured', async () => {
    const request = async (): Promise<HttpResponse> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND control.example'), { code: 'ENOTFOUND' });
    };
    const results = await runDoctor({ configFile }, fakes({ request }));
    expect(byName(results, 'control plane')).toMatchObject({ status: 'FAIL' });
    expect(byName(results, 'control plane').detail).toContain('ENOTFOUND');
    expect(byName(results, 'control plane').detail).toContain('firewall');
    expect(byName(results, 'clock').status).toBe('warn');
    const down = async () => answer(503);
    expect(byName(await runDoctor({ configFile }, fakes({ request: down })), 'control plane').status).toBe(
      'FAIL',
    );
  });

  it('clock skew: under 5 s is ok, over fails with the fix', async () => {
    const at = (offsetMs: number) => async () =>
      answer(200, Date.parse('2026-12-04T12:00:00.000Z') + offsetMs);
    expect(byName(await runDoctor({ configFile }, fakes({ request: at(3000) })), 'clock').status).toBe('ok');
    const skewed = byName(await runDoctor({ configFile }, fakes({ request: at(-9000) })), 'clock');
    expect(skewed.status).toBe('FAIL');
    expect(skewed.detail).toMatch(/ahead of the control plane by 8\.5 s.*NTP/);
  });

  it('websocket: refused credential fails, unreachable fails, 401 without a credential is reachability', async () => {
    const refused = fakes({ openWebSocket: async () => 'HTTP 401' });
    expect(byName(await runDoctor({ configFile }, refused), 'websocket').detail).toContain('install --force');
    const down = fakes({ openWebSocket: async () => 'connect ECONNREFUSED' });
    expect(byName(await runDoctor({ configFile }, down), 'websocket').status).toBe('FAIL');
    rmSync(join(dir, 'state', 'credential'));
    const results = await runDoctor({ configFile }, refused);
    expect(byName(results, 'websocket').status).toBe('ok');
    expect(byName(results, 'credential').detail).toContain('metalplane-agent install');
  });

  it('the websocket URL comes from the config, else enrollment.json, else the url', async () => {
    const seen: string[] = [];
    const deps = fakes({
      openWebSocket: async (url) => {
        seen.push(url);
        return undefined;
      },
    });
    writeFileSync(join(dir, 'state', 'enrollment.json'), '{"websocket_url":"wss://ws.example.com/prod"}');
    await runDoctor({ configFile }, deps);
    writeConfig(['websocket_url: wss://other.example.com/x']);
    await runDoctor({ configFile }, deps);
    expect(seen).toEqual(['wss://ws.example.com/prod', 'wss://other.example.com/x']);
  });

  it('ports: taken by another program fails; held by the running agent is ok; low port without root warns', async () => {
    writeFileSync(join(dir, 'state', 'agent.lock'), '4242\n');
    const busy = fakes({ tryBind: async () => 'EADDRINUSE', processAlive: (pid) => pid === 4242 });
    const other = await runDoctor({ configFile }, { ...busy, portHolders: async () => [] });
    expect(byName(other, 'http port')).toMatchObject({ status: 'FAIL' });
    expect(byName(other, 'http port').detail).toContain('http.enabled: false');
    const ours = await runDoctor({ configFile }, { ...busy, portHolders: async () => [4242] });
    expect(byName(ours, 'tftp port').detail).toContain('served by this agent (pid 4242)');
    const low = await runDoctor({ configFile }, fakes({ tryBind: async () => 'EACCES', uid: () => 1000 }));
    expect(byName(low, 'tftp port').status).toBe('warn');
    writeConfig(['  enabled: false']); // http.enabled
    expect(byName(await runDoctor({ configFile }, busy), 'http port').status).toBe('ok');
  });

  it('the real port probe: a port this process listens on is found held by it', async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    try {
      expect(await realDoctorDeps.tryBind('tcp', '127.0.0.1', port)).toBe('EADDRINUSE');
      expect(await realDoctorDeps.portHolders('tcp', port, [process.pid])).toEqual([process.pid]);
      writeFileSync(join(dir, 'state', 'agent.lock'), `${process.pid}\n`);
      writeConfig([]);
      const text = readFileSync(configFile, 'utf8').replace('port: 8080', `port: ${port}`);
      writeFileSync(configFile, text);
      const results = await runDoctor(
        { configFile },
        {
          ...fakes(),
          tryBind: realDoctorDeps.tryBind,
          portHolders: realDoctorDeps.portHolders,
          processAlive: realDoctorDeps.processAlive,
        },
      );
      expect(byName(results, 'http port').detail).toContain(`served by this agent (pid ${process.pid})`);
    } finally {
      server.close();
    }
  });

  it('boot trees and state: missing, not writable by the service user, state readable by others, credential mode', async () => {
    rmSync(join(dir, 'tftp'), { recursive: true });
    chmodSync(join(dir, 'state'), 0o755);
    chmodSync(join(dir, 'state', 'credential'), 0o644);
    // Checked as root for a service user who owns nothing here.
    const deps = fakes({ uid: () => 0, lookupUser: async () => ({ uid: 4321, gid: 4321, gids: [4321] }) });
    const results = await runDoctor({ configFile, user: 'svc' }, deps);
    expect(byName(results, 'tftp root').detail).toContain('missing: install -d -o svc');
    expect(byName(results, 'http root').detail).toContain('not writable by svc: chown svc:');
    expect(byName(results, 'state dir').status).toBe('FAIL');
    expect(byName(results, 'credential').detail).toContain('chmod 0600');
  });

  it('writableBy: owner, group and other bits', () => {
    const user = { uid: 10, gid: 20, gids: [20, 30] };
    expect(writableBy({ uid: 10, gid: 0, mode: 0o700 }, user)).toBe(true);
    expect(writableBy({ uid: 10, gid: 0, mode: 0o500 }, user)).toBe(false);
    expect(writableBy({ uid: 0, gid: 30, mode: 0o770 }, user)).toBe(true);
    expect(writableBy({ uid: 0, gid: 40, mode: 0o775 }, user)).toBe(false);
    expect(writableBy({ uid: 0, gid: 40, mode: 0o777 }, user)).toBe(true);
  });

  it('tools: ipmitool fails when ipmi is enabled, virtual-media tools warn unless redfish is', async () => {
    const none = fakes({ which: () => false });
    const ipmiOnly = await runDoctor({ configFile }, none);
    expect(byName(ipmiOnly, 'ipmitool')).toMatchObject({
      status: 'FAIL',
      detail: expect.stringContaining('apt install ipmitool'),
    });
    expect(byName(ipmiOnly, 'xorriso').status).toBe('warn');
    expect(byName(ipmiOnly, 'isolinux.bin').detail).toContain('apt install isolinux');
    writeFileSync(
      configFile,
      readFileSync(configFile, 'utf8').replace('drivers: [ipmi]', 'drivers: [redfish]'),
    );
    const redfish = await runDoctor({ configFile }, none);
    expect(byName(redfish, 'ipmitool').status).toBe('warn');
    for (const tool of ['xorriso', 'mkfs.vfat', 'mcopy', 'isolinux.bin'])
      expect(byName(redfish, tool).status).toBe('FAIL');
  });
});

describe('install', () => {
  function installFakes(over: Partial<InstallDeps> = {}) {
    const calls: string[] = [];
    const out: string[] = [];
    const deps: InstallDeps = {
      systemdRunning: () => true,
      systemctl: async (args) => {
        calls.push(`systemctl ${args.join(' ')}`);
      },
      lookupUser: async (name) => (name === 'svc' ? { uid: 4321, gid: 4321 } : undefined),
      isRoot: () => false,
      chown: async (path, uid) => {
        calls.push(`chown ${uid} ${path.slice(dir.length)}`);
      },
      enroll: async (o) => {
        calls.push(`enroll ${o.url} ${o.token}`);
        writeFileSync(join(o.config.stateDir, 'credential'), 'mpa_new_credential_0123\n', { mode: 0o600 });
        return { credentialPath: join(o.config.stateDir, 'credential'), info: { site: 'fra1' } };
      },
      out: (line) => out.push(line),
      ...over,
    };
    return { deps, calls, out };
  }

  beforeEach(() => {
    rmSync(join(dir, 'state', 'credential'));
    writeFileSync(configFile, 'state_dir: ./state\n# url: https://metalplane.example.com\n');
  });

  it('fills in the url, enrolls, gives the state to the service user and starts the service', async () => {
    const { deps, calls, out } = installFakes({ isRoot: () => true });
    const tokenFile = join(dir, 'enroll-token');
    writeFileSync(tokenFile, '# from the admin\nurl=https://metal.example.com/\ntoken=mpe_abc\n');
    const status = await install({ configFile, tokenFile, user: 'svc', removeTokenFile: true }, deps);
    expect(status).toBe(0);
    expect(readFileSync(configFile, 'utf8')).toContain('\nurl: https://metal.example.com\n');
    expect(calls).toEqual([
      'enroll https://metal.example.com mpe_abc',
      'chown 4321 /state',
      'chown 4321 /state/credential',
      'systemctl enable --now metalplane-agent.service',
    ]);
    expect(() => readFileSync(tokenFile)).toThrow();
    expect(out.join('\n')).toContain('enrolled');
  });

  it('without systemd it says so and exits 3; --no-start exits 0; a second run skips enrollment', async () => {
    const { deps, calls, out } = installFakes({ systemdRunning: () => false });
    expect(await install({ configFile, url: 'https://m.example.com', token: 'mpe_x' }, deps)).toBe(
      EXIT_NOT_STARTED,
    );
    expect(out.at(-1)).toContain('systemd is not running');
    expect(calls.some((c) => c.startsWith('systemctl'))).toBe(false);
    expect(await install({ configFile, url: 'https://m.example.com', start: false }, deps)).toBe(0);
    expect(out.join('\n')).toContain('already enrolled');
    expect(calls.filter((c) => c.startsWith('enroll'))).toHaveLength(1);
  });

  it('refuses a url different from the config, a missing token, an unknown service user', async () => {
    const { deps } = installFakes({ isRoot: () => true });
    writeFileSync(configFile, 'state_dir: ./state\nurl: https://a.example.com\n');
    await expect(install({ configFile, url: 'https://b.example.com', token: 'mpe_x' }, deps)).rejects.toThrow(
      /is https:\/\/a\.example\.com, but https:\/\/b\.example\.com was given/,
    );
    await expect(install({ configFile }, deps)).rejects.toThrow(/give --token/);
    await expect(install({ configFile, token: 'mpe_x', user: 'nobody-here' }, deps)).rejects.toThrow(
      /service user nobody-here does not exist/,
    );
  });

  it('parses the token file: the token alone, or url= / token= lines', () => {
    expect(parseTokenFile('mpe_abc\n')).toEqual({ token: 'mpe_abc' });
    expect(parseTokenFile('url = https://x\n token=mpe_y\n')).toEqual({ url: 'https://x', token: 'mpe_y' });
  });
});
