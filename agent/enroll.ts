/**
 * Enrollment: trading a one-time enrollment token (minted by an admin with `POST
 * /v1/sites/{site}/agents`) for the agent's long-lived credential.
 *
 * The wire shapes live here and only here, so that adapting to the control plane is a
 * one-file change. Assumed (see docs/agent.md):
 *
 *   POST {url}/v1/agents/enroll        (no Authorization header: the token is the proof)
 *   {"token": "mpe_…", "hostname": "fra1-agent-1", "drivers": ["fake-hardware"],
 *    "agent_version": "0.1.0"}
 *
 *   201/200 {"credential": "mpa_…", "site": "fra1", "websocket_url": "wss://…", ...}
 *
 * (`lambda/api/routes/agents.ts` documents the same: `agent_version` optional, the
 * answer `{credential, credential_id, hostname, site, websocket_url?}`.)
 *
 * Everything in the answer besides `credential` is kept, non-secret, in
 * `enrollment.json`; `websocket_url` there (when present) is the WebSocket URL the agent
 * dials unless the config names one, and `site` is shown by /healthz and /metrics.
 */
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { AgentConfig } from './config.ts';
import { type HttpResponse, httpClient } from './http-client.ts';
import { credentialExists, ensureStateDir, STATE_FILES, writeCredential, writeEnrollment } from './state.ts';
import { AGENT_VERSION } from './version.ts';

export const ENROLL_PATH = '/v1/agents/enroll';

export interface EnrollRequest {
  token: string;
  hostname: string;
  drivers: string[];
  agent_version: string;
}

export interface EnrollResponse {
  credential: string;
  /** Everything else the control plane said (non-secret). */
  info: Record<string, unknown>;
}

export function buildEnrollRequest(
  token: string,
  config: Pick<AgentConfig, 'hostname' | 'drivers'>,
): EnrollRequest {
  return {
    token,
    hostname: config.hostname || osHostname(),
    drivers: [...config.drivers],
    agent_version: AGENT_VERSION,
  };
}

export function parseEnrollResponse(body: unknown): EnrollResponse {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new Error('enrollment answer is not a JSON object');
  }
  const { credential, ...info } = body as Record<string, unknown>;
  if (typeof credential !== 'string' || !/^[\x21-\x7e]{16,1024}$/.test(credential)) {
    throw new Error('enrollment answer has no usable "credential"');
  }
  return { credential, info };
}

/** The reason in an Ironic-style error body (`error_message` → faultstring), or the body's start. */
export function errorReason(text: string): string {
  try {
    const body = JSON.parse(text) as { error_message?: unknown; message?: unknown };
    let em: unknown = body.error_message;
    if (typeof body.error_message === 'string') {
      try {
        em = JSON.parse(body.error_message) as unknown;
      } catch {
        return body.error_message;
      }
    }
    const fault = (em as { faultstring?: unknown } | undefined)?.faultstring;
    if (typeof fault === 'string') return fault;
    if (typeof body.message === 'string') return body.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 300);
}

export interface EnrollOutcome {
  credentialPath: string;
  info: Record<string, unknown>;
}

/** Enrolls and stores the credential (0600, atomically). Refuses to replace one unless `force`. */
export async function enroll(options: {
  url: string;
  token: string;
  config: Pick<AgentConfig, 'hostname' | 'drivers' | 'stateDir'>;
  force?: boolean;
  timeoutMs?: number;
}): Promise<EnrollOutcome> {
  const { config } = options;
  if (!options.force && (await credentialExists(config.stateDir))) {
    throw new Error(
      `${join(config.stateDir, STATE_FILES.credential)} exists: this agent is enrolled already (use --force to replace it)`,
    );
  }
  await ensureStateDir(config.stateDir);
  const url = `${options.url.replace(/\/+$/, '')}${ENROLL_PATH}`;
  let res: HttpResponse;
  try {
    res = await httpClient.request(url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json',
        'User-Agent': `metalplane-agent/${AGENT_VERSION}`,
      },
      body: JSON.stringify(buildEnrollRequest(options.token, config)),
      timeoutMs: options.timeoutMs ?? 30_000,
    });
  } catch (error) {
    throw new Error(`POST ${url}: ${String(error)}`);
  }
  const { text } = res;
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status}: ${errorReason(text)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`POST ${url}: the answer is not JSON`);
  }
  const { credential, info } = parseEnrollResponse(body);
  const credentialPath = await writeCredential(config.stateDir, credential);
  const stored = {
    ...info,
    url: options.url,
    hostname: config.hostname,
    enrolled_at: new Date().toISOString(),
  };
  await writeEnrollment(config.stateDir, stored);
  return { credentialPath, info: stored };
}
