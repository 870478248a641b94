/**
 * The agent's Debian package (`npm run package:agent`, issue 17): built, installed into a
 * clean filesystem root with `dpkg --root` (its own dpkg database; the maintainer scripts
 * run chrootless with DPKG_ROOT, so the service user, the state directory and the boot
 * trees are made in that root: nothing on the host is touched), then the installed agent
 * — the package's own Node.js and bundle, from that root — enrolls against the local stack
 * with `metalplane-agent install` and runs a power command given through the API.
 *
 * Package size, build and install times are printed (`[agent-package] ...`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildAgentPackage } from '../../scripts/package-agent.ts';
import { type ChannelStack, startChannel, waitFor } from '../support/channel.ts';

const hasDpkg =
  spawnSync('dpkg', ['--version']).status === 0 && spawnSync('useradd', ['--help']).status === 0;

let work: string;
let root: string;
let stack: ChannelStack;
let agent: ChildProcess | undefined;
let agentExited: Promise<void> | undefined;
let agentOutput = '';
let deb: string;
const SITE = 'pkg';

/**
 * A run of a program, bounded (killed after 60 s), with a clean environment (no NODE_OPTIONS
 * of vitest). Asynchronous: the control plane it talks to runs in this process.
 */
function run(command: string, args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, out });
    });
  });
}

beforeAll(async () => {
  if (!hasDpkg) return;
  work = mkdtempSync(join(tmpdir(), 'metalplane-package-'));
  // Fast compression for the test (xz by default takes about a minute); same contents.
  const built = await buildAgentPackage({ outDir: join(work, 'out'), compression: 'zstd' });
  deb = built.path;
  console.log(
    `[agent-package] ${built.version}: ${(built.bytes / 2 ** 20).toFixed(1)} MiB (zstd -3), built in ${(built.buildMs / 1000).toFixed(1)} s`,
  );
  stack = await startChannel({ syncWaitMs: 15_000 });
  expect((await stack.createSite(SITE)).status).toBe(201);
}, 120_000);

afterAll(async () => {
  if (agent?.pid && agent.exitCode === null && agent.signalCode === null) {
    process.kill(agent.pid, 'SIGKILL');
    await agentExited;
  }
  await stack?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

it.skipIf(!hasDpkg)(
  'installs into a clean root, enrolls with metalplane-agent install and powers a node on through the API',
  async () => {
    // A clean root: an empty dpkg database and the account files useradd edits.
    root = join(work, 'root');
    for (const dir of [
      'var/lib/dpkg/info',
      'var/lib/dpkg/updates',
      'var/lib/dpkg/triggers',
      'var/log',
      'etc',
    ]) {
      mkdirSync(join(root, dir), { recursive: true });
    }
    writeFileSync(join(root, 'var/lib/dpkg/status'), '');
    writeFileSync(join(root, 'var/lib/dpkg/available'), '');
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    writeFileSync(join(root, 'etc/shadow'), 'root:*:20000:0:99999:7:::\n', { mode: 0o600 });
    writeFileSync(join(root, 'etc/gshadow'), 'root:*::\n', { mode: 0o600 });
    const hostPasswd = readFileSync('/etc/passwd', 'utf8');

    const started = performance.now();
    const dpkg = await run('dpkg', [
      `--root=${root}`,
      `--log=${join(root, 'var/log/dpkg.log')}`,
      '--force-script-chrootless',
      '--force-not-root',
      // ipmitool, libc6... are not in this empty root's database; they are on any real host.
      '--force-depends',
      '-i',
      deb,
    ]);
    const installMs = Math.round(performance.now() - started);
    expect(dpkg.status, dpkg.out).toBe(0);
    console.log(`[agent-package] dpkg --root -i: ${installMs} ms`);
    expect((await run('dpkg', [`--root=${root}`, '-s', 'metalplane-agent'])).out).toContain(
      'Status: install ok installed',
    );
    // The host did not change.
    expect(readFileSync('/etc/passwd', 'utf8')).toBe(hostPasswd);

    // What postinst made in the root.
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    const account =
      /^metalplane-agent:x:(\d+):(\d+):[^:]*:\/var\/lib\/metalplane-agent:\/usr\/sbin\/nologin$/m.exec(
        passwd,
      );
    expect(account, passwd).not.toBeNull();
    const uid = Number(account![1]);
    const state = statSync(join(root, 'var/lib/metalplane-agent'));
    // Unprivileged (CI without root), postinst cannot give the directories away: it says so.
    const owner = process.getuid?.() === 0 ? uid : process.getuid?.();
    expect(state.mode & 0o777).toBe(0o700);
    expect(state.uid).toBe(owner);
    for (const dir of ['var/lib/tftpboot', 'var/www/html/pxe', 'var/www/html/pxe/images']) {
      const info = statSync(join(root, dir));
      expect(info.uid, dir).toBe(owner);
      expect(info.mode & 0o777, dir).toBe(0o755);
    }
    const unit = readFileSync(join(root, 'lib/systemd/system/metalplane-agent.service'), 'utf8');
    expect(unit).toContain(
      'ExecStart=/usr/bin/metalplane-agent run --config /etc/metalplane-agent/config.yaml',
    );
    expect(unit).toContain('User=metalplane-agent');
    const bin = join(root, 'usr/bin/metalplane-agent');
    // The installed default config is valid as shipped.
    const shipped = await run(bin, [
      'check-config',
      '--config',
      join(root, 'etc/metalplane-agent/config.yaml'),
    ]);
    expect(shipped.status, shipped.out).toBe(0);
    expect((await run(bin, ['--version'])).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);

    // The site's config: the shipped one's paths moved into the root, loopback servers on
    // free ports, and the fake hardware type.
    const config = join(root, 'etc/metalplane-agent/config.yaml');
    writeFileSync(
      config,
      [
        'drivers: [fake-hardware]',
        `websocket_url: ${stack.gateway.url}`,
        `state_dir: ${join(root, 'var/lib/metalplane-agent')}`,
        'hostname: pkg-agent',
        'heartbeat_interval: 1s',
        'shutdown_grace: 2s',
        'reconnect:',
        '  initial_delay: 50ms',
        '  max_delay: 500ms',
        'status:',
        '  address: 127.0.0.1:0',
        'tftp:',
        `  root: ${join(root, 'var/lib/tftpboot')}`,
        '  address: 127.0.0.1',
        '  port: 0',
        'http:',
        `  root: ${join(root, 'var/www/html/pxe')}`,
        '  address: 127.0.0.1',
        '  port: 0',
        '',
      ].join('\n'),
    );
    const minted = await stack.api.call('POST', `/v1/sites/${SITE}/agents`);
    expect(minted.status).toBe(201);
    const tokenFile = join(root, 'etc/metalplane-agent/enroll-token');
    writeFileSync(tokenFile, `url=${stack.api.url}\ntoken=${minted.body.token}\n`, { mode: 0o600 });
    // This host has no metalplane-agent user and (here) no systemd to start: --user and --no-start.
    const installed = await run(bin, [
      'install',
      '--config',
      config,
      '--token-file',
      tokenFile,
      '--remove-token-file',
      '--user',
      userInfo().username,
      '--no-start',
    ]);
    expect(installed.status, installed.out).toBe(0);
    expect(installed.out).toContain('enrolled pkg-agent in site pkg');
    expect(readFileSync(config, 'utf8')).toContain(`url: ${stack.api.url}`);
    expect(statSync(join(root, 'var/lib/metalplane-agent/credential')).mode & 0o777).toBe(0o600);
    expect(() => statSync(tokenFile)).toThrow();

    // The installed agent runs, from the root.
    const node = await stack.createNode(SITE);
    const child = spawn(bin, ['run', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    agent = child;
    agentExited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      agentOutput += chunk;
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      agentOutput += chunk;
    });
    await waitFor(
      () =>
        agentOutput.split('\n').some((l) => l.includes('"channel state"') && l.includes('"websocket"')) ||
        child.exitCode !== null
          ? true
          : undefined,
      'the installed agent to connect',
      20_000,
    ).catch((error) => {
      throw new Error(`${(error as Error).message}\n${agentOutput}`);
    });
    expect(child.exitCode, agentOutput).toBeNull();

    const on = await stack.api.call('PUT', `/v1/nodes/${node}/states/power`, {
      body: { target: 'power on' },
      version: '1.82',
    });
    expect(on.status).toBe(202);
    const settled = await waitFor(
      async () => {
        const full = (await stack.api.call('GET', `/v1/nodes/${node}`)).body;
        return full.target_power_state === null && full.reservation === null ? full : undefined;
      },
      'the power action to settle',
      20_000,
    );
    expect(settled.power_state, agentOutput).toBe('power on');
    expect(settled.last_error).toBeNull();

    // doctor, on the installed agent's config: the control plane, WebSocket, clock and credential pass.
    const doctor = await run(bin, ['doctor', '--config', config, '--user', userInfo().username]);
    console.log(`[agent-package] doctor:\n${doctor.out}`);
    for (const check of ['control plane', 'clock', 'websocket', 'credential', 'state dir', 'tftp root']) {
      expect(doctor.out, doctor.out).toMatch(new RegExp(`^ok +${check} `, 'm'));
    }

    process.kill(child.pid!, 'SIGTERM');
    await Promise.race([agentExited, new Promise((r) => setTimeout(r, 10_000))]);
    expect(child.exitCode, agentOutput).toBe(0);

    // Purge: the state (credential) goes, with the root's dpkg database.
    const purge = await run('dpkg', [
      `--root=${root}`,
      `--log=${join(root, 'var/log/dpkg.log')}`,
      '--force-script-chrootless',
      '--force-not-root',
      '--purge',
      'metalplane-agent',
    ]);
    expect(purge.status, purge.out).toBe(0);
    expect(() => statSync(join(root, 'var/lib/metalplane-agent'))).toThrow();
    expect(() => statSync(join(root, 'usr/lib/metalplane-agent/node'))).toThrow();
  },
  120_000,
);
