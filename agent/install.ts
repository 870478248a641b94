/**
 * `metalplane-agent install`: one command from an installed package to a running agent.
 *
 *   metalplane-agent install --url URL (--token TOKEN | --token-file FILE) [--config FILE]
 *       [--user NAME] [--force] [--remove-token-file] [--no-start]
 *
 * 1. The config's `url` is filled in from `--url` when the file leaves it unset (a
 *    different one is refused: edit the file);
 * 2. enrollment (agent/enroll.ts) stores the credential 0600 in the state directory; an
 *    agent already enrolled is left as it is unless `--force`;
 * 3. as root, the state directory and its files are given to the service user
 *    (`--user`, default metalplane-agent, created by the package);
 * 4. `systemctl enable --now metalplane-agent.service`, unless `--no-start` or systemd is
 *    not running (a container, a chroot): then it says so.
 *
 * Exit status: 0 enrolled (or already) and started (or `--no-start`); 1 failure; 2 bad
 * usage or config; 3 enrolled, but systemd is not running so nothing was started (run
 * `metalplane-agent run` under the container's supervisor instead).
 *
 * The token file holds the token alone, or `url=URL` and `token=TOKEN` lines (what the
 * package's postinst reads from /etc/metalplane-agent/enroll-token).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, chown, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { enroll } from './enroll.ts';
import { credentialExists, STATE_FILES } from './state.ts';

export const SERVICE_NAME = 'metalplane-agent.service';
export const DEFAULT_SERVICE_USER = 'metalplane-agent';
export const EXIT_NOT_STARTED = 3;

const run = promisify(execFile);

export interface PosixUser {
  readonly uid: number;
  readonly gid: number;
}

/** What install touches outside its files, replaceable in tests. */
export interface InstallDeps {
  /** Whether systemd is the running init (sd_booted: /run/systemd/system exists). */
  systemdRunning(): boolean;
  systemctl(args: string[]): Promise<void>;
  lookupUser(name: string): Promise<PosixUser | undefined>;
  isRoot(): boolean;
  chown(path: string, uid: number, gid: number): Promise<void>;
  enroll: typeof enroll;
  out(line: string): void;
}

export const realInstallDeps: InstallDeps = {
  systemdRunning: () => existsSync('/run/systemd/system'),
  async systemctl(args) {
    await run('systemctl', args, { timeout: 60_000 });
  },
  async lookupUser(name) {
    try {
      const { stdout } = await run('getent', ['passwd', name], { timeout: 10_000 });
      const fields = stdout.trim().split(':');
      const uid = Number(fields[2]);
      const gid = Number(fields[3]);
      return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
    } catch {
      return undefined;
    }
  },
  isRoot: () => process.getuid?.() === 0,
  chown: (path, uid, gid) => chown(path, uid, gid),
  enroll,
  out: (line) => process.stdout.write(`${line}\n`),
};

/** The token file: the token alone, or `url=` / `token=` lines (comments with #). */
export function parseTokenFile(text: string): { url?: string; token?: string } {
  const out: { url?: string; token?: string } = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(url|token)\s*=\s*(.+)$/.exec(line);
    if (m) out[m[1] as 'url' | 'token'] = m[2]!.trim();
    else if (!out.token) out.token = line;
  }
  return out;
}

export interface InstallOptions {
  readonly configFile: string;
  readonly url?: string;
  readonly token?: string;
  readonly tokenFile?: string;
  readonly user?: string;
  readonly force?: boolean;
  readonly removeTokenFile?: boolean;
  readonly start?: boolean;
}

/** Runs the install; answers the exit status (0 or EXIT_NOT_STARTED). Throws on failure. */
export async function install(options: InstallOptions, deps: InstallDeps = realInstallDeps): Promise<number> {
  const file = options.configFile;
  const fromFile = options.tokenFile ? parseTokenFile(await readFile(options.tokenFile, 'utf8')) : {};
  const token = options.token ?? fromFile.token ?? process.env.METALPLANE_ENROLL_TOKEN;
  const wantedUrl = (options.url ?? fromFile.url)?.replace(/\/+$/, '');

  // 1. The config's url.
  let config = loadConfig(file, { required: false });
  if (wantedUrl && config.url && config.url !== wantedUrl) {
    throw new ConfigError([
      `${file}:url: is ${config.url}, but ${wantedUrl} was given: edit the file (or drop --url)`,
    ]);
  }
  if (wantedUrl && !config.url) {
    // Validated first with the url, so that a bad one changes nothing on disk.
    loadConfig(file, { required: false, url: wantedUrl });
    if (existsSync(file)) await appendFile(file, `\n# Set by metalplane-agent install.\nurl: ${wantedUrl}\n`);
    else await writeFile(file, `url: ${wantedUrl}\n`, { mode: 0o644 });
    config = loadConfig(file, { required: true });
    deps.out(`${file}: url set to ${wantedUrl}`);
  }
  if (!config.url) throw new ConfigError([`${file}:url: give --url or set url in the config file`]);

  // 2. Enrollment.
  const enrolled = await credentialExists(config.stateDir);
  if (enrolled && !options.force) {
    deps.out(
      `already enrolled (${join(config.stateDir, STATE_FILES.credential)}): enrollment skipped (--force enrolls again)`,
    );
  } else {
    if (!token) throw new ConfigError(['install: give --token, --token-file or METALPLANE_ENROLL_TOKEN']);
    const outcome = await deps.enroll({ url: config.url, token, config, force: options.force });
    const site = typeof outcome.info.site === 'string' ? ` in site ${outcome.info.site}` : '';
    deps.out(`enrolled ${config.hostname}${site}; credential stored in ${outcome.credentialPath} (0600)`);
  }
  if (options.removeTokenFile && options.tokenFile) await rm(options.tokenFile, { force: true });

  // 3. Owner: the service user, when we can give files away.
  const userName = options.user ?? DEFAULT_SERVICE_USER;
  if (deps.isRoot()) {
    const user = await deps.lookupUser(userName);
    if (!user) {
      throw new Error(
        `the service user ${userName} does not exist (the package creates it; or give --user NAME)`,
      );
    }
    await deps.chown(config.stateDir, user.uid, user.gid);
    for (const entry of await readdir(config.stateDir)) {
      await deps.chown(join(config.stateDir, entry), user.uid, user.gid);
    }
    deps.out(`${config.stateDir}: owned by ${userName}`);
  }

  // 4. The service.
  if (options.start === false) {
    deps.out(`not starting ${SERVICE_NAME} (--no-start)`);
    return 0;
  }
  if (!deps.systemdRunning()) {
    deps.out(
      `systemd is not running here (a container or chroot?): ${SERVICE_NAME} not started; run "metalplane-agent run --config ${file}" under this system's supervisor (exit status ${EXIT_NOT_STARTED})`,
    );
    return EXIT_NOT_STARTED;
  }
  await deps.systemctl(['enable', '--now', SERVICE_NAME]);
  // An agent already running keeps its old credential otherwise.
  if (enrolled && options.force) await deps.systemctl(['restart', SERVICE_NAME]);
  deps.out(`${SERVICE_NAME} enabled and started (journalctl -u metalplane-agent -f)`);
  return 0;
}
