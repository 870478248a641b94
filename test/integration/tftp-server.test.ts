/**
 * The agent's TFTP server against real clients (curl, tftp-hpa's tftp, atftp) and raw
 * UDP packets for what clients never send (traversal, malformed packets, vanishing).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TftpServer } from '../../agent/boot/tftp-server.ts';
import { type BootTree, makeBootTree, waitFor } from '../support/boot-tree.ts';

const run = promisify(execFile);

let tree: BootTree;
let server: TftpServer;
let big: Buffer;

beforeAll(async () => {
  tree = makeBootTree();
  // Past 65535 blocks of 512 bytes (32 MiB): the block number must roll over.
  big = randomBytes(33 * 1024 * 1024 + 5);
  writeFileSync(join(tree.root, 'big.img'), big);
  server = await TftpServer.start({ root: tree.root, address: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await server?.close();
  tree?.remove();
});

const url = (path: string) => `tftp://127.0.0.1:${server.port}/${path}`;
const out = (name: string) => join(tree.dir, name);

async function curl(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run('curl', ['-sS', '--max-time', '60', ...args], { timeout: 70_000 });
    return { code: 0, stderr };
  } catch (error) {
    const e = error as { code?: number; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stderr: e.stderr ?? '' };
  }
}

/** A bare UDP peer that records what it receives. */
class RawPeer {
  readonly socket: Socket;
  private readonly inbox: Array<{ msg: Buffer; rinfo: RemoteInfo }> = [];
  private waiter: (() => void) | undefined;
  received = 0;
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      this.received++;
      this.inbox.push({ msg, rinfo });
      this.waiter?.();
    });
  }
  static async open(): Promise<RawPeer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new RawPeer(socket);
  }
  send(packet: Buffer, port = server.port): void {
    this.socket.send(packet, port, '127.0.0.1');
  }
  async next(ms = 3000): Promise<{ msg: Buffer; rinfo: RemoteInfo }> {
    const until = Date.now() + ms;
    while (this.inbox.length === 0) {
      const left = until - Date.now();
      if (left <= 0) throw new Error('no packet within the wait');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.inbox.shift()!;
  }
  close(): void {
    this.socket.close();
  }
}

function rrq(file: string | Buffer, mode = 'octet', options: Record<string, string> = {}, op = 1): Buffer {
  const parts: Buffer[] = [Buffer.from([0, op]), Buffer.isBuffer(file) ? file : Buffer.from(file, 'latin1')];
  parts.push(Buffer.from(`\0${mode}\0`));
  for (const [k, v] of Object.entries(options)) parts.push(Buffer.from(`${k}\0${v}\0`));
  return Buffer.concat(parts);
}
const ack = (block: number) => Buffer.from([0, 4, (block >> 8) & 0xff, block & 0xff]);
const opcode = (msg: Buffer) => msg.readUInt16BE(0);
const errorOf = (msg: Buffer) => ({
  op: opcode(msg),
  code: msg.readUInt16BE(2),
  text: msg.toString('latin1', 4, msg.length - 1),
});
function oackOptions(msg: Buffer): Record<string, string> {
  const fields = msg.toString('latin1', 2, msg.length - 1).split('\0');
  const result: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) result[fields[i]!] = fields[i + 1]!;
  return result;
}

describe('TFTP server with real clients', () => {
  it('serves files byte-exact to curl, with default and negotiated block sizes', async () => {
    expect((await curl(['-o', out('c1'), url('hello.txt')])).code).toBe(0);
    expect(readFileSync(out('c1'))).toEqual(tree.files.hello);
    expect((await curl(['-o', out('c2'), url('vmlinuz')])).code).toBe(0);
    expect(readFileSync(out('c2')).equals(tree.files.kernel)).toBe(true);
    expect((await curl(['--tftp-blksize', '1468', '-o', out('c3'), url('vmlinuz')])).code).toBe(0);
    expect(readFileSync(out('c3')).equals(tree.files.kernel)).toBe(true);
    // A symlink that stays inside the root is followed.
    expect((await curl(['-o', out('c4'), url('inside')])).code).toBe(0);
    expect(readFileSync(out('c4'))).toEqual(tree.files.hello);
  });

  it('rolls the block number over past 65535 blocks (a 33 MiB file in 512-byte blocks)', async () => {
    const before = server.stats().completed;
    expect((await curl(['-o', out('big'), url('big.img')])).code).toBe(0);
    const got = readFileSync(out('big'));
    expect(got.length).toBe(big.length);
    expect(got.equals(big)).toBe(true);
    expect(server.stats().completed).toBe(before + 1);
  }, 90_000);

  it('serves files ending exactly on a block or read-ahead chunk boundary, and empty ones', async () => {
    // Read-ahead chunks are 256 KiB rounded up to whole blocks: 512 blocks of 512 bytes,
    // 179 blocks of 1468 (262,772 bytes). A file ending on a block boundary ends with an
    // empty block. Windows of 8 cross chunk boundaries.
    const sizes = [512, 262_144, 262_145, 2 * 262_772, 2 * 262_772 + 1, 3 * 262_144];
    for (const size of [0, ...sizes]) {
      writeFileSync(join(tree.root, `edge-${size}.bin`), randomBytes(size));
    }
    const file = (size: number) => readFileSync(join(tree.root, `edge-${size}.bin`));
    for (const size of sizes) {
      for (const blksize of [512, 1468]) {
        const got = out(`edge-${size}-${blksize}`);
        const extra = blksize === 512 ? [] : ['--tftp-blksize', String(blksize)];
        expect((await curl([...extra, '-o', got, url(`edge-${size}.bin`)])).code).toBe(0);
        expect(readFileSync(got).equals(file(size))).toBe(true);
      }
      const windowed = out(`edge-${size}-w8`);
      const options = ['--option', 'blksize 1468', '--option', 'windowsize 8'];
      await run(
        'atftp',
        ['--get', ...options, '-r', `edge-${size}.bin`, '-l', windowed, '127.0.0.1', String(server.port)],
        {
          timeout: 30_000,
        },
      );
      expect(readFileSync(windowed).equals(file(size))).toBe(true);
    }
    // curl 7.88 fails on any empty TFTP file (tftpd-hpa's too): tftp-hpa's client then.
    await run(
      'tftp',
      ['127.0.0.1', String(server.port), '-m', 'binary', '-c', 'get', 'edge-0.bin', out('edge-0')],
      {
        timeout: 30_000,
      },
    );
    expect(readFileSync(out('edge-0')).length).toBe(0);
  });

  it('serves tftp-hpa in binary and netascii modes', async () => {
    await run('tftp', ['127.0.0.1', String(server.port), '-m', 'binary', '-c', 'get', 'vmlinuz', out('h1')], {
      timeout: 60_000,
    });
    expect(readFileSync(out('h1')).equals(tree.files.kernel)).toBe(true);
    // netascii: the server sends CR LF / CR NUL, the client turns them back into the file.
    await run('tftp', ['127.0.0.1', String(server.port), '-m', 'ascii', '-c', 'get', 'menu.cfg', out('h2')], {
      timeout: 60_000,
    });
    expect(readFileSync(out('h2'))).toEqual(tree.files.text);
  });

  it('negotiates blksize, tsize and windowsize with atftp (OACK)', async () => {
    const { stdout, stderr } = await run(
      'atftp',
      [
        '--get',
        '-r',
        'vmlinuz',
        '-l',
        out('a1'),
        '--option',
        'blksize 1024',
        '--option',
        'tsize 0',
        '--option',
        'windowsize 4',
        '--trace',
        '127.0.0.1',
        String(server.port),
      ],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
    );
    const trace = stdout + stderr;
    expect(trace).toMatch(/received OACK <[^>]*tsize: 3145805/);
    expect(trace).toMatch(/received OACK <[^>]*blksize: 1024/);
    expect(trace).toMatch(/received OACK <[^>]*windowsize: 4/);
    expect(readFileSync(out('a1')).equals(tree.files.kernel)).toBe(true);
    await run('atftp', ['--get', '-r', 'hello.txt', '-l', out('a2'), '127.0.0.1', String(server.port)], {
      timeout: 30_000,
    });
    expect(readFileSync(out('a2'))).toEqual(tree.files.hello);
  });

  it('rolls over past 65535 blocks in a window too (atftp, windowsize 8, 512-byte blocks)', async () => {
    await run(
      'atftp',
      [
        '--get',
        '-r',
        'big.img',
        '-l',
        out('a3'),
        '--option',
        'blksize 512',
        '--option',
        'windowsize 8',
        '127.0.0.1',
        String(server.port),
      ],
      { timeout: 90_000 },
    );
    expect(readFileSync(out('a3')).equals(big)).toBe(true);
  }, 90_000);

  it('answers a missing file with "file not found" (curl exit 68)', async () => {
    const result = await curl(['-o', out('missing'), url('no-such-file')]);
    expect(result.code).toBe(68);
  });

  it('refuses writes', async () => {
    writeFileSync(out('upload'), 'data');
    const { stdout, stderr } = await run('tftp', [
      '127.0.0.1',
      String(server.port),
      '-m',
      'binary',
      '-c',
      'put',
      out('upload'),
      'uploaded.txt',
    ]);
    expect(stdout + stderr).toMatch(/write requests are refused/);
    expect(existsSync(join(tree.root, 'uploaded.txt'))).toBe(false);
    const peer = await RawPeer.open();
    try {
      peer.send(rrq('x.txt', 'octet', {}, 2));
      const reply = errorOf((await peer.next()).msg);
      expect(reply).toMatchObject({ op: 5, code: 2 });
    } finally {
      peer.close();
    }
    expect(existsSync(join(tree.root, 'x.txt'))).toBe(false);
  });
});

describe('TFTP server: path rules', () => {
  const refused: Array<[string, string | Buffer, number]> = [
    ['parent traversal', '../secret.txt', 2],
    ['traversal in the middle', 'sub/../../secret.txt', 2],
    ['absolute path out of the root', '/etc/passwd', 1],
    ['absolute traversal', '/../../../../etc/passwd', 2],
    ['symlink to a file out of the root', 'escape', 2],
    ['symlink to a directory out of the root', 'escape-dir/etc/passwd', 2],
    ['a directory', 'sub/dir', 2],
    ['a hidden file', '.hidden', 2],
    ['a non-ASCII byte', Buffer.from([0x68, 0xff, 0x2e, 0x74]), 2],
    ['a control byte', Buffer.from('hello\x01.txt', 'latin1'), 2],
    ['a backslash', 'sub\\file.bin', 2],
  ];
  for (const [what, file, code] of refused) {
    it(`refuses ${what} with error ${code}`, async () => {
      const peer = await RawPeer.open();
      try {
        peer.send(rrq(file));
        const { msg } = await peer.next();
        expect(errorOf(msg)).toMatchObject({ op: 5, code });
      } finally {
        peer.close();
      }
    });
  }

  it('strips a leading slash inside the root, as tftpd-hpa --secure does', async () => {
    expect((await curl(['-o', out('slash'), `tftp://127.0.0.1:${server.port}//sub/file.bin`])).code).toBe(0);
    expect(readFileSync(out('slash'))).toEqual(tree.files.hello);
  });
});

describe('TFTP server: protocol details and bounds', () => {
  it('answers OACK, then sends blocks of the negotiated size from a new port', async () => {
    const peer = await RawPeer.open();
    try {
      peer.send(rrq('vmlinuz', 'octet', { BlkSize: '1000', tsize: '0', timeout: '3', bogus: '1' }));
      const first = await peer.next();
      expect(opcode(first.msg)).toBe(6);
      expect(oackOptions(first.msg)).toEqual({
        blksize: '1000',
        tsize: String(tree.files.kernel.length),
        timeout: '3',
      });
      expect(first.rinfo.port).not.toBe(server.port);
      peer.send(ack(0), first.rinfo.port);
      const data = await peer.next();
      expect(data.msg.readUInt16BE(0)).toBe(3);
      expect(data.msg.readUInt16BE(2)).toBe(1);
      expect(data.msg.subarray(4).equals(tree.files.kernel.subarray(0, 1000))).toBe(true);
      // A stranger writing to the transfer's port does not disturb it (the socket is
      // connected to the client: the kernel drops foreign datagrams).
      const stranger = await RawPeer.open();
      stranger.send(ack(1), first.rinfo.port);
      stranger.close();
      peer.send(Buffer.from([0, 5, 0, 0, 0x62, 0x79, 0x65, 0]), first.rinfo.port); // client ERROR: ends it
      expect(await waitFor(() => server.stats().active === 0, 3000)).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('caps blksize at 65464, and a client declining the OACK (error 8) ends the transfer', async () => {
    const peer = await RawPeer.open();
    try {
      peer.send(rrq('hello.txt', 'octet', { blksize: '99999' }));
      const { msg, rinfo } = await peer.next();
      expect(oackOptions(msg)).toEqual({ blksize: '65464' });
      peer.send(Buffer.from([0, 5, 0, 8, 0x6e, 0x6f, 0]), rinfo.port);
      expect(await waitFor(() => server.stats().active === 0, 3000)).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('never answers an ERROR sent to the listening port (no error ping-pong)', async () => {
    const peer = await RawPeer.open();
    try {
      peer.send(Buffer.from([0, 5, 0, 0, 0x78, 0]));
      await expect(peer.next(400)).rejects.toThrow(/no packet/);
    } finally {
      peer.close();
    }
  });

  it('answers malformed packets with errors and keeps serving', async () => {
    const peer = await RawPeer.open();
    const garbage: Buffer[] = [
      Buffer.alloc(0),
      Buffer.from([1]),
      Buffer.from([0, 9, 1, 2, 3]),
      Buffer.from([0, 1, 0x61, 0x62, 0x63]), // RRQ without terminators
      Buffer.from([0, 1, 0, 0x6f, 0x63, 0x74, 0x65, 0x74, 0]), // empty file name
      Buffer.from('\x00\x01file\x00octet\x00blksize\x00', 'latin1'), // option without value
      rrq('hello.txt', 'mail'),
      Buffer.from([0, 3, 0, 1, 0x61]), // DATA to the listening port
      Buffer.from([0, 4, 0, 1]), // ACK to the listening port
      randomBytes(600),
    ];
    try {
      let errors = 0;
      for (const packet of garbage) {
        peer.send(packet);
        const { msg } = await peer.next();
        if (opcode(msg) === 5) errors++;
      }
      expect(errors).toBe(garbage.length);
    } finally {
      peer.close();
    }
    expect((await curl(['-o', out('after-garbage'), url('hello.txt')])).code).toBe(0);
    expect(readFileSync(out('after-garbage'))).toEqual(tree.files.hello);
  });

  it('does a windowed transfer (RFC 7440) with a raw client, resending after a lost window', async () => {
    const peer = await RawPeer.open();
    try {
      peer.send(rrq('vmlinuz', 'octet', { blksize: '8192', windowsize: '8' }));
      const oack = await peer.next();
      expect(oackOptions(oack.msg)).toEqual({ blksize: '8192', windowsize: '8' });
      const port = oack.rinfo.port;
      peer.send(ack(0), port);
      const blocks: Buffer[] = [];
      let dropped = false;
      let nakFor = -1;
      // Bounded: the file is 385 blocks; allow for the resent window.
      for (let i = 0; i < 2000; i++) {
        const { msg } = await peer.next(5000);
        expect(opcode(msg)).toBe(3);
        const block = msg.readUInt16BE(2);
        const expected = blocks.length + 1;
        if (!dropped && block === 20) {
          dropped = true; // pretend block 20 was lost: what follows arrives out of order
          continue;
        }
        if (block < expected) continue; // a duplicate
        if (block > expected) {
          // RFC 7440: acknowledge the last block received in order, once.
          if (nakFor !== blocks.length) peer.send(ack(blocks.length), port);
          nakFor = blocks.length;
          continue;
        }
        blocks.push(msg.subarray(4));
        const last = msg.length - 4 < 8192;
        if (last || blocks.length % 8 === 0) peer.send(ack(blocks.length), port);
        if (last) break;
      }
      expect(dropped).toBe(true);
      expect(Buffer.concat(blocks).equals(tree.files.kernel)).toBe(true);
    } finally {
      peer.close();
    }
  });
});

describe('TFTP server: lost and duplicated packets', () => {
  /** DATA packets until one of `block` arrives; returns the block numbers seen before it. */
  async function until(peer: RawPeer, block: number): Promise<number[]> {
    const seen: number[] = [];
    for (;;) {
      const { msg } = await peer.next(5000);
      expect(opcode(msg)).toBe(3);
      const got = msg.readUInt16BE(2);
      if (got === block) return seen;
      seen.push(got);
    }
  }

  it("ignores a duplicated ACK in lock-step (no Sorcerer's Apprentice)", async () => {
    const slow = await TftpServer.start({ root: tree.root, port: 0, retransmitTimeoutMs: 5000 });
    const peer = await RawPeer.open();
    try {
      peer.send(rrq('vmlinuz'), slow.port);
      const first = await peer.next();
      expect(first.msg.readUInt16BE(2)).toBe(1);
      const port = first.rinfo.port;
      peer.send(ack(1), port);
      expect(await until(peer, 2)).toEqual([]);
      // ACK 1 again (a delayed duplicate), then ACK 2. Had the duplicate been answered,
      // a second DATA 2 would arrive before DATA 3 (same socket, in order on loopback);
      // only a timer retransmission (a stalled machine) may explain one.
      const retransmitsBefore = slow.stats().retransmits;
      peer.send(ack(1), port);
      peer.send(ack(2), port);
      const between = await until(peer, 3);
      expect(between.length).toBeLessThanOrEqual(slow.stats().retransmits - retransmitsBefore);
      peer.send(Buffer.from([0, 5, 0, 0, 0x62, 0x79, 0x65, 0]), port);
      expect(await waitFor(() => slow.stats().active === 0, 3000)).toBe(true);
      expect(slow.stats()).toMatchObject({ failed: 1, completed: 0 });
    } finally {
      peer.close();
      await slow.close();
    }
  });

  it('resends the block whose ACK was lost, then goes on to the end', async () => {
    const quick = await TftpServer.start({ root: tree.root, port: 0, retransmitTimeoutMs: 50 });
    const peer = await RawPeer.open();
    try {
      // hello.txt in 8-byte blocks: 1, 2, 3 full, 4 short.
      peer.send(rrq('hello.txt', 'octet', { blksize: '8' }), quick.port);
      const oack = await peer.next();
      expect(opcode(oack.msg)).toBe(6);
      const port = oack.rinfo.port;
      peer.send(ack(0), port);
      const blocks: Buffer[] = [];
      let withheld = false;
      let resent = 0;
      for (let i = 0; i < 100; i++) {
        const { msg } = await peer.next(5000);
        expect(opcode(msg)).toBe(3);
        const block = msg.readUInt16BE(2);
        if (block === blocks.length) {
          // A resend of the block last received: ACK it again, as a client does (the
          // server must not answer that duplicate ACK with yet another copy).
          resent++;
          peer.send(ack(block), port);
          continue;
        }
        expect(block).toBe(blocks.length + 1);
        blocks.push(msg.subarray(4));
        // The first ACK of block 2 is "lost": the server resends block 2 on its timeout.
        if (block === 2 && !withheld) withheld = true;
        else peer.send(ack(block), port);
        if (msg.length - 4 < 8) break;
      }
      expect(Buffer.concat(blocks)).toEqual(tree.files.hello);
      expect(resent).toBeGreaterThanOrEqual(1);
      expect(await waitFor(() => quick.stats().active === 0, 3000)).toBe(true);
      expect(quick.stats()).toMatchObject({ completed: 1, failed: 0 });
      expect(quick.stats().retransmits).toBeGreaterThanOrEqual(1);
    } finally {
      peer.close();
      await quick.close();
    }
  });
});

describe('TFTP server: a lossy client across read-ahead chunks', () => {
  for (const windowsize of [1, 4]) {
    it(`gets the file byte-exact though DATA and ACKs get lost (windowsize ${windowsize})`, async () => {
      const quick = await TftpServer.start({
        root: tree.root,
        port: 0,
        retransmitTimeoutMs: 50,
        maxRetries: 20,
      });
      const peer = await RawPeer.open();
      try {
        // 8192-byte blocks: read-ahead chunks of 32 blocks, 385 blocks in all, so resends
        // cross chunk boundaries. Every 23rd DATA and every 29th ACK are "lost".
        const options: Record<string, string> = { blksize: '8192' };
        if (windowsize > 1) options.windowsize = String(windowsize);
        peer.send(rrq('vmlinuz', 'octet', options), quick.port);
        const oack = await peer.next();
        expect(opcode(oack.msg)).toBe(6);
        const port = oack.rinfo.port;
        let acks = 0;
        const sendAck = (block: number) => {
          if (++acks % 29 !== 0) peer.send(ack(block & 0xffff), port);
        };
        sendAck(0);
        const blocks: Buffer[] = [];
        let datas = 0;
        let sinceAck = 0;
        let gapAcked = -1;
        for (let i = 0; i < 20_000; i++) {
          const { msg } = await peer.next(5000);
          if (opcode(msg) === 6) {
            sendAck(0); // our ACK of the OACK was lost: the OACK came again
            continue;
          }
          expect(opcode(msg)).toBe(3);
          if (++datas % 23 === 0) continue; // lost on the way
          const block = msg.readUInt16BE(2);
          const expected = (blocks.length + 1) & 0xffff;
          if (block !== expected) {
            // A resend of what we have (our ACK was lost) or a gap (a DATA was lost):
            // acknowledge the last block received in order, once per gap (RFC 7440).
            if (gapAcked !== blocks.length) sendAck(blocks.length);
            gapAcked = blocks.length;
            sinceAck = 0;
            continue;
          }
          blocks.push(msg.subarray(4));
          gapAcked = -1;
          const last = msg.length - 4 < 8192;
          if (last || ++sinceAck === windowsize) {
            sendAck(blocks.length);
            sinceAck = 0;
          }
          if (last) break;
        }
        expect(Buffer.concat(blocks).equals(tree.files.kernel)).toBe(true);
        expect(quick.stats().retransmits).toBeGreaterThan(0);
      } finally {
        peer.close();
        await quick.close();
      }
    }, 60_000);
  }
});

describe('TFTP server: exhaustion', () => {
  it('retransmits to a silent client, then gives up and frees the transfer', async () => {
    const quick = await TftpServer.start({
      root: tree.root,
      port: 0,
      retransmitTimeoutMs: 100,
      maxRetries: 3,
    });
    const peer = await RawPeer.open();
    try {
      peer.send(rrq('vmlinuz'), quick.port);
      await peer.next();
      expect(quick.stats().active).toBe(1);
      expect(await waitFor(() => quick.stats().active === 0, 5000)).toBe(true);
      expect(quick.stats()).toMatchObject({ failed: 1, retransmits: 3, completed: 0 });
      expect(peer.received).toBe(4); // DATA 1 and its three retransmissions
    } finally {
      peer.close();
      await quick.close();
    }
  });

  it('frees a transfer at once when the client is gone (ICMP port unreachable)', async () => {
    const quick = await TftpServer.start({
      root: tree.root,
      port: 0,
      retransmitTimeoutMs: 200,
      maxRetries: 50,
    });
    const peer = await RawPeer.open();
    peer.send(rrq('vmlinuz'), quick.port);
    await peer.next();
    peer.close();
    try {
      // 50 retries × 200 ms would take 10 s; the closed port ends it at the first retransmission.
      expect(await waitFor(() => quick.stats().active === 0, 3000)).toBe(true);
      expect(quick.stats().failed).toBe(1);
    } finally {
      await quick.close();
    }
  });

  it('serves 17 transfers at once byte-exact (the 17th reads ahead in smaller chunks)', async () => {
    // The first 16 transfers running at once read ahead 256 KiB at a time, later ones 64 KiB.
    const wide = await TftpServer.start({
      root: tree.root,
      port: 0,
      maxTransfersPerClient: 32,
      retransmitTimeoutMs: 10_000,
    });
    const peers: RawPeer[] = [];
    try {
      const started: Array<{ peer: RawPeer; port: number; blksize: number }> = [];
      for (let i = 0; i < 17; i++) {
        const peer = await RawPeer.open();
        peers.push(peer);
        const blksize = i % 2 === 0 ? 1468 : 8192;
        peer.send(rrq('vmlinuz', 'octet', { blksize: String(blksize) }), wide.port);
        const oack = await peer.next();
        expect(opcode(oack.msg)).toBe(6);
        started.push({ peer, port: oack.rinfo.port, blksize });
      }
      expect(wide.stats().active).toBe(17);
      const files = await Promise.all(
        started.map(async ({ peer, port, blksize }) => {
          const blocks: Buffer[] = [];
          peer.send(ack(0), port);
          for (;;) {
            const { msg } = await peer.next(30_000);
            if (opcode(msg) === 6) continue; // the OACK resent (a slow start)
            expect(opcode(msg)).toBe(3);
            const block = msg.readUInt16BE(2);
            if (block !== ((blocks.length + 1) & 0xffff)) continue; // a timer resend
            blocks.push(msg.subarray(4));
            peer.send(ack(block), port);
            if (msg.length - 4 < blksize) return Buffer.concat(blocks);
          }
        }),
      );
      for (const file of files) expect(file.equals(tree.files.kernel)).toBe(true);
      expect(await waitFor(() => wide.stats().active === 0, 3000)).toBe(true);
      expect(wide.stats()).toMatchObject({ completed: 17, failed: 0 });
    } finally {
      for (const peer of peers) peer.close();
      await wide.close();
    }
  }, 120_000);

  it('caps transfers server-wide and per client', async () => {
    const capped = await TftpServer.start({
      root: tree.root,
      port: 0,
      maxTransfers: 2,
      maxTransfersPerClient: 1,
      retransmitTimeoutMs: 5000,
    });
    const peers = await Promise.all([RawPeer.open(), RawPeer.open(), RawPeer.open()]);
    try {
      peers[0]!.send(rrq('vmlinuz'), capped.port);
      expect(opcode((await peers[0]!.next()).msg)).toBe(3);
      // Same address, another port: over the per-client cap.
      peers[1]!.send(rrq('vmlinuz'), capped.port);
      expect(errorOf((await peers[1]!.next()).msg)).toMatchObject({ op: 5, code: 0 });
      expect(capped.stats().active).toBe(1);
      await capped.close();
    } finally {
      for (const peer of peers) peer.close();
    }
    const wide = await TftpServer.start({
      root: tree.root,
      port: 0,
      maxTransfers: 2,
      retransmitTimeoutMs: 5000,
    });
    const more = await Promise.all([RawPeer.open(), RawPeer.open(), RawPeer.open(), RawPeer.open()]);
    try {
      more[0]!.send(rrq('vmlinuz'), wide.port);
      more[1]!.send(rrq('vmlinuz'), wide.port);
      expect(opcode((await more[0]!.next()).msg)).toBe(3);
      expect(opcode((await more[1]!.next()).msg)).toBe(3);
      more[2]!.send(rrq('vmlinuz'), wide.port);
      const refused = errorOf((await more[2]!.next()).msg);
      expect(refused).toMatchObject({ op: 5, code: 0 });
      expect(refused.text).toMatch(/busy/);
      expect(wide.stats().active).toBe(2);
      // A duplicated RRQ (same client port) does not start a second transfer. The server
      // reads its port's datagrams in order: once a later RRQ is answered (refused: busy),
      // the duplicate has been handled.
      more[0]!.send(rrq('vmlinuz'), wide.port);
      more[3]!.send(rrq('vmlinuz'), wide.port);
      expect(errorOf((await more[3]!.next()).msg).text).toMatch(/busy/);
      expect(wide.stats().started).toBe(2);
    } finally {
      for (const peer of more) peer.close();
      await wide.close();
    }
    expect(wide.stats().active).toBe(0);
  });
});
