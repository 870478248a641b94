/**
 * Static DHCP host entries for the site's dnsmasq, in the `dhcp-hostsdir` format that
 * Ironic's dnsmasq DHCP provider (`ironic/dhcp/dnsmasq.py`) writes: one file per
 * PXE-enabled port, named `ironic-<mac>.conf`, holding one line
 *
 *     aa:bb:cc:dd:ee:ff,set:<tag>,set:ironic
 *
 * The tags let the site's dnsmasq config give these hosts boot options (e.g.
 * `dhcp-boot=tag:ironic,tag:ipxe,http://agent:8080/boot.ipxe`, see docs/boot-files.md).
 * The same file name as Ironic's means a site moving from Ironic keeps one entry per MAC
 * and its dnsmasq config keeps working. Metalplane's tag is the node's UUID (Ironic
 * makes up a random one per node and stores it; the UUID needs no storage and is stable).
 *
 * dnsmasq reads new and changed files in the directory by itself (inotify), but keeps
 * the records of a deleted file until it gets SIGHUP: a removed host stays tagged until
 * then, which is harmless with `boot.ipxe` (no per-MAC script → it exits to the next boot
 * device). Writing and removing go through `BootTree` (atomic, confined to the directory).
 */
import { createHash } from 'node:crypto';
import type { BootTree, PlannedFile } from './files.ts';
import { normalizeMac, normalizeUuid } from './render.ts';

/** The tag every Metalplane (and Ironic) host carries, for site-wide dnsmasq options. */
export const DHCP_COMMON_TAG = 'ironic';

/** `ironic-aa:bb:cc:dd:ee:ff.conf`, as Ironic names it. */
export function dhcpHostFileName(mac: string): string {
  return `ironic-${normalizeMac(mac)}.conf`;
}

/** The line of one host: `<mac>,set:<node uuid>,set:ironic`. */
export function renderDhcpHostEntry(mac: string, nodeUuid: string): string {
  return `${normalizeMac(mac)},set:${normalizeUuid(nodeUuid)},set:${DHCP_COMMON_TAG}\n`;
}

/** The files of a node's ports, for `BootTree.prepareNode` (root `dhcp`). */
export function dhcpHostFiles(macs: readonly string[], nodeUuid: string): PlannedFile[] {
  return [...new Set(macs.map(normalizeMac))].map((mac) => ({
    root: 'dhcp' as const,
    path: dhcpHostFileName(mac),
    content: renderDhcpHostEntry(mac, nodeUuid),
  }));
}

/** Writes (atomically) the entry of each MAC; the tree must have a `dhcpHostsDir`. */
export async function writeDhcpHosts(
  tree: BootTree,
  macs: readonly string[],
  nodeUuid: string,
): Promise<void> {
  for (const file of dhcpHostFiles(macs, nodeUuid)) await tree.writeFile('dhcp', file.path, file.content);
}

/**
 * Removes the entry of each MAC if it is still the one this node had (a MAC that moved
 * to another node keeps that node's entry). Returns the MACs whose file was removed.
 */
export async function removeDhcpHosts(
  tree: BootTree,
  macs: readonly string[],
  nodeUuid: string,
): Promise<string[]> {
  const removed: string[] = [];
  for (const mac of new Set(macs.map(normalizeMac))) {
    const hash = createHash('sha256').update(renderDhcpHostEntry(mac, nodeUuid)).digest('hex');
    if ((await tree.removeFile('dhcp', dhcpHostFileName(mac), [hash])) === 'removed') removed.push(mac);
  }
  return removed;
}
