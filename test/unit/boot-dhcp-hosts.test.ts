import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  dhcpHostFileName,
  dhcpHostFiles,
  removeDhcpHosts,
  renderDhcpHostEntry,
  writeDhcpHosts,
} from '../../agent/boot/dhcp-hosts.ts';
import { BootTree } from '../../agent/boot/files.ts';
import { BootRenderError } from '../../agent/boot/render.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const OTHER = '2ce26c0b-03f2-4d2e-ae87-c02d7f33c124';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree() {
  const dir = mkdtempSync(join(tmpdir(), 'boot-dhcp-'));
  dirs.push(dir);
  const t = new BootTree({
    tftpRoot: join(dir, 'tftp'),
    httpRoot: join(dir, 'http'),
    dhcpHostsDir: join(dir, 'hosts'),
    manifestDir: join(dir, 'manifests'),
  });
  return { t, hosts: join(dir, 'hosts') };
}

describe('dnsmasq dhcp-hostsdir entries', () => {
  it('uses Ironic’s file name and line format', () => {
    expect(dhcpHostFileName('52-54-00-AB-CD-EF')).toBe('ironic-52:54:00:ab:cd:ef.conf');
    expect(renderDhcpHostEntry('52:54:00:AB:CD:EF', NODE.toUpperCase())).toBe(
      `52:54:00:ab:cd:ef,set:${NODE},set:ironic\n`,
    );
    expect(dhcpHostFiles(['52:54:00:ab:cd:ef', '525400ABCDEF', 'aa:bb:cc:dd:ee:ff'], NODE)).toEqual([
      {
        root: 'dhcp',
        path: 'ironic-52:54:00:ab:cd:ef.conf',
        content: `52:54:00:ab:cd:ef,set:${NODE},set:ironic\n`,
      },
      {
        root: 'dhcp',
        path: 'ironic-aa:bb:cc:dd:ee:ff.conf',
        content: `aa:bb:cc:dd:ee:ff,set:${NODE},set:ironic\n`,
      },
    ]);
  });

  it('refuses what cannot be a MAC or a node uuid (no path or line injection)', () => {
    expect(() => dhcpHostFileName('../../etc/passwd')).toThrow(BootRenderError);
    expect(() => renderDhcpHostEntry('52:54:00:ab:cd:ef\nff:ff:ff:ff:ff:ff', NODE)).toThrow(BootRenderError);
    expect(() => renderDhcpHostEntry('52:54:00:ab:cd:ef', `${NODE},set:evil`)).toThrow(BootRenderError);
  });

  it('writes one file per MAC atomically, and removes only entries that are still this node’s', async () => {
    const { t, hosts } = tree();
    await writeDhcpHosts(t, ['52:54:00:00:00:01', '52:54:00:00:00:02'], NODE);
    expect(readdirSync(hosts).sort()).toEqual([
      'ironic-52:54:00:00:00:01.conf',
      'ironic-52:54:00:00:00:02.conf',
    ]);
    expect(readFileSync(join(hosts, 'ironic-52:54:00:00:00:01.conf'), 'utf8')).toBe(
      `52:54:00:00:00:01,set:${NODE},set:ironic\n`,
    );
    // The second MAC moved to another node, which rewrote its entry.
    await writeDhcpHosts(t, ['52:54:00:00:00:02'], OTHER);
    expect(await removeDhcpHosts(t, ['52:54:00:00:00:01', '52:54:00:00:00:02'], NODE)).toEqual([
      '52:54:00:00:00:01',
    ]);
    expect(existsSync(join(hosts, 'ironic-52:54:00:00:00:01.conf'))).toBe(false);
    expect(readFileSync(join(hosts, 'ironic-52:54:00:00:00:02.conf'), 'utf8')).toContain(`set:${OTHER}`);
    // Removing again is fine.
    expect(await removeDhcpHosts(t, ['52:54:00:00:00:01'], NODE)).toEqual([]);
  });

  it('refuses to write when no dhcp-hostsdir is configured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'boot-dhcp-'));
    dirs.push(dir);
    const t = new BootTree({
      tftpRoot: join(dir, 't'),
      httpRoot: join(dir, 'h'),
      manifestDir: join(dir, 'm'),
    });
    await expect(writeDhcpHosts(t, ['52:54:00:00:00:01'], NODE)).rejects.toThrow(
      /no directory configured for dhcp/,
    );
  });
});
