/**
 * `cli/metalplane.ts` run as a subprocess, as an operator runs it: with only the
 * environment given (and PATH), stdout, stderr and the exit code collected.
 *
 *   const { run, ok, json } = metalplaneCli(() => osEnv(api));
 *   await json('node', 'list');              // `-f json` added, exit 0 expected, parsed
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Credentials } from './api.ts';

const root = new URL('../..', import.meta.url).pathname;

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

type Env = Record<string, string>;

/** The OS_* variables that point the CLI at a test API as its admin (HTTP Basic). */
export function osEnv(api: { readonly url: string; readonly admin: Credentials }): Env {
  return { OS_ENDPOINT: api.url, OS_USERNAME: api.admin.username, OS_PASSWORD: api.admin.password };
}

/** A started CLI: its process (to signal), its end, and its stderr so far. */
export interface StartedCli {
  readonly child: ChildProcess;
  readonly done: Promise<CliRun>;
  stderr(): string;
}

/** Starts the CLI: `env` is its whole environment but PATH. */
export function startCli(args: string[], env: Env = {}, cwd?: string): StartedCli {
  const child = spawn(join(root, 'node_modules/.bin/node'), [join(root, 'cli/metalplane.ts'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    ...(cwd ? { cwd } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, done, stderr: () => stderr };
}

/** One run of the CLI: `env` is its whole environment but PATH. */
export function runCli(args: string[], env: Env = {}, cwd?: string): Promise<CliRun> {
  return startCli(args, env, cwd).done;
}

export interface MetalplaneCli {
  /** The CLI with the base environment, and `extra` over it. */
  run(args: string[], extra?: Env, cwd?: string): Promise<CliRun>;
  /** Its stdout, once it exited 0 (else the test fails with its stderr). */
  ok(...args: string[]): Promise<string>;
  /** `-f json` added, exit 0 expected, the output parsed. */
  json(...args: string[]): Promise<any>;
}

const resolved = <T>(given: T | (() => T)): T => (typeof given === 'function' ? (given as () => T)() : given);

/**
 * A CLI bound to a base environment and working directory, read at each run (the API
 * and the temporary directory are made in `beforeAll`).
 */
export function metalplaneCli(env: Env | (() => Env), directory?: string | (() => string)): MetalplaneCli {
  const run = (args: string[], extra: Env = {}, cwd = directory && resolved(directory)) =>
    runCli(args, { ...resolved(env), ...extra }, cwd);
  const ok = async (...args: string[]) => {
    const result = await run(args);
    expect(result.code, `metalplane ${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result.stdout;
  };
  const json = async (...args: string[]) => JSON.parse(await ok(...args, '-f', 'json'));
  return { run, ok, json };
}
