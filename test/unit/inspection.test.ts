import { describe, expect, it } from 'vitest';
import { DomainError } from '../../lambda/domain/errors.ts';
import { applyInspection, type ExistingPort } from '../../lambda/domain/inspection/apply.ts';
import {
  type CheckedInventory,
  checkInventory,
  MAX_INVENTORY_BYTES,
  MAX_INVENTORY_DEVICES,
} from '../../lambda/domain/inspection/inventory.ts';

const GiB = 1024 ** 3;
const NODE = { uuid: '1be26c0b-03f2-4d2e-ae87-c02d7f33c123', properties: {} };

function inventory(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cpu: {
      model_name: 'Xeon',
      frequency: '2400',
      count: 16,
      architecture: 'x86_64',
      flags: ['vmx'],
      socket_count: 2,
    },
    memory: { total: 68_719_476_736, physical_mb: 65_536 },
    disks: [
      {
        name: '/dev/sda',
        model: 'big',
        size: 960 * GiB,
        rotational: false,
        wwn: null,
        serial: 'S1',
        vendor: 'ATA',
        by_path: null,
      },
      {
        name: '/dev/sdb',
        model: 'small',
        size: 240 * GiB,
        rotational: true,
        wwn: null,
        serial: 'S2',
        vendor: 'ATA',
        by_path: null,
      },
      {
        name: '/dev/sdc',
        model: 'usb',
        size: 2 * GiB,
        rotational: false,
        wwn: null,
        serial: 'S3',
        vendor: 'USB',
        by_path: null,
      },
    ],
    interfaces: [
      {
        name: 'lo',
        mac_address: '00:00:00:00:00:00',
        ipv4_address: '127.0.0.1',
        has_carrier: true,
        driver: null,
        speed_mbps: null,
      },
      {
        name: 'eno1',
        mac_address: '52:54:00:AA:BB:01',
        ipv4_address: '10.0.0.5',
        has_carrier: true,
        driver: 'ixgbe',
        speed_mbps: 10000,
      },
      {
        name: 'eno2',
        mac_address: '52-54-00-aa-bb-02',
        ipv4_address: null,
        has_carrier: false,
        driver: 'ixgbe',
        speed_mbps: null,
      },
      {
        name: 'eno3',
        mac_address: '525400aabb03',
        ipv4_address: '10.0.1.5',
        has_carrier: true,
        driver: 'ixgbe',
        speed_mbps: 10000,
      },
    ],
    system_vendor: { product_name: 'R640', serial_number: 'X', manufacturer: 'Dell' },
    boot: { current_boot_mode: 'uefi', pxe_interface: '52:54:00:aa:bb:01' },
    hostname: null,
    ...overrides,
  };
}

const checked = (overrides: Record<string, unknown> = {}): CheckedInventory =>
  checkInventory(inventory(overrides));

function errorOf(action: () => unknown): DomainError {
  try {
    action();
  } catch (error) {
    if (error instanceof DomainError) return error;
    throw error;
  }
  throw new Error('no error');
}

describe('checkInventory', () => {
  it('normalizes MACs (case, dashes, bare hex) and a pxelinux boot interface', () => {
    const result = checked({ boot: { current_boot_mode: 'bios', pxe_interface: '01-52-54-00-AA-BB-02' } });
    expect(result.interfaces.map((iface) => iface.mac_address)).toStrictEqual([
      '00:00:00:00:00:00',
      '52:54:00:aa:bb:01',
      '52:54:00:aa:bb:02',
      '52:54:00:aa:bb:03',
    ]);
    expect(result.boot.pxe_interface).toBe('52:54:00:aa:bb:02');
  });

  it('keeps fields it does not know, and longer (InfiniBand) hardware addresses', () => {
    const ib = Array.from({ length: 20 }, () => 'AB').join(':');
    const result = checked({
      bmc_address: '10.1.1.1',
      interfaces: [
        { name: 'ib0', mac_address: ib },
        { name: 'eno1', mac_address: '52:54:00:aa:bb:01' },
      ],
    });
    expect((result as Record<string, unknown>).bmc_address).toBe('10.1.1.1');
    expect(result.interfaces[0]?.mac_address).toBe(ib.toLowerCase());
  });

  it('refuses what is not an inventory, naming the field', () => {
    expect(errorOf(() => checkInventory('x')).message).toBe(
      'The inventory is invalid: the inventory must be object.',
    );
    const { memory: _memory, ...noMemory } = inventory();
    expect(errorOf(() => checkInventory(noMemory)).message).toBe(
      'The inventory is invalid: memory is required.',
    );
    expect(errorOf(() => checked({ cpu: { count: 'many', architecture: 'x86_64' } })).message).toBe(
      'The inventory is invalid: cpu.count must be integer.',
    );
    expect(errorOf(() => checked({ interfaces: [{ name: 'eno1', mac_address: 'zz:zz' }] })).message).toBe(
      "The inventory is invalid: interfaces[0].mac_address 'zz:zz' is not a MAC address.",
    );
    expect(errorOf(() => checked({ interfaces: [{ name: 'eno1' }, { name: 'eno1' }] })).message).toBe(
      "The inventory is invalid: interfaces[1].name 'eno1' is listed twice.",
    );
    expect(errorOf(() => checked({ disks: [{ name: '/dev/sda', size: -1 }] })).message).toBe(
      'The inventory is invalid: disks[0].size must be >= 0.',
    );
    expect(
      errorOf(() => checked({ boot: { current_boot_mode: 'uefi', pxe_interface: 'eth0' } })).message,
    ).toBe("The inventory is invalid: boot.pxe_interface 'eth0' is not a MAC address.");
    expect(errorOf(() => checked({ boot: { current_boot_mode: 'legacy' } })).kind).toBe('invalid');
  });

  it('refuses more than 1000 disks or interfaces, and more than 512 KiB', () => {
    const disks = Array.from({ length: MAX_INVENTORY_DEVICES + 1 }, (_, i) => ({ name: `d${i}`, size: 1 }));
    expect(errorOf(() => checked({ disks })).message).toBe(
      'The inventory is invalid: disks lists more than 1000 entries.',
    );
    const interfaces = Array.from({ length: MAX_INVENTORY_DEVICES + 1 }, (_, i) => ({ name: `n${i}` }));
    expect(errorOf(() => checked({ interfaces })).message).toBe(
      'The inventory is invalid: interfaces lists more than 1000 entries.',
    );
    const huge = errorOf(() => checked({ notes: 'x'.repeat(MAX_INVENTORY_BYTES) }));
    expect(huge.kind).toBe('too-large');
    expect(huge.message).toMatch(/^The inventory is \d+ bytes serialized; at most 524288 are accepted\.$/);
  });
});

describe('applyInspection: properties', () => {
  it('sets cpus, memory_mb, cpu_arch, local_gb (smallest disk of 4 GiB+, less 1) and boot_mode', () => {
    const outcome = applyInspection(
      { uuid: NODE.uuid, properties: { vendor: 'kept', capabilities: 'secure_boot:true' } },
      checked(),
    );
    expect(outcome.properties).toStrictEqual({
      vendor: 'kept',
      capabilities: 'secure_boot:true,boot_mode:uefi',
      cpu_arch: 'x86_64',
      memory_mb: 65_536,
      cpus: 16,
      local_gb: 239,
    });
    expect([...outcome.changed].sort()).toStrictEqual([
      'capabilities',
      'cpu_arch',
      'cpus',
      'local_gb',
      'memory_mb',
    ]);
    expect(outcome.pluginData.root_disk?.name).toBe('/dev/sdb');
    expect(outcome.pluginData.local_gb).toBe(239);
  });

  it('replaces an existing boot_mode and reports nothing changed on a second run', () => {
    const first = applyInspection(
      { uuid: NODE.uuid, properties: { capabilities: 'boot_mode:bios,x:y' } },
      checked(),
    );
    expect(first.properties.capabilities).toBe('boot_mode:uefi,x:y');
    const again = applyInspection({ uuid: NODE.uuid, properties: first.properties }, checked());
    expect(again.changed).toStrictEqual([]);
  });

  it('refuses a malformed capabilities string as Ironic does', () => {
    expect(
      errorOf(() =>
        applyInspection({ uuid: NODE.uuid, properties: { capabilities: 'boot_mode:bios,oops' } }, checked()),
      ).message,
    ).toBe(`Invalid capabilities string 'boot_mode:bios,oops' in the properties of node ${NODE.uuid}.`);
  });

  it('follows root device hints, and fails when none matches', () => {
    const bySize = applyInspection(
      { uuid: NODE.uuid, properties: { root_device: { size: '>= 500' } } },
      checked(),
    );
    expect(bySize.properties.local_gb).toBe(959);
    const bySerial = applyInspection(
      { uuid: NODE.uuid, properties: { root_device: { serial: 's1', rotational: false } } },
      checked(),
    );
    expect(bySerial.pluginData.root_disk?.name).toBe('/dev/sda');
    expect(
      errorOf(() =>
        applyInspection({ uuid: NODE.uuid, properties: { root_device: { model: 'nope' } } }, checked()),
      ).message,
    ).toBe(`No disks satisfied root device hints for node ${NODE.uuid}`);
  });

  it('without spacing, without disks, without CPU count or boot mode', () => {
    expect(applyInspection(NODE, checked(), { diskPartitioningSpacing: false }).properties.local_gb).toBe(
      240,
    );
    const bare = applyInspection(
      NODE,
      checked({ disks: [], cpu: { count: 0, architecture: 'aarch64' }, boot: {} }),
    );
    expect(bare.properties).toStrictEqual({ cpu_arch: 'aarch64', memory_mb: 65_536, local_gb: 0 });
    expect(bare.warnings).toContain(`No root device found for node ${NODE.uuid}. Assuming node is diskless.`);
  });
});

describe('applyInspection: ports', () => {
  const port = (uuid: string, address: string, pxe_enabled: boolean): ExistingPort => ({
    uuid,
    address,
    pxe_enabled,
  });

  it('add_ports=pxe (default): the PXE NIC only; all of them without a known PXE NIC', () => {
    const outcome = applyInspection(NODE, checked());
    expect(outcome.ports.create).toStrictEqual([
      { address: '52:54:00:aa:bb:01', pxe_enabled: true, extra: {} },
    ]);
    const unknown = applyInspection(
      NODE,
      checked({ boot: { current_boot_mode: 'uefi', pxe_interface: null } }),
    );
    expect(unknown.ports.create.map((p) => p.address)).toStrictEqual([
      '52:54:00:aa:bb:01',
      '52:54:00:aa:bb:02',
      '52:54:00:aa:bb:03',
    ]);
    expect(unknown.ports.create.every((p) => !p.pxe_enabled)).toBe(true);
  });

  it('add_ports=all, active, disabled', () => {
    const all = applyInspection(NODE, checked(), { addPorts: 'all' });
    expect(all.ports.create.map((p) => [p.address, p.pxe_enabled])).toStrictEqual([
      ['52:54:00:aa:bb:01', true],
      ['52:54:00:aa:bb:02', false],
      ['52:54:00:aa:bb:03', false],
    ]);
    const active = applyInspection(NODE, checked(), { addPorts: 'active' });
    expect(active.ports.create.map((p) => p.address)).toStrictEqual([
      '52:54:00:aa:bb:01',
      '52:54:00:aa:bb:03',
    ]);
    const disabled = applyInspection(NODE, checked(), { addPorts: 'disabled' });
    expect(disabled.ports.create).toStrictEqual([]);
    expect(disabled.pluginData.macs).toHaveLength(3);
  });

  it('does not re-create a port the node has, and passes client ids', () => {
    const outcome = applyInspection(
      NODE,
      checked({
        interfaces: [
          { name: 'eno1', mac_address: '52:54:00:aa:bb:01', client_id: 'ff:00' },
          { name: 'eno2', mac_address: '52:54:00:aa:bb:02', client_id: 'ff:01' },
        ],
      }),
      { addPorts: 'all', ports: [port('p1', '52:54:00:aa:bb:01', true)] },
    );
    expect(outcome.ports.create).toStrictEqual([
      { address: '52:54:00:aa:bb:02', pxe_enabled: false, extra: { 'client-id': 'ff:01' } },
    ]);
  });

  it('keep_ports=all (default) deletes nothing and fixes pxe_enabled', () => {
    const ports = [port('gone', '52:54:00:ff:ff:ff', true), port('p2', '52:54:00:aa:bb:02', true)];
    const outcome = applyInspection(NODE, checked(), { ports });
    expect(outcome.ports.delete).toStrictEqual([]);
    expect(outcome.ports.update).toStrictEqual([
      { uuid: 'gone', address: '52:54:00:ff:ff:ff', pxe_enabled: false },
      { uuid: 'p2', address: '52:54:00:aa:bb:02', pxe_enabled: false },
    ]);
    const untouched = applyInspection(NODE, checked(), { ports, updatePxeEnabled: false });
    expect(untouched.ports.update).toStrictEqual([]);
  });

  it('keep_ports=present keeps the ports of any interface in the inventory', () => {
    const ports = [port('gone', '52:54:00:ff:ff:ff', false), port('p2', '52:54:00:aa:bb:02', false)];
    const outcome = applyInspection(NODE, checked(), { ports, keepPorts: 'present' });
    expect(outcome.ports.delete.map((p) => p.uuid)).toStrictEqual(['gone']);
  });

  it('keep_ports=added keeps only the ports add_ports selects', () => {
    const ports = [port('gone', '52:54:00:ff:ff:ff', false), port('p2', '52:54:00:aa:bb:02', false)];
    const outcome = applyInspection(NODE, checked(), { ports, keepPorts: 'added' });
    expect(outcome.ports.delete.map((p) => p.uuid)).toStrictEqual(['gone', 'p2']);
    expect(outcome.ports.create.map((p) => p.address)).toStrictEqual(['52:54:00:aa:bb:01']);
  });

  it('fails without a usable interface, as Ironic does', () => {
    expect(
      errorOf(() => applyInspection(NODE, checked({ interfaces: [{ name: 'eno1', mac_address: null }] })))
        .message,
    ).toBe(`Inventory for node ${NODE.uuid} is invalid: no valid network interfaces`);
    expect(
      errorOf(() =>
        applyInspection(NODE, checked({ interfaces: [{ name: 'eno1', mac_address: '52:54:00:aa:bb:09' }] }), {
          addPorts: 'active',
        }),
      ).message,
    ).toBe(
      `Inventory for node ${NODE.uuid} is invalid: no network interfaces match the configuration (add_ports set to "active")`,
    );
  });
});
