/**
 * JSON logs: one line per event, `{"time","level","msg",...fields}`, on stdout (systemd's
 * journal captures it). Secrets never reach a line: fields named like a secret are
 * replaced with `[redacted]`, anything shaped like a Metalplane credential or enrollment
 * token (`mp[ate]_<id>_<secret>`) is masked in every string, and the running agent
 * registers its own credential so that even a verbatim echo of it is masked.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger whose lines all carry `fields`. */
  child(fields: Fields): Logger;
  /** Masks this exact value wherever it appears from now on (e.g. the agent's credential). */
  addSecret(value: string): void;
}

const SECRET_KEY = /^(credential|token|authorization|password|secret|ipmi_password|.*_password|.*_secret)$/i;
const CREDENTIAL_SHAPE = /\bmp[ate]_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}\b/g;
const MAX_DEPTH = 6;

export interface LoggerOptions {
  level?: LogLevel;
  /** Default: process.stdout. */
  write?: (line: string) => void;
  fields?: Fields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const secrets = new Set<string>();
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const threshold = RANK[options.level ?? 'info'];

  const maskString = (text: string): string => {
    let out = text.replace(CREDENTIAL_SHAPE, (m) => `${m.slice(0, 3)}_[redacted]`);
    for (const secret of secrets)
      if (secret && out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  };
  const clean = (value: unknown, depth: number): unknown => {
    if (typeof value === 'string') return maskString(value);
    if (value instanceof Error) return maskString(value.message);
    if (value === null || typeof value !== 'object') return value;
    if (depth >= MAX_DEPTH) return '[…]';
    if (Array.isArray(value)) return value.map((v) => clean(v, depth + 1));
    const out: Fields = {};
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_KEY.test(k) ? '[redacted]' : clean(v, depth + 1);
    return out;
  };

  const make = (base: Fields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: Fields) => {
      if (RANK[level] < threshold) return;
      const entry = clean({ ...base, ...fields }, 0) as Fields;
      let line: string;
      try {
        line = JSON.stringify({ time: new Date().toISOString(), level, msg: maskString(msg), ...entry });
      } catch {
        line = JSON.stringify({ time: new Date().toISOString(), level, msg: maskString(msg) });
      }
      write(`${line}\n`);
    };
    return {
      debug: (msg, fields) => emit('debug', msg, fields),
      info: (msg, fields) => emit('info', msg, fields),
      warn: (msg, fields) => emit('warn', msg, fields),
      error: (msg, fields) => emit('error', msg, fields),
      child: (fields) => make({ ...base, ...fields }),
      addSecret: (value) => {
        if (value.length >= 8) secrets.add(value);
      },
    };
  };
  return make(options.fields ?? {});
}

/** Discards everything (tests). */
export const silentLogger: Logger = createLogger({ write: () => {} });

/** An Error's message, or the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
