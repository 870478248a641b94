/**
 * The site agent as shipped: agent/cli.ts and everything it imports bundled by esbuild into
 * one ES module (scripts/package-agent.ts puts it in the Debian package; bench/dispatch.ts
 * measures it). Three things differ from running the sources, all for the agent's idle
 * memory (docs/agent.md, "Footprint"):
 *
 * - the schema validators are Ajv standalone code generated here, at bundle time, from the
 *   schemas and options the agent's modules register with `lazyValidator`
 *   (protocol/lazy-validator.ts, which the bundle gets replaced by that code): the agent
 *   neither loads Ajv nor compiles a schema at run time. Never checked in, so never stale;
 * - whitespace and comments are left out (names are kept, for stack traces): V8 holds the
 *   bundle's source text for the life of the process, and a single non-ASCII character
 *   (a `→` in a comment) made all of it a two-byte string;
 * - Node's built-in modules are taken with `process.getBuiltinModule` at the first read of
 *   one of their exports, not with an ES `import` (`builtinsWithoutImport`): an `import`
 *   of a built-in reads every export of it, and node:http's include getters that load
 *   undici, Node's `fetch` (15–17 MiB resident), which the agent does not use.
 */
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type BuildOptions, build, type Plugin } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ENTRY = join(ROOT, 'agent', 'cli.ts');
const LAZY_VALIDATOR = join(ROOT, 'protocol', 'lazy-validator.ts');

const COMMON: BuildOptions = {
  // The metafile's paths are relative to it (validatorModules resolves them against ROOT).
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  // ws loads these optional native helpers inside try/catch; without them it uses JS.
  external: ['bufferutil', 'utf-8-validate'],
  // The CommonJS dependencies (commander, yaml, ws) call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __mpCreateRequire } from 'node:module'; const require = __mpCreateRequire(import.meta.url);",
  },
  legalComments: 'none',
  logLevel: 'warning',
};

/** The modules of the bundle that call `lazyValidator` (they import lazy-validator.ts). */
async function validatorModules(entry: string): Promise<string[]> {
  const { metafile } = await build({
    ...COMMON,
    entryPoints: [entry],
    write: false,
    outfile: 'x.mjs',
    metafile: true,
  });
  const modules: string[] = [];
  for (const [path, input] of Object.entries(metafile.inputs)) {
    if (input.imports.some((i) => resolve(ROOT, i.path) === LAZY_VALIDATOR))
      modules.push(resolve(ROOT, path));
  }
  return modules.sort();
}

/**
 * The source of the module that replaces protocol/lazy-validator.ts in the bundle: every
 * validator registered by the modules of `entry`'s bundle, as Ajv standalone code (compiled
 * with the options `lazyValidator` compiles with), looked up by name.
 */
export async function precompiledValidatorsSource(entry: string = ENTRY): Promise<string> {
  const modules = await validatorModules(entry);
  // Imported here, they register their validators (module scope); nothing else runs.
  for (const module of modules) await import(pathToFileURL(module).href);
  const { registeredValidators, ajvOptions } = await import('../protocol/lazy-validator.ts');
  const { Ajv2020 } = await import('ajv/dist/2020.js');
  // A CommonJS module whose exports are the function, with `default` pointing at it too.
  const standaloneCode = (await import('ajv/dist/standalone/index.js')).default.default;
  // One Ajv (and one module scope) per set of options, as at run time.
  const groups = new Map<
    string,
    { index: number; ajv: InstanceType<typeof Ajv2020>; exports: Record<string, string> }
  >();
  const table: string[] = [];
  let n = 0;
  for (const [name, { options, schema }] of registeredValidators()) {
    const key = JSON.stringify(ajvOptions(options));
    let group = groups.get(key);
    if (!group) {
      group = {
        index: groups.size,
        ajv: new Ajv2020({ ...ajvOptions(options), code: { source: true } }),
        exports: {},
      };
      groups.set(key, group);
    }
    const exportName = `v${n++}`;
    group.ajv.addSchema(schema, exportName);
    group.exports[exportName] = exportName;
    table.push(`  [${JSON.stringify(name)}, g${group.index}.${exportName}],`);
  }
  if (table.length === 0) throw new Error(`no validator registered by the modules of ${entry}`);
  const blocks = [...groups.values()].map(
    ({ index, ajv, exports }) =>
      `const g${index} = (() => {\nconst exports = {};\n${standaloneCode(ajv, exports)}\nreturn exports;\n})();`,
  );
  return [
    '// Generated at bundle time by scripts/agent-bundle.ts (Ajv standalone code): replaces',
    '// protocol/lazy-validator.ts in the agent bundle. Do not edit.',
    "export { errorsText } from './validator-errors.ts';",
    'export const VALIDATORS_PRECOMPILED = true;',
    ...blocks,
    'const VALIDATORS = new Map([',
    ...table,
    ']);',
    'export function lazyValidator(name) {',
    '  const validate = VALIDATORS.get(name);',
    '  if (!validate) throw new Error("validator " + JSON.stringify(name) + " was not precompiled (scripts/agent-bundle.ts)");',
    '  return validate;',
    '}',
    'export function registeredValidators() {',
    '  return new Map();',
    '}',
    'export function ajvOptions(options) {',
    '  return { strict: options.strict, allowUnionTypes: options.allowUnionTypes ?? false, allErrors: false };',
    '}',
    '',
  ].join('\n');
}

/** esbuild plugin: protocol/lazy-validator.ts is `contents`. */
function replaceLazyValidator(contents: string): Plugin {
  return {
    name: 'metalplane-precompiled-validators',
    setup(b) {
      b.onLoad({ filter: /[/\\]protocol[/\\]lazy-validator\.ts$/ }, (args) =>
        resolve(args.path) === LAZY_VALIDATOR
          ? { contents, loader: 'js', resolveDir: dirname(LAZY_VALIDATOR) }
          : undefined,
      );
    },
  };
}

const BUILTIN_NAMESPACE = 'metalplane-builtin';
const BUILTINS = new Set(builtinModules);

/**
 * A CommonJS module standing for the built-in `specifier`: an object with a getter for each
 * of its exports (their names taken here, from the Node.js that bundles, the one the
 * package ships) that loads it with `process.getBuiltinModule` at the first read. A
 * built-in whose exports the agent reads only in some commands or actions (worker_threads,
 * dns/promises, timers/promises…) is then not loaded by an idle agent at all.
 */
function lazyBuiltinSource(specifier: string): string {
  const module = process.getBuiltinModule(specifier) as object;
  // A module that is a function (node:events, node:stream) is taken as it is, at once.
  if (typeof module === 'function')
    return `module.exports = process.getBuiltinModule(${JSON.stringify(specifier)});`;
  const names = Object.keys(module).filter((name) => name !== 'default');
  return [
    'let m;',
    `const load = () => (m ??= process.getBuiltinModule(${JSON.stringify(specifier)}));`,
    'const lazy = {};',
    `for (const name of ${JSON.stringify(names)})`,
    // The first read replaces the getter by the value: later reads (a `fs.write` per
    // staging buffer, a `read` per TFTP chunk) are plain property reads.
    '  Object.defineProperty(lazy, name, { configurable: true, enumerable: true, get() {',
    '    const value = load()[name];',
    '    Object.defineProperty(lazy, name, { value, enumerable: true });',
    '    return value;',
    '  } });',
    'module.exports = lazy;',
  ].join('\n');
}

/**
 * esbuild plugin: an `import` of a Node built-in (`node:http`, `fs`, `node:fs/promises`) is
 * bundled as a CommonJS module (`lazyBuiltinSource`) whose exports are getters over
 * `process.getBuiltinModule('node:http')`, so that its named imports become property reads
 * at their use. Left as an ES `import` (esbuild's default for a built-in), Node links
 * every named export of the module at start: node:http's `WebSocket`, `CloseEvent` and
 * `MessageEvent` are getters that load undici (`internal/deps/undici/undici`), Node's
 * `fetch`, 15–17 MiB resident for the life of the process (docs/agent.md, "Footprint"). `require()` of a built-in (the CommonJS
 * dependencies) reads nothing and is left as it is.
 */
export function builtinsWithoutImport(): Plugin {
  return {
    name: 'metalplane-builtins-without-import',
    setup(b) {
      b.onResolve({ filter: /^(node:)?[a-z_][a-z0-9_/]*$/ }, (args) => {
        if (args.kind !== 'import-statement' && args.kind !== 'dynamic-import') return undefined;
        const name = args.path.replace(/^node:/, '');
        if (!BUILTINS.has(name) && !BUILTINS.has(args.path)) return undefined;
        return { path: `node:${name}`, namespace: BUILTIN_NAMESPACE };
      });
      b.onLoad({ filter: /.*/, namespace: BUILTIN_NAMESPACE }, (args) => ({
        contents: lazyBuiltinSource(args.path),
        loader: 'js',
      }));
    },
  };
}

/** Writes the agent's bundle to `outfile`. */
export async function bundleAgent(outfile: string): Promise<void> {
  await build({
    ...COMMON,
    entryPoints: [ENTRY],
    outfile,
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    plugins: [builtinsWithoutImport(), replaceLazyValidator(await precompiledValidatorsSource(ENTRY))],
  });
}

/**
 * Writes protocol/lazy-validator.ts as the agent's bundle has it (the precompiled
 * validators) to `outfile`, an ES module: for tests comparing it with Ajv.
 */
export async function bundlePrecompiledValidators(outfile: string): Promise<void> {
  await build({
    ...COMMON,
    entryPoints: [LAZY_VALIDATOR],
    outfile,
    plugins: [replaceLazyValidator(await precompiledValidatorsSource(ENTRY))],
  });
}
