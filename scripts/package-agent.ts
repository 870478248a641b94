/**
 * `npm run package:agent`: the site agent as a Debian package, built with dpkg-deb and
 * installable with no network (docs/agent.md, "Installing from the Debian package").
 *
 *   node scripts/package-agent.ts [--out DIR] [--compression xz|zstd|gzip|none]
 *
 * What goes in (packaging/ holds the hand-written parts):
 * - /usr/lib/metalplane-agent/agent.mjs: agent/cli.ts and everything it imports bundled by
 *   esbuild into one ES module, its schema validators precompiled (scripts/agent-bundle.ts;
 *   the agent's npm dependencies are pure JavaScript; ws's optional native helpers,
 *   bufferutil and utf-8-validate, stay out: ws runs without them);
 * - /usr/lib/metalplane-agent/node: the Node.js runtime the tests run on (npm package
 *   `node`, pinned by package-lock.json), so the host needs no Node.js;
 * - /usr/bin/metalplane-agent: a wrapper running the two, with the runtime's memory settings
 *   (packaging/metalplane-agent.sh; docs/agent.md, "Footprint");
 * - /lib/systemd/system/metalplane-agent.service: agent/metalplane-agent.service with the
 *   installed paths;
 * - /etc/metalplane-agent/config.yaml (a conffile), the docs;
 * - postinst/prerm/postrm: the service user, the state and boot-tree directories,
 *   enrollment from /etc/metalplane-agent/enroll-token.
 *
 * The version is package.json's plus the git commit (`0.2.0+git1a2b3c4`). Prints the
 * package's path, size and build time; the last line of stdout is the path.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleAgent } from './agent-bundle.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGING = join(ROOT, 'packaging');
export const PACKAGE_NAME = 'metalplane-agent';

/** The unit of the repository, pointed at the installed wrapper and docs. */
export function installedUnit(unit: string): string {
  const replaced = unit
    .replace(/^# Metalplane site agent\. Install: see docs\/agent\.md\.\n(#.*\n)*/m, '')
    .replaceAll('/usr/bin/node /opt/metalplane/agent/cli.ts', '/usr/bin/metalplane-agent')
    .replace(
      'Documentation=file:///opt/metalplane/docs/agent.md',
      'Documentation=file:///usr/share/doc/metalplane-agent/agent.md\n' +
        '# Not enrolled yet (no credential): the unit is skipped, not failed. Enroll with\n' +
        '# `metalplane-agent install --url URL --token-file FILE`.\n' +
        'ConditionPathExists=/var/lib/metalplane-agent/credential',
    );
  if (replaced.includes('/opt/metalplane') || !replaced.includes('ExecStart=/usr/bin/metalplane-agent run')) {
    throw new Error(
      'agent/metalplane-agent.service changed: adapt installedUnit() in scripts/package-agent.ts',
    );
  }
  return `# Installed by the metalplane-agent package (from agent/metalplane-agent.service).\n${replaced}`;
}

function gitShortHash(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short=7', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

export function packageVersion(): string {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const hash = gitShortHash();
  return hash ? `${version}+git${hash}` : version;
}

function debianArch(): string {
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch as string];
  if (!arch) throw new Error(`no Debian architecture for ${process.arch}`);
  return arch;
}

/** The Node.js binary of the `node` npm package (what node_modules/.bin/node points at). */
function nodeRuntime(): string {
  const path = join(ROOT, 'node_modules', 'node', 'bin', 'node');
  statSync(path);
  const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
  if (!version.startsWith('v24.')) throw new Error(`${path} is Node.js ${version}, not 24`);
  return path;
}

function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', '--exclude=DEBIAN', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/**
 * The agent's runtime under the filesystem root `stage`: /usr/lib/metalplane-agent/agent.mjs
 * (the bundle), /usr/lib/metalplane-agent/node and the wrapper /usr/bin/metalplane-agent,
 * whose path is returned. `linkNode`: Node.js as a symbolic link, not a copy (benches run
 * the agent as the package launches it: bench/dispatch.ts).
 */
export async function stageAgentRuntime(
  stage: string,
  options: { linkNode?: boolean } = {},
): Promise<string> {
  const lib = join(stage, 'usr', 'lib', PACKAGE_NAME);
  const bin = join(stage, 'usr', 'bin');
  for (const dir of [lib, bin]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  await bundleAgent(join(lib, 'agent.mjs'));
  chmodSync(join(lib, 'agent.mjs'), 0o644);
  rmSync(join(lib, 'node'), { force: true });
  if (options.linkNode) symlinkSync(nodeRuntime(), join(lib, 'node'));
  else {
    copyFileSync(nodeRuntime(), join(lib, 'node'));
    chmodSync(join(lib, 'node'), 0o755);
  }
  copyFileSync(join(PACKAGING, 'metalplane-agent.sh'), join(bin, PACKAGE_NAME));
  chmodSync(join(bin, PACKAGE_NAME), 0o755);
  return join(bin, PACKAGE_NAME);
}

export interface BuiltPackage {
  readonly path: string;
  readonly version: string;
  readonly bytes: number;
  readonly buildMs: number;
}

export async function buildAgentPackage(
  options: { outDir?: string; compression?: 'xz' | 'zstd' | 'gzip' | 'none' } = {},
): Promise<BuiltPackage> {
  const started = performance.now();
  const outDir = resolve(options.outDir ?? join(ROOT, 'dist', 'agent-package'));
  const version = packageVersion();
  const arch = debianArch();
  const stage = join(outDir, `${PACKAGE_NAME}_${version}_${arch}`);
  rmSync(stage, { recursive: true, force: true });
  const lib = join(stage, 'usr', 'lib', PACKAGE_NAME);
  const doc = join(stage, 'usr', 'share', 'doc', PACKAGE_NAME);
  for (const dir of [
    join(stage, 'DEBIAN'),
    lib,
    doc,
    join(stage, 'usr', 'bin'),
    join(stage, 'lib', 'systemd', 'system'),
    join(stage, 'etc', PACKAGE_NAME),
  ]) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  }

  await stageAgentRuntime(stage);
  writeFileSync(
    join(stage, 'lib', 'systemd', 'system', `${PACKAGE_NAME}.service`),
    installedUnit(readFileSync(join(ROOT, 'agent', 'metalplane-agent.service'), 'utf8')),
    { mode: 0o644 },
  );
  copyFileSync(join(PACKAGING, 'config.yaml'), join(stage, 'etc', PACKAGE_NAME, 'config.yaml'));
  copyFileSync(join(ROOT, 'docs', 'agent.md'), join(doc, 'agent.md'));
  copyFileSync(
    join(ROOT, 'agent', 'metalplane-agent.example.yaml'),
    join(doc, 'metalplane-agent.example.yaml'),
  );
  writeFileSync(
    join(doc, 'copyright'),
    'Metalplane site agent\nLicense: Apache-2.0 (/usr/share/common-licenses/Apache-2.0)\n' +
      'Bundles Node.js (MIT, https://github.com/nodejs/node/blob/main/LICENSE) and npm packages ' +
      "commander, ws, yaml (MIT/ISC), ajv's runtime and fast-deep-equal (MIT).\n",
  );

  const control = readFileSync(join(PACKAGING, 'debian', 'control.in'), 'utf8')
    .replace('@VERSION@', version)
    .replace('@ARCH@', arch)
    .replace('@INSTALLED_SIZE@', String(Math.ceil(duBytes(stage) / 1024)));
  writeFileSync(join(stage, 'DEBIAN', 'control'), control, { mode: 0o644 });
  copyFileSync(join(PACKAGING, 'debian', 'conffiles'), join(stage, 'DEBIAN', 'conffiles'));
  for (const script of ['postinst', 'prerm', 'postrm']) {
    copyFileSync(join(PACKAGING, 'debian', script), join(stage, 'DEBIAN', script));
    chmodSync(join(stage, 'DEBIAN', script), 0o755);
  }

  const path = join(outDir, `${PACKAGE_NAME}_${version}_${arch}.deb`);
  rmSync(path, { force: true });
  execFileSync(
    'dpkg-deb',
    [
      '--root-owner-group',
      `-Z${options.compression ?? 'xz'}`,
      ...(options.compression === 'zstd' ? ['-z3'] : []),
      '--build',
      stage,
      path,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  rmSync(stage, { recursive: true, force: true });
  return { path, version, bytes: statSync(path).size, buildMs: Math.round(performance.now() - started) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { out: { type: 'string' }, compression: { type: 'string' } },
  });
  const compression = values.compression as 'xz' | 'zstd' | 'gzip' | 'none' | undefined;
  if (compression && !['xz', 'zstd', 'gzip', 'none'].includes(compression)) {
    process.stderr.write('--compression must be xz, zstd, gzip or none\n');
    process.exit(2);
  }
  const built = await buildAgentPackage({
    ...(values.out ? { outDir: values.out } : {}),
    ...(compression ? { compression } : {}),
  });
  process.stdout.write(
    `${PACKAGE_NAME} ${built.version}: ${(built.bytes / 1024 / 1024).toFixed(1)} MiB, built in ${(built.buildMs / 1000).toFixed(1)} s\n${built.path}\n`,
  );
}
