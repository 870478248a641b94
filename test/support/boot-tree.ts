/** A served boot root for the TFTP/HTTP server tests, with the traps they must refuse. */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BootTree {
  /** Temporary directory holding `root/` and files outside it. */
  readonly dir: string;
  readonly root: string;
  readonly files: {
    readonly hello: Buffer;
    readonly text: Buffer;
    readonly kernel: Buffer;
  };
  remove(): void;
}

/**
 * root/hello.txt, root/menu.cfg (text with LF and a bare CR), root/vmlinuz (3 MiB random),
 * root/sub/dir/, root/.hidden, root/inside → hello.txt (symlink inside),
 * root/escape → ../secret.txt and root/escape-dir → / (symlinks out), secret.txt outside.
 */
export function makeBootTree(): BootTree {
  const dir = mkdtempSync(join(tmpdir(), 'metalplane-boot-'));
  const root = join(dir, 'root');
  mkdirSync(join(root, 'sub', 'dir'), { recursive: true });
  const hello = Buffer.from('hello from the boot root\n');
  const text = Buffer.from('#!ipxe\nkernel http://x/vmlinuz\r\nboot\nlast line without newline\rend');
  const kernel = randomBytes(3 * 1024 * 1024 + 77);
  writeFileSync(join(root, 'hello.txt'), hello);
  writeFileSync(join(root, 'menu.cfg'), text);
  writeFileSync(join(root, 'vmlinuz'), kernel);
  writeFileSync(join(root, 'sub', 'file.bin'), hello);
  writeFileSync(join(root, '.hidden'), 'temporary\n');
  writeFileSync(join(dir, 'secret.txt'), 'SECRET outside the root\n');
  symlinkSync('hello.txt', join(root, 'inside'));
  symlinkSync('../secret.txt', join(root, 'escape'));
  symlinkSync('/', join(root, 'escape-dir'));
  return {
    dir,
    root,
    files: { hello, text, kernel },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Polls `check` every 50 ms until it is true or `ms` passed; returns its last value. */
export async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < until; i++) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return check();
}
