// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the expected strings are iPXE script, whose variables are ${name}
import { describe, expect, it } from 'vitest';
import {
  BootRenderError,
  grubConfigPaths,
  ipxeScriptPath,
  kernelParamTokens,
  type NodeBootDescription,
  normalizeMac,
  normalizeMacs,
  normalizeUuid,
  pxelinuxConfigPath,
  renderEntryScript,
  renderGrubConfig,
  renderIpxeScript,
  renderNodeBootFiles,
  renderPxelinuxConfig,
  safeTftpPath,
  safeUrl,
} from '../../agent/boot/render.ts';

const NODE = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123';
const IMG = 'http://10.0.0.1:8080/images/0d7c1f3a-2b4e-4f60-8a9b-c1d2e3f40516';

const kernelNode = (
  over: Partial<NodeBootDescription> = {},
  params = 'console=ttyS0 quiet',
): NodeBootDescription => ({
  nodeUuid: NODE,
  macs: ['52:54:00:12:34:56'],
  bootMode: 'bios',
  boot: {
    kind: 'kernel',
    kernelUrl: `${IMG}/kernel`,
    ramdiskUrl: `${IMG}/ramdisk`,
    kernelPath: `${NODE}/kernel`,
    ramdiskPath: `${NODE}/ramdisk`,
    appendParams: params,
  },
  callbackUrl: 'http://10.0.0.1:8080/callback?token=abc&n=1',
  ...over,
});

const isoNode = (over: Partial<NodeBootDescription> = {}): NodeBootDescription => ({
  nodeUuid: NODE,
  macs: ['52:54:00:12:34:56'],
  bootMode: 'bios',
  boot: { kind: 'iso', isoUrl: `${IMG}/iso`, isoPath: `${NODE}/boot.iso` },
  ...over,
});

const lines = (text: string) => text.split('\n');

describe('MACs, UUIDs, paths', () => {
  it('normalizes the usual MAC notations to lower-case colon form', () => {
    for (const mac of ['52:54:00:AB:cd:EF', '52-54-00-ab-cd-ef', '5254.00ab.cdef', '525400ABCDEF']) {
      expect(normalizeMac(mac)).toBe('52:54:00:ab:cd:ef');
    }
    expect(normalizeMacs(['52:54:00:ab:cd:ef', '52-54-00-AB-CD-EF', 'aa:bb:cc:dd:ee:ff'])).toEqual([
      '52:54:00:ab:cd:ef',
      'aa:bb:cc:dd:ee:ff',
    ]);
  });

  it('refuses what is not a MAC', () => {
    for (const bad of [
      '52:54:00:ab:cd',
      '52:54:00:ab:cd:ef:01',
      '52:54-00:ab:cd:ef',
      'zz:54:00:ab:cd:ef',
      '52:54:00:ab:cd:ef\n',
      '../../../etc/passwd',
      '01-52-54-00-ab-cd-ef',
      '',
    ]) {
      expect(() => normalizeMac(bad), bad).toThrow(BootRenderError);
    }
    expect(() => normalizeMacs([])).toThrow(/at least one/);
  });

  it('names per-MAC files as Ironic does', () => {
    expect(pxelinuxConfigPath('52:54:00:AB:CD:EF')).toBe('pxelinux.cfg/01-52-54-00-ab-cd-ef');
    expect(ipxeScriptPath('52:54:00:AB:CD:EF')).toBe('pxelinux.cfg/52-54-00-ab-cd-ef');
    expect(grubConfigPaths('52:54:00:AB:CD:EF')).toEqual([
      'grub.cfg-01-52-54-00-ab-cd-ef',
      '52:54:00:ab:cd:ef.conf',
    ]);
  });

  it('accepts only UUIDs as node ids and plain relative TFTP paths', () => {
    expect(normalizeUuid(NODE.toUpperCase())).toBe(NODE);
    for (const bad of ['../etc', `${NODE}/..`, 'node-1', `${NODE}\n`])
      expect(() => normalizeUuid(bad)).toThrow(BootRenderError);
    expect(safeTftpPath(`${NODE}/kernel`, 'p')).toBe(`${NODE}/kernel`);
    for (const bad of ['../kernel', '/abs/kernel', 'a//b', '.hidden/k', 'a/./b', 'a b', 'a\nb', '']) {
      expect(() => safeTftpPath(bad, 'p'), bad).toThrow(BootRenderError);
    }
  });

  it('normalizes URLs and refuses those a script would interpret', () => {
    expect(safeUrl('http://h:1/caf\u00e9', 'u')).toBe('http://h:1/caf%C3%A9');
    expect(safeUrl('HTTP://H/x?a=1&b=2', 'u')).toBe('http://h/x?a=1&b=2');
    // Characters WHATWG URL encodes or rewrites come out harmless.
    expect(safeUrl('http://h/a"b', 'u')).toBe('http://h/a%22b');
    expect(safeUrl('http://h/a\\b', 'u')).toBe('http://h/a/b');
    for (const bad of [
      'http://h/a\nkernel http://evil/k',
      'http://h/a b',
      'http://h/a\rb',
      'http://h/${net0/mac}',
      "http://h/a'b",
      'http://h/x?a=$b',
      'http://h/x?a=`id`',
      'http://h/#frag',
      'ftp://h/x',
      'javascript:alert(1)',
      'tftp://h/x',
      'not a url',
      `http://h/${'a'.repeat(1100)}`,
    ]) {
      expect(() => safeUrl(bad, 'u'), bad).toThrow(BootRenderError);
    }
  });
});

describe('kernel parameters', () => {
  it('keeps ordinary parameters as tokens', () => {
    expect(kernelParamTokens('  console=ttyS0,115200n8   ip=dhcp a;b x&y ')).toEqual([
      'console=ttyS0,115200n8',
      'ip=dhcp',
      'a;b',
      'x&y',
    ]);
    expect(kernelParamTokens(undefined)).toEqual([]);
  });

  it('refuses injections and parameters the loader owns', () => {
    for (const bad of [
      'quiet\nkernel http://evil/k',
      'quiet\rboot',
      'quiet\tx',
      'a=${root-path}',
      'a=$x',
      'a="b c"',
      "a='b'",
      'a\\b',
      'a=`id`',
      'quiet #comment',
      'quiet || shell',
      'quiet && shell',
      'quiet | x',
      'initrd=http://evil/initrd',
      'callback=http://evil/',
      'caf\u00e9',
      42,
    ]) {
      expect(() => kernelParamTokens(bad), String(bad)).toThrow(BootRenderError);
    }
  });

  it('refuses a command line longer than the kernel takes', () => {
    expect(() => renderIpxeScript(kernelNode({}, 'x'.repeat(2100)))).toThrow(/longer than/);
  });
});

describe('iPXE script', () => {
  it('boots kernel + initrd over HTTP with the callback last on the command line', () => {
    const script = renderIpxeScript(kernelNode());
    const l = lines(script);
    expect(l[0]).toBe('#!ipxe');
    expect(l).toContain(
      `kernel ${IMG}/kernel initrd=ramdisk console=ttyS0 quiet callback=http://10.0.0.1:8080/callback?token=abc&n=1 || goto retry`,
    );
    expect(l).toContain(`initrd --name ramdisk ${IMG}/ramdisk || goto retry`);
    expect(l).toContain('boot || goto retry');
    // Retries, then powers off (Ironic's template).
    expect(l.indexOf(':retry')).toBeGreaterThan(l.indexOf('boot || goto retry'));
    expect(l.at(-2)).toBe('poweroff');
    // Only the script's own variables are expanded.
    expect(script.match(/\$\{[^}]*\}/g)?.sort()).toEqual(
      ['${attempts}', '${attempts}', '${i}', '${i}', '${i}'].sort(),
    );
  });

  it('sanboots an ISO over HTTP', () => {
    const l = lines(renderIpxeScript(isoNode({ callbackUrl: 'http://h/cb' })));
    expect(l).toContain(`sanboot --no-describe ${IMG}/iso || goto retry`);
    expect(l.some((x) => x.startsWith('kernel'))).toBe(false);
  });

  it('has the same structure whatever allowed characters the parameters hold', () => {
    const plain = lines(renderIpxeScript(kernelNode({}, 'a b c')));
    const odd = lines(renderIpxeScript(kernelNode({}, 'a;b c&d e<f>{g}|h!*?')));
    expect(odd.length).toBe(plain.length);
    expect(odd.filter((x) => x.startsWith('kernel ')).length).toBe(1);
  });
});

describe('PXELINUX config', () => {
  it('boots kernel + initrd over TFTP (golden)', () => {
    expect(renderPxelinuxConfig(kernelNode())).toBe(
      [
        `# metalplane: boot config of node ${NODE}, written by the agent; do not edit`,
        'default boot',
        'prompt 0',
        'timeout 1',
        '',
        'label boot',
        `kernel ${NODE}/kernel`,
        `append initrd=${NODE}/ramdisk console=ttyS0 quiet callback=http://10.0.0.1:8080/callback?token=abc&n=1`,
        '',
      ].join('\n'),
    );
  });

  it('boots an ISO through memdisk', () => {
    const l = lines(renderPxelinuxConfig(isoNode()));
    expect(l.slice(l.indexOf('label boot'))).toEqual([
      'label boot',
      'kernel memdisk',
      `initrd ${NODE}/boot.iso`,
      'append iso raw',
      '',
    ]);
  });
});

describe('GRUB config', () => {
  it('boots linux + initrd, single-quoting words GRUB would interpret (golden)', () => {
    expect(renderGrubConfig(kernelNode({ bootMode: 'uefi' }, 'console=ttyS0 a;b {x}'))).toBe(
      [
        `# metalplane: boot config of node ${NODE}, written by the agent; do not edit`,
        'set default=boot',
        'set timeout=5',
        'set hidden_timeout_quiet=false',
        '',
        'menuentry "boot" {',
        `    linux /${NODE}/kernel console=ttyS0 'a;b' '{x}' 'callback=http://10.0.0.1:8080/callback?token=abc&n=1'`,
        `    initrd /${NODE}/ramdisk`,
        '}',
        '',
      ].join('\n'),
    );
  });

  it('boots an ISO through loopback', () => {
    const l = lines(renderGrubConfig(isoNode({ bootMode: 'uefi' })));
    expect(l).toContain(`    loopback loop /${NODE}/boot.iso`);
    expect(l).toContain('    set root=(loop)');
    expect(l).toContain('        configfile /boot/grub/loopback.cfg');
  });
});

describe('generic entry script boot.ipxe', () => {
  it('chains the per-MAC script of each NIC, and exits to the next boot device when none has one', () => {
    const l = lines(renderEntryScript());
    expect(l[0]).toBe('#!ipxe');
    expect(l).toContain('inc netid || chain pxelinux.cfg/${mac:hexhyp} || goto old_rom');
    expect(l).toContain('chain pxelinux.cfg/${net${netid}/mac:hexhyp} || goto loop');
    const noConfig = l.indexOf(':no_config');
    expect(l[noConfig + 2]).toBe('exit 0');
    expect(l.some((x) => x.startsWith('chain http'))).toBe(false);
  });

  it('chains a fallback when given one, and refuses an unsafe one', () => {
    const l = lines(renderEntryScript({ fallbackUrl: 'http://10.0.0.1:8080/inspector.ipxe' }));
    expect(l).toContain('chain http://10.0.0.1:8080/inspector.ipxe || goto no_config');
    expect(() => renderEntryScript({ fallbackUrl: 'http://h/x\nshell' })).toThrow(BootRenderError);
  });
});

describe('all files of a node', () => {
  it('BIOS: iPXE scripts in the HTTP root, PXELINUX configs in the TFTP root, per MAC and per node', () => {
    const r = renderNodeBootFiles(
      kernelNode({ macs: ['52:54:00:12:34:56', 'AA-BB-CC-DD-EE-FF', '525400123456'] }),
    );
    expect(r.macs).toEqual(['52:54:00:12:34:56', 'aa:bb:cc:dd:ee:ff']);
    expect(r.files.map((f) => `${f.root}:${f.path}`)).toEqual([
      `http:${NODE}/config`,
      'http:pxelinux.cfg/52-54-00-12-34-56',
      'http:pxelinux.cfg/aa-bb-cc-dd-ee-ff',
      `tftp:${NODE}/config`,
      'tftp:pxelinux.cfg/01-52-54-00-12-34-56',
      'tftp:pxelinux.cfg/01-aa-bb-cc-dd-ee-ff',
    ]);
    expect(r.files[1]!.content).toBe(renderIpxeScript(kernelNode()));
    expect(r.kernelCmdline).toBe('console=ttyS0 quiet callback=http://10.0.0.1:8080/callback?token=abc&n=1');
    expect(r.warnings).toEqual([]);
  });

  it('UEFI: GRUB configs under both of Ironic’s names', () => {
    const r = renderNodeBootFiles(kernelNode({ bootMode: 'uefi' }));
    expect(r.files.filter((f) => f.root === 'tftp').map((f) => f.path)).toEqual([
      `${NODE}/config`,
      'grub.cfg-01-52-54-00-12-34-56',
      '52:54:00:12:34:56.conf',
    ]);
    expect(r.files.at(-1)!.content).toContain('menuentry "boot"');
  });

  it('ISO: no command line, and a warning that the callback cannot be passed', () => {
    const r = renderNodeBootFiles(isoNode({ callbackUrl: 'http://h/cb' }));
    expect(r.kernelCmdline).toBeNull();
    expect(r.warnings).toEqual([expect.stringContaining('callback_url not passed')]);
  });

  it('refuses an unknown boot mode or boot kind', () => {
    expect(() => renderNodeBootFiles(kernelNode({ bootMode: 'legacy' as never }))).toThrow(/bios or uefi/);
    expect(() => renderNodeBootFiles({ ...isoNode(), boot: { kind: 'disk' } as never })).toThrow(
      BootRenderError,
    );
  });
});
