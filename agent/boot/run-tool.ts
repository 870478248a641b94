/**
 * Runs an external packing tool (xorriso, mtools) bounded in time and in the output kept:
 * killed at the timeout or on abort, its stderr's tail kept for the error message. The
 * environment is only PATH, LC_ALL=C and what the caller adds: no secret of the agent's
 * environment reaches a tool. Arguments are an array (no shell).
 */
import { spawn } from 'node:child_process';

/** Characters of a tool's stderr kept for an error message (it names only our paths). */
const STDERR_KEEP = 2000;

export interface RunToolOptions {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Added to PATH and LC_ALL (e.g. MTOOLS_SKIP_CHECK). */
  readonly env?: Readonly<Record<string, string>>;
  /** What messages call the program (default: its file name). */
  readonly name?: string;
  /** The Debian package that has the program, for the "not installed" message. */
  readonly packageName?: string;
}

/** A tool that is missing, failed, or took too long: its message is for the operator. */
export class ToolError extends Error {
  override name = 'ToolError';
}

export function runTool(program: string, args: readonly string[], options: RunToolOptions): Promise<void> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const name = options.name ?? program.split('/').at(-1) ?? program;
  return new Promise<void>((resolve, reject) => {
    const child = spawn(program, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      signal,
      killSignal: 'SIGKILL',
      env: { PATH: toolPath(), LC_ALL: 'C', ...options.env },
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEEP);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        const pkg = options.packageName ? ` (Debian package ${options.packageName})` : '';
        reject(new ToolError(`${name} is not installed at this site${pkg}`));
      } else if (timeout.aborted && !options.signal?.aborted) {
        reject(new ToolError(`${name} took longer than ${options.timeoutMs} ms and was stopped`));
      } else if (options.signal?.aborted) {
        reject(options.signal.reason);
      } else {
        reject(new ToolError(`${name} failed: ${error.message}`));
      }
    });
    child.once('close', (code, killedBy) => {
      if (code === 0) return resolve();
      // After an 'error' (timeout, abort) this second rejection is a no-op.
      const message = stderr.trim().replace(/\s+/g, ' ').slice(0, 500) || '(no message)';
      reject(new ToolError(`${name} failed (${code ?? killedBy}): ${message}`));
    });
  });
}

/** The agent's PATH, with the sbin directories (mkfs.vfat lives in /usr/sbin on Debian). */
function toolPath(): string {
  const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(':').filter(Boolean);
  for (const sbin of ['/usr/sbin', '/sbin']) if (!dirs.includes(sbin)) dirs.push(sbin);
  return dirs.join(':');
}
