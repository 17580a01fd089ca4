/**
 * The driver manifest, the NIC checks (nic-driver, nic-firmware), the operator's path and lockdown, table-style.
 * Host facts and the manifest: ts/test/fixtures/drivers/README.md says where each comes from.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { KernelSignature } from '../../drivers/kernel-signature.js';
import { globMatch, modulesFor, parseManifest, renderManifest, type DriverManifest } from '../../drivers/manifest.js';
import type { NetworkPlan, PlannedInterface, PlannedRoute } from '../../network/plan.js';
import { judgeLockdown, lockdownLevel, trustedKeyNames } from '../../preflight/lockdown.js';
import { parsePreflight } from '../../boundary/preflight.js';
import { CHECKS } from '../../preflight/checks.js';
import { deviceId, firmwareCandidates, interfacesThatMatter, judgeNics, type HostFirmware, type NicFact } from '../../preflight/nics.js';
import { inPrefix, judgeOperatorPath, parseRouteGet, parseSshConnection } from '../../preflight/operator-path.js';
import { parseScriptOutput } from '../../sections.js';
import { fixture } from './network-fixtures.js';

const DEBIAN = readFileSync(fileURLToPath(new URL('../../../ts/test/fixtures/drivers/debian-6.1.0-57-amd64.manifest', import.meta.url)), 'utf8');
const debian = (): DriverManifest => parseManifest(DEBIAN);
/** The manifest without one module: an image whose kernel lacks that driver. */
function without(m: DriverManifest, module: string): DriverManifest {
  m.modules.delete(module);
  m.aliases = m.aliases.filter((a) => a.module !== module);
  m.wants.delete(module);
  return m;
}

describe('globMatch: fnmatch as modalias matching uses it', () => {
  const cases: [string, string, boolean][] = [
    ['pci:v00008086d0000159Bsv*sd*bc*sc*i*', 'pci:v00008086d0000159Bsv00008086sd00000003bc02sc00i00', true],
    ['pci:v00008086d0000159Bsv*sd*bc*sc*i*', 'pci:v00008086d0000159Csv00008086sd00000003bc02sc00i00', false],
    ['virtio:d00000001v*', 'virtio:d00000001v00001AF4', true],
    ['usb:v0B95p1790d*dc*dsc*dp*icFFiscFFip00in*', 'usb:v0B95p1790d0100dcFFdscFFdp00icFFiscFFip00in00', true],
    ['usb:v*p*d*dc*dsc*dp*ic02isc06ip00in*', 'usb:v0B95p1790d0100dcFFdscFFdp00icFFiscFFip00in00', false],
    ['a?c', 'abc', true],
    ['a?c', 'ac', false],
    ['d[0-9]x', 'd7x', true],
    ['d[!0-9]x', 'd7x', false],
    ['d[^a]x', 'dbx', true],
    ['d[]]x', 'd]x', true],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
    ['[unclosed', '[unclosed', true],
    ['*', '', true],
    ['**a', 'bba', true],
  ];
  for (const [pattern, text, expected] of cases)
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${text}`, () => assert.equal(globMatch(pattern, text), expected));
});

describe('drivers.manifest', () => {
  it('the Debian kernel fixture parses: modules, aliases, declared firmware, built-ins', () => {
    const m = debian();
    assert.equal(m.kernel, '6.1.0-57-amd64');
    assert.deepEqual(m.modules.get('ice'), { name: 'ice', place: 'loadable', path: 'kernel/drivers/net/ethernet/intel/ice/ice.ko' });
    assert.deepEqual(m.wants.get('ice'), ['intel/ice/ddp/ice.pkg']);
    assert.equal(m.modules.get('unix')?.place, 'builtin');
    assert.deepEqual(modulesFor(m, 'pci:v00008086d0000159Bsv00008086sd00000003bc02sc00i00'), ['ice']);
  });
  it('renders and parses back to the same records', () => {
    const m = debian();
    m.firmware.add('bnx2x/bnx2x-e2-7.13.21.0.fw');
    assert.equal(renderManifest(parseManifest(renderManifest(m))), renderManifest(m));
  });
  const bad: [string, string, RegExp][] = [
    ['no kernel record', 'module a loadable kernel/a.ko\n', /no kernel record/],
    ['two kernels', 'kernel 1\nkernel 2\n', /line 2 .*a second kernel record/],
    ['bad place', 'kernel 1\nmodule a elsewhere x.ko\n', /line 2 .*neither loadable nor builtin/],
    ['short alias', 'kernel 1\nalias pci:*\n', /line 2 .*2 field\(s\), this one 1/],
  ];
  for (const [name, text, message] of bad) it(`rejects: ${name}`, () => assert.throws(() => parseManifest(text), message));
  it('skips unknown record types and comments', () => assert.equal(parseManifest('# c\nkernel 1\nfuture x y z\n').kernel, '1'));
  it('strips .zst/.xz from shipped firmware, as the loader looks them up', () =>
    assert.ok(parseManifest('kernel 1\nfirmware rtl_nic/rtl8168h-2.fw.zst\n').firmware.has('rtl_nic/rtl8168h-2.fw')));
  it('sends preflight the declared firmware of network drivers only', () => {
    const c = firmwareCandidates(debian());
    assert.ok(c.includes('ice:intel/ice/ddp/ice.pkg') && c.includes('bnx2x:bnx2x/bnx2x-e2-7.13.21.0.fw') && c.includes('r8169:rtl_nic/rtl8168h-2.fw'));
    assert.ok(
      c.every((x) => !x.startsWith('xhci_pci:')),
      'not the USB host driver',
    );
    assert.deepEqual(firmwareCandidates(undefined), []);
  });
});

function iface(name: string, extra: Partial<PlannedInterface> = {}): PlannedInterface {
  return {
    id: `if_${name}`,
    name,
    kind: 'nic',
    mac: '52:54:00:00:00:01',
    optional: false,
    mtu: 1500,
    up: true,
    linkOptions: [],
    addresses: [],
    dhcp4: false,
    acceptRa: false,
    ...extra,
  };
}
function addr(cidr: string, extra: Partial<PlannedInterface['addresses'][number]> = {}): PlannedInterface['addresses'][number] {
  return { family: cidr.includes(':') ? 'inet6' : 'inet', cidr, dynamic: false, noprefixroute: false, ...extra };
}
function route(dst: string, dev: string, gateway?: string, extra: Partial<PlannedRoute> = {}): PlannedRoute {
  const family = (gateway ?? dst).includes(':') ? 'inet6' : 'inet';
  return {
    family,
    table: 'main',
    type: 'unicast',
    dst,
    dev,
    gateway: gateway ? { family, host: gateway } : undefined,
    onlink: false,
    metrics: [],
    dynamic: false,
    ...extra,
  };
}
function plan(interfaces: PlannedInterface[], routes: PlannedRoute[] = [], skipped: NetworkPlan['skipped'] = []): NetworkPlan {
  return { interfaces, routes, rules: [], skipped, notes: [] };
}
const onePlan = plan([iface('eth0', { addresses: [addr('192.0.2.10/24')] }), iface('eth1')], [route('default', 'eth0', '192.0.2.1')]);

function nic(name: string, modalias: string, driver: string, opts: Partial<NicFact> & { place?: 'loadable' | 'builtin'; module?: string } = {}): NicFact {
  const { place = 'loadable', module = driver, ...rest } = opts;
  return { name, address: '52:54:00:00:00:01', modalias, bound: { driver, module, place }, parents: [], ...rest };
}

// Device records (fixtures/drivers/README.md): virtio and vmxnet3 recorded on the QEMU test server.
const VIRTIO = 'virtio:d00000001v00001AF4';
const VIRTIO_PCI = 'pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00';
const VMXNET3 = 'pci:v000015ADd000007B0sv000015ADsd000007B0bc02sc00i00';
const E1000E = 'pci:v00008086d000015B7sv000017AAsd0000225Abc02sc00i00';
const IXGBE = 'pci:v00008086d000010FBsv00008086sd0000000Cbc02sc00i00';
const ICE = 'pci:v00008086d0000159Bsv00008086sd00000003bc02sc00i00';
const MLX5 = 'pci:v000015B3d00001017sv000015B3sd00000020bc02sc00i00';
const BNX2X = 'pci:v000014E4d0000168Esv0000103Csd0000339Dbc02sc00i00';
const R8169 = 'pci:v000010ECd00008168sv00001462sd00007C56bc02sc00i00';
const TG3 = 'pci:v000014E4d0000165Fsv00001028sd00001F5Bbc02sc00i00';
const AX88179 = 'usb:v0B95p1790d0100dcFFdscFFdp00icFFiscFFip00in00';
const XHCI = 'pci:v00008086d0000A36Dsv00001028sd00000869bc0Csc03i30';
const fw = (module: string, file: string): HostFirmware => ({ module, file, path: `/lib/firmware/${file}` });

describe('judgeNics: recorded NICs against the Debian kernel manifest', () => {
  type Case = {
    name: string;
    nics: NicFact[];
    firmware?: HostFirmware[];
    manifest?: (m: DriverManifest) => DriverManifest;
    plan?: NetworkPlan;
    refusal?: RegExp;
    warning?: RegExp;
  };
  const cases: Case[] = [
    {
      name: 'virtio behind virtio_pci: driven',
      nics: [nic('eth0', VIRTIO, 'virtio_net', { parents: [{ modalias: VIRTIO_PCI, driver: 'virtio-pci', module: 'virtio_pci', place: 'loadable' }] })],
    },
    {
      name: 'virtio, image without virtio_pci: the bus is named',
      nics: [nic('eth0', VIRTIO, 'virtio_net', { parents: [{ modalias: VIRTIO_PCI, driver: 'virtio-pci', module: 'virtio_pci', place: 'loadable' }] })],
      manifest: (m) => without(m, 'virtio_pci'),
      refusal:
        /^NIC eth0 \(virtio:d00000001v00001AF4\) hangs off virtio-pci \(1af4:1000\), which the image's kernel 6\.1\.0-57-amd64 has no driver for; it carries 192\.0\.2\.10\/24$/,
    },
    {
      name: 'vmxnet3, image without it',
      nics: [nic('eth0', VMXNET3, 'vmxnet3')],
      manifest: (m) => without(m, 'vmxnet3'),
      refusal:
        /^NIC eth0 \(15ad:07b0, MAC 52:54:00:00:00:01, vmxnet3, a loadable module on the host\) has no driver in the image's kernel 6\.1\.0-57-amd64: no modalias pattern matches pci:v000015ADd000007B0/,
    },
    { name: 'e1000e: driven', nics: [nic('eth0', E1000E, 'e1000e')] },
    { name: 'ixgbe: driven, no firmware', nics: [nic('eth0', IXGBE, 'ixgbe')] },
    {
      name: 'ice with its DDP package on the host, image without it',
      nics: [nic('eth0', ICE, 'ice')],
      firmware: [fw('ice', 'intel/ice/ddp/ice.pkg')],
      refusal:
        /^NIC eth0 \(8086:159b, ice, a loadable module on the host\) loads firmware the image lacks: intel\/ice\/ddp\/ice\.pkg \(the host has \/lib\/firmware\/intel\/ice\/ddp\/ice\.pkg\)/,
    },
    {
      name: 'ice with its DDP package on both',
      nics: [nic('eth0', ICE, 'ice')],
      firmware: [fw('ice', 'intel/ice/ddp/ice.pkg')],
      manifest: (m) => (m.firmware.add('intel/ice/ddp/ice.pkg'), m),
    },
    { name: 'ice without the DDP package on the host (safe mode there too)', nics: [nic('eth0', ICE, 'ice')] },
    { name: 'mlx5: driven, no firmware files', nics: [nic('eth0', MLX5, 'mlx5_core')] },
    {
      name: 'bnx2x with firmware, image has it',
      nics: [nic('eth0', BNX2X, 'bnx2x')],
      firmware: [fw('bnx2x', 'bnx2x/bnx2x-e2-7.13.21.0.fw')],
      manifest: (m) => (m.firmware.add('bnx2x/bnx2x-e2-7.13.21.0.fw'), m),
    },
    {
      name: 'bnx2x with firmware, image lacks it',
      nics: [nic('eth0', BNX2X, 'bnx2x')],
      firmware: [fw('bnx2x', 'bnx2x/bnx2x-e2-7.13.21.0.fw')],
      refusal: /lacks: bnx2x\/bnx2x-e2-7\.13\.21\.0\.fw/,
    },
    {
      name: 'r8169 with firmware, image lacks it',
      nics: [nic('eth0', R8169, 'r8169', { bound: { driver: 'r8169', module: 'r8169', place: 'loadable' } })],
      firmware: [fw('r8169', 'rtl_nic/rtl8168h-2.fw')],
      refusal: /^NIC eth0 \(10ec:8168, r8169, a loadable module on the host\) loads firmware the image lacks: rtl_nic\/rtl8168h-2\.fw/,
    },
    {
      name: 'r8169 on a NIC without a role: warning only',
      nics: [nic('eth1', R8169, 'r8169')],
      firmware: [fw('r8169', 'rtl_nic/rtl8168h-2.fw')],
      warning: /lacks: rtl_nic\/rtl8168h-2\.fw .*\(eth1 has no role in the restored network, so this is no refusal\)/,
    },
    { name: 'a driver built into the host kernel, loadable in the image', nics: [nic('eth0', E1000E, 'e1000e', { place: 'builtin' })] },
    {
      name: 'a driver built into the image kernel',
      nics: [nic('eth0', E1000E, 'e1000e')],
      manifest: (m) => (m.modules.set('e1000e', { name: 'e1000e', place: 'builtin', path: 'kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko' }), m),
    },
    {
      name: 'built in on the host and missing from the image',
      nics: [nic('eth0', E1000E, 'e1000e', { place: 'builtin' })],
      manifest: (m) => without(m, 'e1000e'),
      refusal: /\(8086:15b7, MAC .*, e1000e, built in on the host\) has no driver/,
    },
    {
      name: 'a USB NIC behind xHCI: driven',
      nics: [nic('eth0', AX88179, 'ax88179_178a', { parents: [{ modalias: XHCI, driver: 'xhci_hcd', module: 'xhci_pci', place: 'loadable' }] })],
    },
    {
      name: 'a USB NIC, image without the xHCI driver',
      nics: [nic('eth0', AX88179, 'ax88179_178a', { parents: [{ modalias: XHCI, driver: 'xhci_hcd', module: 'xhci_pci', place: 'loadable' }] })],
      manifest: (m) => without(m, 'xhci_pci'),
      refusal: /^NIC eth0 \(0b95:1790\) hangs off xhci_hcd \(8086:a36d\)/,
    },
    {
      name: 'a device ID newer than the image driver knows',
      nics: [nic('eth0', 'pci:v00008086d0000FFFFsv00008086sd00000000bc02sc00i00', 'e1000e')],
      refusal: /\(the image's e1000e does not list this device: a newer device ID than its driver knows\)/,
    },
    {
      name: 'a bond over two different drivers (tg3 + ixgbe), image without tg3',
      nics: [nic('eno1', TG3, 'tg3', { permAddress: '3c:ec:ef:10:20:30' }), nic('eno2', IXGBE, 'ixgbe')],
      manifest: (m) => without(m, 'tg3'),
      plan: fixture('bond-vlan-datacentre').plan,
      refusal: /^NIC eno1 \(14e4:165f, MAC 3c:ec:ef:10:20:30, tg3, .*has no driver.*; it is a member of bond0$/,
    },
    {
      name: 'a bond over two different drivers, both driven',
      nics: [nic('eno1', TG3, 'tg3'), nic('eno2', IXGBE, 'ixgbe')],
      plan: fixture('bond-vlan-datacentre').plan,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const m = c.manifest ? c.manifest(debian()) : debian();
      const verdict = judgeNics(c.nics, c.firmware ?? [], m, c.plan ?? onePlan);
      const refusals = [...verdict.driver.refusals, ...verdict.firmware.refusals];
      const warnings = [...verdict.driver.warnings, ...verdict.firmware.warnings];
      if (c.refusal) {
        assert.equal(refusals.length, 1, JSON.stringify(refusals));
        assert.match(refusals[0].message, c.refusal);
        // Each under its own check: a missing driver is nic-driver's, missing firmware nic-firmware's.
        assert.equal(verdict.firmware.refusals.length, /firmware the image lacks/.test(refusals[0].message) ? 1 : 0);
        assert.match(refusals[0].fix, /emergency\.drivers\.(modulePackages|firmware) = \[/);
      } else assert.deepEqual(refusals, []);
      if (c.warning)
        assert.ok(
          warnings.some((w) => c.warning!.test(w.message)),
          JSON.stringify(warnings),
        );
      const v = verdict;
      assert.equal(v.table.length, c.nics.length, 'one table line per NIC');
    });
  }
  it('the fix for missing firmware is the exact Nix line', () => {
    const v = judgeNics([nic('eth0', ICE, 'ice')], [fw('ice', 'intel/ice/ddp/ice.pkg')], debian(), onePlan).firmware;
    assert.match(v.refusals[0].fix, /emergency\.drivers\.firmware = \[ "intel\/ice\/ddp\/ice\.pkg" \];/);
  });
  it('the NIC table says what a driverless NIC is for, and leaves the verdict to the check (it may be ignored)', () => {
    const needed = judgeNics([nic('eth0', VMXNET3, 'vmxnet3')], [], without(debian(), 'vmxnet3'), onePlan).table;
    assert.match(needed[0], /^eth0 {2}15ad:07b0 {2}vmxnet3, a loadable module on the host {2}image: none {2}\(the restored network needs it\)$/);
    const spare = judgeNics([nic('eth0', VIRTIO, 'virtio_net'), nic('eth9', VMXNET3, 'vmxnet3')], [], without(debian(), 'vmxnet3'), onePlan).table;
    assert.match(spare[1], /^eth9 .* image: none {2}\(no role in the restored network\)$/);
    assert.doesNotMatch([...needed, ...spare].join('\n'), /REFUSED/);
  });
  it('an image without a manifest: one warning, no refusal', () => {
    const v = judgeNics([nic('eth0', VMXNET3, 'vmxnet3')], [], undefined, onePlan).driver;
    assert.deepEqual(v.refusals, []);
    assert.match(v.warnings[0].message, /no drivers\.manifest/);
  });
});

describe('interfacesThatMatter', () => {
  it('bond members and the VLAN parent matter through the VLAN and bond that carry addresses; docker0 too (lo is not planned)', () => {
    assert.deepEqual([...interfacesThatMatter(fixture('bond-vlan-datacentre').plan)].sort(), ['bond0', 'bond0.100', 'docker0', 'eno1', 'eno2']);
  });
  it('a NIC with neither address nor route nor upper interface does not', () => assert.deepEqual([...interfacesThatMatter(onePlan)], ['eth0']));
  it('a bridge port matters when the bridge does', () => {
    const p = plan([iface('br0', { kind: 'bridge', addresses: [addr('10.0.0.1/24')] }), iface('enp5s0', { master: 'br0' })]);
    assert.ok(interfacesThatMatter(p).has('enp5s0'));
  });
});

describe("preflight.sh's NIC sections, through the boundary schema", () => {
  const FACTS =
    'preflight_format=1\narch=x86_64\nkernel=6.1.0\nuid=0\nhostname=h\nboot_id=b\nkexec_load_disabled=0\nlockdown=unmounted\nlockdown_cmdline=\nlockdown_log=\nsecure_boot=no-efi\ncontainer=none\nvirt=none\nmem_total_kb=1\nmem_available_kb=1\nstage_parent=/run\nstage_mode=mkdir\nhas_tmpfs=1\nhas_mount=1\nhas_umount=1\nhas_dd=1\nhead_gnu=0\nssh_connection=10.0.2.2 1 10.0.2.15 22';
  it('reads NICs (recorded on the QEMU test server), parents and host firmware', () => {
    const out = parseScriptOutput(
      [
        FACTS,
        '@@emergency-section nic ens3',
        'address=52:54:00:12:34:01',
        'perm_address=',
        `modalias=${VIRTIO}`,
        'driver=virtio_net virtio_net loadable',
        `parent=${VIRTIO_PCI} virtio-pci virtio_pci loadable`,
        '@@emergency-section nic enp0s4',
        'address=52:54:00:12:34:02',
        'perm_address=',
        `modalias=${VMXNET3}`,
        'driver=vmxnet3 vmxnet3 loadable',
        '@@emergency-section host-firmware',
        'r8169 rtl_nic/rtl8168h-2.fw /lib/firmware/rtl_nic/rtl8168h-2.fw.zst',
        '@@emergency-section route-back 10.0.2.2',
        '10.0.2.2 dev ens3 src 10.0.2.15 uid 0 ',
        '    cache ',
        '@@emergency-section trusted-keys',
        'Build time autogenerated kernel key: 8d02af3b9f75dd230deaf4e6abfbf08bd6558ab1: X509.rsa d6558ab1 []',
        '@@emergency-section preflight-end',
      ].join('\n'),
    );
    const report = parsePreflight(out);
    const { nics, hostFirmware: firmware } = report;
    assert.equal(parseRouteGet(report.routeBack)?.dev, 'ens3');
    assert.deepEqual(trustedKeyNames(report.trustedKeys.join('\n')), ['Build time autogenerated kernel key']);
    assert.deepEqual(nics[0], {
      name: 'ens3',
      address: '52:54:00:12:34:01',
      modalias: VIRTIO,
      bound: { driver: 'virtio_net', module: 'virtio_net', place: 'loadable' },
      parents: [{ modalias: VIRTIO_PCI, driver: 'virtio-pci', module: 'virtio_pci', place: 'loadable' }],
    });
    assert.equal(nics[1].bound?.driver, 'vmxnet3');
    assert.deepEqual(firmware, [{ module: 'r8169', file: 'rtl_nic/rtl8168h-2.fw', path: '/lib/firmware/rtl_nic/rtl8168h-2.fw.zst' }]);
  });
  it('a malformed driver line is a protocol error naming the NIC', () => {
    const out = parseScriptOutput(
      [FACTS, '@@emergency-section nic eth0', 'address=a', 'perm_address=', 'modalias=m', 'driver=e1000e', '@@emergency-section preflight-end'].join('\n'),
    );
    assert.throws(() => parsePreflight(out), /field of NIC eth0 "driver": expected DRIVER MODULE loadable\|builtin/);
  });
  it('vendor:device from PCI and USB modaliases', () => {
    assert.equal(deviceId(ICE), '8086:159b');
    assert.equal(deviceId(AX88179), '0b95:1790');
    assert.equal(deviceId(VIRTIO), VIRTIO);
  });
});

describe('operator path', () => {
  const conn = parseSshConnection('10.0.2.2 46116 10.0.2.15 22');
  const qemuPlan = plan([iface('ens3', { addresses: [addr('10.0.2.15/24')] })], [route('default', 'ens3', '10.0.2.2')]);
  type Case = { name: string; connection?: string; routeGet?: string; plan: NetworkPlan; owner?: string; refusal?: RegExp };
  const cases: Case[] = [
    { name: 'the QEMU test server: on-link operator (recorded ip route get)', routeGet: '10.0.2.2 dev ens3 src 10.0.2.15 uid 0 \n    cache ', plan: qemuPlan },
    {
      name: 'operator behind the default gateway',
      connection: '198.51.100.7 50000 10.0.2.15 22',
      routeGet: '198.51.100.7 via 10.0.2.2 dev ens3 src 10.0.2.15 uid 0',
      plan: qemuPlan,
    },
    {
      name: 'sshd on :: reports IPv4-mapped addresses',
      connection: '::ffff:198.51.100.7 50000 ::ffff:10.0.2.15 22',
      routeGet: '198.51.100.7 via 10.0.2.2 dev ens3 src 10.0.2.15',
      plan: qemuPlan,
    },
    {
      name: 'the address sits on a macvlan the planner skips',
      routeGet: '10.0.2.2 dev mv0 src 10.0.2.15',
      plan: plan([iface('ens3')], [], [{ what: 'interface mv0', reason: 'macvlan interfaces cannot be re-created from a capture' }]),
      owner: 'mv0',
      refusal:
        /^your ssh connection arrived on 10\.0\.2\.15 \(mv0\), and the rescue system would not have that address \(interface mv0: macvlan interfaces cannot be re-created from a capture\)$/,
    },
    {
      name: 'a different gateway in the plan',
      connection: '198.51.100.7 50000 10.0.2.15 22',
      routeGet: '198.51.100.7 via 10.0.2.254 dev ens3 src 10.0.2.15',
      plan: qemuPlan,
      refusal: /reaches you by 198\.51\.100\.7 via 10\.0\.2\.254 dev ens3, and the plan has no route to 198\.51\.100\.7 via 10\.0\.2\.254 on ens3/,
    },
    {
      name: 'policy routing: the route back is in table 100 and the plan has it',
      connection: '198.51.100.7 50000 10.0.2.15 22',
      routeGet: '198.51.100.7 from 10.0.2.15 via 10.0.2.1 dev ens3 table 100 uid 0',
      plan: plan([iface('ens3', { addresses: [addr('10.0.2.15/24')] })], [route('default', 'ens3', '10.0.2.1', { table: '100' })]),
    },
    {
      name: 'policy routing: table 100 not in the plan',
      connection: '198.51.100.7 50000 10.0.2.15 22',
      routeGet: '198.51.100.7 from 10.0.2.15 via 10.0.2.1 dev ens3 table 100 uid 0',
      plan: plan([iface('ens3', { addresses: [addr('10.0.2.15/24')] })], [route('default', 'ens3', '10.0.2.1')]),
      refusal: /table 100, and the plan has no route/,
    },
    {
      name: 'a gateway outside the prefix, onlink kept',
      connection: '198.51.100.7 50000 203.0.113.10 22',
      routeGet: '198.51.100.7 via 172.31.1.1 dev eth0 src 203.0.113.10',
      plan: plan([iface('eth0', { addresses: [addr('203.0.113.10/32')] })], [route('default', 'eth0', '172.31.1.1', { onlink: true })]),
    },
    {
      name: 'a gateway outside the prefix, onlink lost',
      connection: '198.51.100.7 50000 203.0.113.10 22',
      routeGet: '198.51.100.7 via 172.31.1.1 dev eth0 src 203.0.113.10',
      plan: plan([iface('eth0', { addresses: [addr('203.0.113.10/32')] })], [route('default', 'eth0', '172.31.1.1')]),
      refusal: /outside eth0's restored prefixes and is not onlink/,
    },
    {
      name: 'on-link operator, but the address is noprefixroute',
      routeGet: '10.0.2.2 dev ens3 src 10.0.2.15',
      plan: plan([iface('ens3', { addresses: [addr('10.0.2.15/24', { noprefixroute: true })] })]),
      refusal: /directly on ens3 .*neither an address on ens3 whose prefix holds 10\.0\.2\.2 nor an on-link route/,
    },
    {
      name: 'IPv6 operator via a link-local gateway',
      connection: '2001:db8::7 50000 2001:db8:1::10 22',
      routeGet: '2001:db8::7 from :: via fe80::1 dev eth0 proto static src 2001:db8:1::10 metric 1024 pref medium',
      plan: plan([iface('eth0', { addresses: [addr('2001:db8:1::10/64')] })], [route('default', 'eth0', 'fe80::1')]),
    },
    {
      name: 'the route back leaves on an interface that is not restored',
      routeGet: '10.0.2.2 dev wg0 src 10.0.2.15',
      plan: plan(
        [iface('ens3', { addresses: [addr('10.0.2.15/24')] })],
        [],
        [{ what: 'interface wg0', reason: 'wireguard interfaces cannot be re-created from a capture' }],
      ),
      refusal: /would not have wg0 \(interface wg0: wireguard interfaces cannot be re-created from a capture\)/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = judgeOperatorPath(c.connection ? parseSshConnection(c.connection) : conn, parseRouteGet(c.routeGet), c.plan, c.owner);
      if (c.refusal) {
        assert.ok(
          v.refusals.some((r) => c.refusal!.test(r.message)),
          JSON.stringify(v.refusals),
        );
      } else assert.deepEqual(v.refusals, []);
    });
  }
  it("the macvlan refusal gives the planner's reason", () => {
    const v = judgeOperatorPath(
      conn,
      parseRouteGet('10.0.2.2 dev mv0 src 10.0.2.15'),
      plan([iface('ens3')], [], [{ what: 'address 10.0.2.15/24 on mv0', reason: 'macvlan interfaces cannot be re-created from a capture' }]),
    );
    assert.match(v.refusals[0].message, /\(address 10\.0\.2\.15\/24 on mv0: macvlan interfaces cannot be re-created from a capture\)/);
  });
  it('no SSH_CONNECTION: a warning, not a refusal', () => {
    const v = judgeOperatorPath(undefined, undefined, qemuPlan);
    assert.deepEqual(v.refusals, []);
    assert.match(v.warnings[0].message, /did not report SSH_CONNECTION/);
  });
  const prefixes: [string, string, boolean][] = [
    ['10.0.2.2', '10.0.2.0/24', true],
    ['10.0.3.2', '10.0.2.0/24', false],
    ['10.0.2.2', 'default', true],
    ['2001:db8::7', '2001:db8::/32', true],
    ['2001:db9::7', '2001:db8::/32', false],
    ['10.0.2.2', '2001:db8::/32', false],
    ['10.0.2.2', '10.0.2.2', true],
  ];
  for (const [a, p, expected] of prefixes) it(`${a} ${expected ? 'is' : 'is not'} in ${p}`, () => assert.equal(inPrefix(a, p), expected));
});

describe('lockdown', () => {
  const debianSigned = { signed: true, names: ['Debian Secure Boot Signer 2022 - linux', 'Debian Secure Boot CA'] };
  const unsigned: KernelSignature = { signed: false, names: [] };
  // /proc/keys of the QEMU test server (Debian's cloud kernel, no UEFI), as preflight.sh's trusted-keys section.
  const testServerKeys = trustedKeyNames('Build time autogenerated kernel key: 8d02af3b9f75dd230deaf4e6abfbf08bd6558ab1: X509.rsa d6558ab1 []\n');
  type Case = { name: string; facts: Record<string, string>; signature: KernelSignature; keys?: string[]; refusal?: RegExp; warning?: RegExp };
  const cases: Case[] = [
    { name: 'securityfs says none', facts: { lockdown: 'none' }, signature: unsigned },
    {
      name: 'securityfs says integrity, unsigned kernel',
      facts: { lockdown: 'integrity' },
      signature: unsigned,
      refusal: /locked down \(integrity, from \/sys\/kernel\/security\/lockdown\): it loads only signed kernels, and the image's kernel is not signed/,
    },
    {
      name: 'no securityfs, lockdown=integrity on the command line, Debian-signed kernel, host trusts only its build key (the QEMU lockdown server)',
      facts: { lockdown: 'unmounted', lockdown_cmdline: 'integrity', lockdown_log: 'command line' },
      signature: debianSigned,
      keys: testServerKeys,
      refusal:
        /from lockdown=integrity on the kernel command line\): it loads only kernels signed by a key it trusts, and the image's kernel is signed by Debian Secure Boot Signer 2022 - linux \/ Debian Secure Boot CA while the host trusts Build time autogenerated kernel key/,
    },
    {
      name: 'no securityfs, the log line only (Secure Boot lockdown), unsigned',
      facts: { lockdown: 'unmounted', lockdown_cmdline: '', lockdown_log: 'EFI Secure Boot mode', secure_boot: '1' },
      signature: unsigned,
      refusal: /from the kernel log \("Kernel is locked down from EFI Secure Boot mode"\); Secure Boot is on/,
    },
    {
      name: 'a host that trusts the Debian CA: a warning only',
      facts: { lockdown: 'integrity' },
      signature: debianSigned,
      keys: ['Debian Secure Boot CA'],
      warning: /host trusts a key named Debian Secure Boot CA/,
    },
    {
      name: 'confidentiality from securityfs wins over lockdown=none on the command line',
      facts: { lockdown: 'confidentiality', lockdown_cmdline: 'none' },
      signature: unsigned,
      refusal: /confidentiality/,
    },
    {
      name: 'lockdown=none on the command line, no other source',
      facts: { lockdown: 'unmounted', lockdown_cmdline: 'none', lockdown_log: '' },
      signature: unsigned,
    },
    {
      name: 'nothing known, Secure Boot on: a warning',
      facts: { lockdown: 'unmounted', lockdown_cmdline: '', lockdown_log: 'unreadable', secure_boot: '1' },
      signature: unsigned,
      warning: /lockdown level is unknown/,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = judgeLockdown({ lockdown: 'unmounted', lockdown_cmdline: '', lockdown_log: '', secure_boot: 'no-efi', ...c.facts }, c.signature, c.keys ?? []);
      if (c.refusal) {
        assert.equal(v.refusals.length, 1, JSON.stringify(v));
        assert.match(v.refusals[0].message, c.refusal);
      } else assert.deepEqual(v.refusals, []);
      if (c.warning) assert.match(v.warnings[0]?.message ?? '', c.warning);
    });
  }
  it('the new checks are named, ignorable and in the list', () => {
    for (const name of ['nic-driver', 'nic-firmware', 'operator-path', 'lockdown']) assert.equal(CHECKS.find((c) => c.name === name)?.ignorable, true, name);
    assert.deepEqual(
      CHECKS.filter((c) => c.needsPlan).map((c) => c.name),
      ['nic-driver', 'nic-firmware', 'operator-path'],
    );
  });
  it('names its source', () =>
    assert.equal(
      lockdownLevel({ lockdown: 'unmounted', lockdown_cmdline: 'integrity', lockdown_log: '' }).source,
      'lockdown=integrity on the kernel command line',
    ));
});
