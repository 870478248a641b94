/**
 * Starts and stops the agent's boot servers (TFTP and HTTP) from its config; either is
 * skipped when `enabled: false` (the site runs its own tftpd or nginx on the same trees).
 * A server that cannot bind fails the start with the address in the message: a boot
 * network silently left without a server is worse than an agent that says why it stopped.
 */
import { existsSync } from 'node:fs';
import type { AgentConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { type ExtraRoutes, HttpBootServer, type HttpBootStats } from './http-server.ts';
import { TftpServer, type TftpStats } from './tftp-server.ts';

export interface BootServerStats {
  readonly tftp?: TftpStats;
  readonly http?: HttpBootStats;
}

export interface BootServers {
  readonly tftp: TftpServer | undefined;
  readonly http: HttpBootServer | undefined;
  stats(): BootServerStats;
  close(): Promise<void>;
}

export async function startBootServers(
  config: Pick<AgentConfig, 'tftp' | 'http'>,
  options: { log: Logger; extraRoutes?: ExtraRoutes },
): Promise<BootServers> {
  const { log } = options;
  let tftp: TftpServer | undefined;
  let http: HttpBootServer | undefined;
  try {
    if (config.tftp.enabled) {
      const c = config.tftp;
      if (!existsSync(c.root))
        log.warn('tftp root does not exist (yet): every request is "file not found"', { root: c.root });
      try {
        tftp = await TftpServer.start({
          root: c.root,
          address: c.address,
          port: c.port,
          maxBlksize: c.maxBlksize,
          maxTransfers: c.maxTransfers,
          maxTransfersPerClient: c.maxTransfersPerClient,
          log: log.child({ component: 'tftp' }),
        });
      } catch (error) {
        throw new Error(`tftp server ${c.address}:${c.port}: ${(error as Error).message}`);
      }
      log.info('tftp server listening', { address: `${tftp.address}:${tftp.port}`, root: c.root });
    }
    if (config.http.enabled) {
      const c = config.http;
      if (!existsSync(c.root))
        log.warn('http root does not exist (yet): every request is 404', { root: c.root });
      try {
        http = await HttpBootServer.start({
          root: c.root,
          address: c.address,
          port: c.port,
          maxConnections: c.maxConnections,
          ...(options.extraRoutes ? { extraRoutes: options.extraRoutes } : {}),
          log: log.child({ component: 'http-boot' }),
        });
      } catch (error) {
        throw new Error(`http boot server ${c.address}:${c.port}: ${(error as Error).message}`);
      }
      log.info('http boot server listening', { address: `${http.address}:${http.port}`, root: c.root });
    }
  } catch (error) {
    await tftp?.close();
    await http?.close();
    throw error;
  }
  return {
    tftp,
    http,
    stats: () => ({ ...(tftp ? { tftp: tftp.stats() } : {}), ...(http ? { http: http.stats() } : {}) }),
    close: async () => {
      await Promise.all([tftp?.close(), http?.close()]);
    },
  };
}
