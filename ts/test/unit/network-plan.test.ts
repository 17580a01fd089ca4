/** The planner on captured fixtures, one row per setup: what is restored, in which order, and what is skipped. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planNetwork } from '../../network/plan.js';
import { fixture, routeLine } from './network-fixtures.js';

interface Row {
  fixture: string;
  /** interface name → `kind mac` */
  interfaces: Record<string, string>;
  /** interface name → addresses as `cidr static|dynamic` */
  addresses: Record<string, string[]>;
  routes: string[];
  rules?: string[];
  nameservers: string[];
  search?: string[];
  /** substrings each of which must appear in one skipped item (`what: reason`) */
  skipped?: string[];
}

const ROWS: Row[] = [
  {
    fixture: 'static-ipv4',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:01' },
    addresses: { eth0: ['192.0.2.10/24 static'] },
    routes: ['default via 192.0.2.1 dev eth0'],
    nameservers: ['192.0.2.53', '2001:db8::53'],
    search: ['example.com'],
  },
  {
    fixture: 'hetzner-dedicated',
    interfaces: { lo: 'loopback ', enp0s31f6: 'nic 52:54:00:12:34:02' },
    addresses: { enp0s31f6: ['203.0.113.77/32 static', '2a01:4f8:a:b::2/64 static'] },
    routes: ['default via 203.0.113.65 dev enp0s31f6 onlink', '-6 default via fe80::1 dev enp0s31f6'],
    nameservers: ['185.12.64.1', '2a01:4ff:ff00::add:1'],
  },
  {
    fixture: 'ovh-failover',
    interfaces: { lo: 'loopback ', eno1: 'nic 52:54:00:12:34:03' },
    addresses: { eno1: ['198.51.100.20/24 static', '203.0.113.200/32 static', '2001:41d0:1:2::1/128 static'] },
    // The IPv6 gateway is outside the /128: its on-link host route must come before the default via it.
    routes: ['-6 2001:41d0:1:2ff:ff:ff:ff:ff dev eno1', 'default via 198.51.100.254 dev eno1', '-6 default via 2001:41d0:1:2ff:ff:ff:ff:ff dev eno1'],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'aws-dhcp',
    interfaces: { lo: 'loopback ', ens5: 'nic 52:54:00:12:34:04' },
    addresses: { ens5: ['172.31.5.9/20 dynamic'] },
    routes: ['default via 172.31.0.1 dev ens5', '172.31.0.2 via 172.31.0.1 dev ens5'],
    // resolv.conf says 127.0.0.53: the stub's upstream is used, not the stub.
    nameservers: ['172.31.0.2'],
    search: ['ec2.internal'],
  },
  {
    fixture: 'ipv6-only',
    interfaces: { lo: 'loopback ', ens3: 'nic 52:54:00:12:34:05' },
    addresses: { ens3: ['2001:db8:10::5/64 static'] },
    routes: ['default via inet6 fe80::1 dev ens3', '-6 default via fe80::1 dev ens3'],
    nameservers: ['2001:4860:4860::8888'],
  },
  {
    fixture: 'policy-routing',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:06', eth1: 'nic 52:54:00:12:34:07' },
    addresses: { eth0: ['10.1.0.2/24 static'], eth1: ['10.2.0.2/24 static', '2001:db8:2::2/64 static'] },
    routes: [
      '10.2.0.0/24 dev eth1 table 200',
      'default via 10.2.0.1 dev eth1 table 200',
      'default via 10.1.0.1 dev eth0',
      '-6 default via 2001:db8:2::1 dev eth1 table 200',
    ],
    rules: [
      'priority 1000 from 10.2.0.2 table 200',
      'priority 1001 fwmark 0x2/0xff table 200',
      'priority 1002 iif eth1 table 200',
      'priority 1003 uidrange 2000-2999 unreachable',
      '-6 priority 1000 from 2001:db8:2::/64 table 200',
    ],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'swapped-names',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:08', eth1: 'nic 52:54:00:12:34:09' },
    addresses: { eth0: ['192.0.2.8/24 static'], eth1: ['198.51.100.9/24 static'] },
    routes: ['default via 192.0.2.1 dev eth0', '203.0.113.0/24 via 198.51.100.1 dev eth1'],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'bridge',
    interfaces: {
      lo: 'loopback ',
      enp1s0: 'nic 52:54:00:12:34:0a',
      enp2s0: 'nic 52:54:00:12:34:0b',
      br0: 'bridge 52:54:00:aa:bb:01',
    },
    addresses: { br0: ['10.20.0.5/16 static', '2001:db8:20::5/64 static'] },
    routes: ['default via 10.20.0.1 dev br0', '-6 default via 2001:db8:20::1 dev br0'],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'many-addresses',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:0c' },
    addresses: {
      eth0: [
        '10.3.0.2/24 static',
        '10.4.0.2/24 static',
        '10.9.9.1/32 peer 10.9.9.2/32 static',
        '10.3.0.3/24 static',
        '2001:db8:3::3/64 static',
        '2001:db8:3::2/64 static',
      ],
    },
    routes: ['10.4.0.0/24 dev eth0', 'default via 10.3.0.1 dev eth0'],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'route-attributes',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:0d' },
    addresses: { eth0: ['10.5.0.2/24 static'] },
    routes: [
      'blackhole 10.66.0.0/16',
      'unreachable 10.67.0.0/16',
      'prohibit 10.68.0.0/16',
      '-6 blackhole 2001:db8:dead::/48 dev lo',
      '10.51.0.0/16 via 10.5.0.254 dev eth0 table 100',
      'default via 10.5.0.1 dev eth0',
      '10.50.0.0/16 via 10.5.0.254 dev eth0',
    ],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'ipv6-ra',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:0e' },
    addresses: { eth0: ['2001:db8:14:0:5054:ff:fe12:340e/64 dynamic'] },
    routes: ['-6 default via fe80::1 dev eth0'],
    nameservers: ['192.0.2.53'],
  },
  {
    fixture: 'loopback-and-idle',
    interfaces: { lo: 'loopback ', eth0: 'nic 52:54:00:12:34:0f', eth1: 'nic 52:54:00:12:34:10' },
    addresses: { lo: ['10.255.255.1/32 static', '2001:db8:ffff::1/128 static'], eth0: ['10.6.0.2/24 static'] },
    routes: ['default via 10.6.0.1 dev eth0'],
    nameservers: ['10.6.0.53'],
    skipped: ['nameserver 127.0.0.1: a resolver on the host itself'],
  },
  {
    fixture: 'bond-vlan-datacentre',
    interfaces: {
      lo: 'loopback ',
      eno1: 'nic 3c:ec:ef:10:20:30',
      // A bond member carries the bond's MAC: it is found by its permanent one.
      eno2: 'nic 3c:ec:ef:10:20:31',
      bond0: 'bond 3c:ec:ef:10:20:30',
      'bond0.100': 'vlan 3c:ec:ef:10:20:30',
      docker0: 'bridge 02:42:8a:1b:2c:3d',
    },
    addresses: {
      bond0: ['10.0.0.5/24 static'],
      'bond0.100': ['203.0.113.10/26 static', '2001:db8:100::10/64 static'],
      docker0: ['172.17.0.1/16 static'],
    },
    routes: ['default via 203.0.113.1 dev bond0.100', '10.10.0.0/16 via 10.0.0.1 dev bond0', '-6 default via 2001:db8:100::1 dev bond0.100'],
    nameservers: [],
    skipped: [
      'interface wg0: wireguard interface without a MAC',
      'interface tun0: tun interface without a MAC',
      'route 10.201.0.0/16 dev wg0: interface wg0 is not restored',
      'route 192.168.0.0/16: multipath routes are not restored',
      "nameservers: resolv.conf points at systemd-resolved's stub",
    ],
  },
];

describe('planNetwork', () => {
  for (const row of ROWS) {
    test(row.fixture, () => {
      const { plan } = fixture(row.fixture);
      assert.deepEqual(Object.fromEntries(plan.interfaces.map((i) => [i.name, `${i.kind} ${i.mac}`])), row.interfaces, 'interfaces');
      const addresses = Object.fromEntries(
        plan.interfaces
          .filter((i) => i.addresses.length > 0)
          .map((i) => [i.name, i.addresses.map((a) => `${a.cidr}${a.peer ? ` peer ${a.peer}` : ''} ${a.dynamic ? 'dynamic' : 'static'}`)]),
      );
      assert.deepEqual(addresses, row.addresses, 'addresses');
      assert.deepEqual(plan.routes.map(routeLine), row.routes, 'routes, in order');
      const rules = plan.rules.map((r) => `${r.family === 'inet6' ? '-6 ' : ''}${r.args.map((a) => (typeof a === 'string' ? a : a.dev)).join(' ')}`);
      assert.deepEqual(rules, row.rules ?? [], 'rules');
      assert.deepEqual(plan.dns?.nameservers ?? [], row.nameservers, 'nameservers');
      if (row.search) assert.deepEqual(plan.dns?.search, row.search, 'search domains');
      const skipped = plan.skipped.map((s) => `${s.what}: ${s.reason}`);
      for (const s of row.skipped ?? [])
        assert.ok(
          skipped.some((x) => x.includes(s)),
          `skipped "${s}" in ${skipped.join(' | ')}`,
        );
      if (!row.skipped) assert.deepEqual(skipped, [], 'nothing skipped');
    });
  }

  test('interfaces come parents first: members before their bond, the bond before its VLAN', () => {
    const names = fixture('bond-vlan-datacentre').plan.interfaces.map((i) => i.name);
    assert.ok(names.indexOf('eno1') < names.indexOf('bond0') && names.indexOf('eno2') < names.indexOf('bond0'));
    assert.ok(names.indexOf('bond0') < names.indexOf('bond0.100'));
  });

  test('bond options follow the mode; VLAN keeps id and parent', () => {
    const { plan } = fixture('bond-vlan-datacentre');
    const bond = plan.interfaces.find((i) => i.name === 'bond0')!;
    assert.deepEqual(Object.fromEntries(bond.linkOptions), {
      mode: '802.3ad',
      miimon: '100',
      updelay: '0',
      downdelay: '0',
      min_links: '0',
      arp_interval: '0',
      fail_over_mac: 'none',
      lacp_rate: 'fast',
      ad_select: 'stable',
      xmit_hash_policy: 'layer3+4',
    });
    assert.deepEqual(plan.interfaces.find((i) => i.name === 'bond0.100')!.vlan, { parent: 'bond0', id: 100, protocol: '802.1Q' });
    assert.equal(plan.interfaces.find((i) => i.name === 'eno2')!.master, 'bond0');
  });

  test('an active-backup bond keeps its primary member (by old name), or says why not', () => {
    const withPrimary = (primary: string) => {
      const { capture } = fixture('bond-vlan-datacentre');
      const data = capture.links.find((l) => l.ifname === 'bond0')!.linkinfo!.info_data!;
      Object.assign(data, { mode: 'active-backup', primary });
      return planNetwork(capture);
    };
    assert.equal(withPrimary('eno2').interfaces.find((i) => i.name === 'bond0')!.primary, 'eno2');
    const stray = withPrimary('eno9');
    assert.equal(stray.interfaces.find((i) => i.name === 'bond0')!.primary, undefined);
    assert.ok(
      stray.skipped.some((s) => s.what === 'primary eno9 of bond0' && /not a restored member/.test(s.reason)),
      JSON.stringify(stray.skipped),
    );
  });

  test('real NICs are required, veths and idle down NICs are optional', () => {
    const nics = fixture('bond-vlan-datacentre').plan.interfaces.filter((i) => i.kind === 'nic');
    assert.deepEqual(
      nics.map((i) => [i.name, i.optional]),
      [
        ['eno1', false],
        ['eno2', false],
      ],
    );
    assert.equal(fixture('static-ipv4').plan.interfaces.find((i) => i.name === 'eth0')!.optional, true);
  });

  test('dynamic addresses ask for DHCP (IPv4) or accept RA (IPv6); static ones do neither', () => {
    const flags = (name: string) =>
      fixture(name)
        .plan.interfaces.filter((i) => i.kind !== 'loopback')
        .map((i) => [i.name, i.dhcp4, i.acceptRa]);
    assert.deepEqual(flags('aws-dhcp'), [['ens5', true, false]]);
    assert.deepEqual(flags('ipv6-ra'), [['eth0', false, true]]);
    assert.deepEqual(flags('hetzner-dedicated'), [['enp0s31f6', false, false]]);
  });

  test('route attributes are kept: metric, MTU, advmss, source, protocol', () => {
    const routes = fixture('route-attributes').plan.routes;
    const dflt = routes.find((r) => r.dst === 'default')!;
    assert.equal(dflt.metric, 10);
    assert.deepEqual(dflt.metrics, [
      ['mtu', '1400'],
      ['advmss', '1360'],
    ]);
    assert.equal(routes.find((r) => r.dst === '10.50.0.0/16')!.protocol, 'static');
    const aws = fixture('aws-dhcp').plan.routes;
    assert.deepEqual(
      aws.map((r) => [r.prefsrc, r.protocol, r.dynamic]),
      [
        ['172.31.5.9', 'dhcp', true],
        ['172.31.5.9', 'dhcp', true],
      ],
    );
  });

  test('a named routing table is resolved through rt_tables, an unknown name is skipped', () => {
    const { capture } = fixture('policy-routing');
    const named = {
      ...capture,
      routes4: [
        { dst: 'default', gateway: '10.2.0.1', dev: 'eth1', table: 'uplink2', flags: [] },
        { dst: 'default', gateway: '10.2.0.1', dev: 'eth1', table: 'nowhere', flags: [] },
      ],
      rules4: [{ priority: 5, src: 'all', table: 'uplink2' }],
      rtTables: { ...capture.rtTables, uplink2: 42 },
    };
    const plan = planNetwork(named);
    assert.deepEqual(plan.routes.filter((r) => r.family === 'inet').map(routeLine), ['default via 10.2.0.1 dev eth1 table 42']);
    assert.deepEqual(plan.rules[0].args, ['priority', '5', 'table', '42']);
    assert.ok(plan.skipped.some((s) => s.reason.includes('nowhere')));
  });

  test('a rule with an attribute the planner does not know is skipped, not half-restored', () => {
    const { capture } = fixture('static-ipv4');
    const plan = planNetwork({ ...capture, rules4: [{ priority: 7, src: 'all', l3mdev: 1, table: '9' }] });
    assert.deepEqual(plan.rules, []);
    assert.deepEqual(
      plan.skipped.map((s) => `${s.what}: ${s.reason}`),
      ['rule priority 7: rule attribute l3mdev is not restored'],
    );
  });

  test('a stub resolv.conf without resolved upstream file restores no nameservers and says why', () => {
    const { capture } = fixture('aws-dhcp');
    const plan = planNetwork({ ...capture, resolvedResolvConf: undefined });
    assert.equal(plan.dns, undefined);
    assert.match(plan.skipped.map((s) => s.reason).join('\n'), /systemd-resolved's stub/);
  });
});
