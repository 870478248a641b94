import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const unitFile = fileURLToPath(new URL('../../agent/metalplane-agent.service', import.meta.url));

function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

it('the systemd unit runs the agent unprivileged, hardened, restarted on failure', () => {
  const d = directives(readFileSync(unitFile, 'utf8'));
  const one = (key: string) => d.get(key)?.at(-1);
  expect(one('User')).toBe('metalplane-agent');
  expect(one('ExecStart')).toMatch(/agent\/cli\.ts run --config \/etc\/metalplane-agent\/config\.yaml$/);
  expect(one('StateDirectory')).toBe('metalplane-agent');
  expect(one('StateDirectoryMode')).toBe('0700');
  expect(one('NoNewPrivileges')).toBe('yes');
  expect(one('ProtectSystem')).toBe('strict');
  expect(one('ReadWritePaths')).toContain('/var/lib/tftpboot');
  expect(one('ReadWritePaths')).toContain('/var/www/html/pxe');
  expect(one('Restart')).toBe('on-failure');
  expect(one('RestartPreventExitStatus')).toBe('2');
  expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
  // Longer than the default shutdown_grace (20 s) plus the outbox flush.
  expect(Number(one('TimeoutStopSec')?.replace(/s$/, ''))).toBeGreaterThan(22);
});

it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('systemd-analyze verify finds nothing to say', () => {
  const run = spawnSync('/usr/bin/systemd-analyze', ['verify', unitFile], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  expect(run.status).toBe(0);
  expect(`${run.stdout}${run.stderr}`).toBe('');
});
