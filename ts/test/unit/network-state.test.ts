import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkDifferences, parseNetworkState, virtualLinkMacs, type NetworkState } from '../lib/network-state.js';
import { dataCentreScenario, defaultScenario } from '../lib/server-scenario.js';

// The checker the end-to-end tests rely on must itself notice every kind of loss.
const scenario = defaultScenario();
const restored = (): NetworkState => ({
  addrs: [
    {
      ifname: 'eth0',
      address: '52:54:00:12:34:01',
      addr_info: [
        { family: 'inet', local: '10.0.2.15', prefixlen: 24 },
        { family: 'inet6', local: 'fec0::15', prefixlen: 64 },
      ],
    },
    {
      ifname: 'eth1',
      address: '52:54:00:12:34:02',
      addr_info: [
        { family: 'inet', local: '10.0.3.15', prefixlen: 24 },
        { family: 'inet6', local: 'fec0:0:0:3::15', prefixlen: 64 },
      ],
    },
  ],
  routes4: [
    { dst: 'default', gateway: '10.0.2.2', dev: 'eth0' },
    { dst: '198.51.100.0/24', gateway: '10.0.3.2', dev: 'eth1' },
  ],
  routes6: [
    { dst: '2001:db8:100::/64', gateway: 'fec0:0:0:3::2', dev: 'eth1' },
    { dst: 'default', gateway: 'fe80::2', dev: 'eth0' },
  ],
  resolvConf: 'nameserver 10.0.2.3\nnameserver fec0::3\nsearch test.example\n',
});

describe('networkDifferences', () => {
  it('finds nothing when all is restored under new names', () => assert.deepEqual(networkDifferences(scenario, restored()), []));
  const losses: [string, (s: NetworkState) => void, RegExp][] = [
    ['an address', (s) => s.addrs[1].addr_info.pop(), /fec0:0:0:3::15\/64 missing on eth1/],
    ['a NIC', (s) => s.addrs.pop(), /no interface with MAC 52:54:00:12:34:02/],
    ['an address on the wrong NIC', (s) => s.addrs[0].addr_info.push(s.addrs[1].addr_info.shift()!), /10\.0\.3\.15\/24 missing on eth1/],
    ['the link-local IPv6 default', (s) => s.routes6.pop(), /route default via fe80::2 dev eth0 \(was ens3\) missing/],
    ['a route on the wrong device', (s) => (s.routes4[1].dev = 'eth0'), /198\.51\.100\.0\/24 via 10\.0\.3\.2 dev eth1/],
    ['a nameserver', (s) => (s.resolvConf = 'nameserver 10.0.2.3\nsearch test.example\n'), /nameserver fec0::3 missing/],
    ['the search domain', (s) => (s.resolvConf = 'nameserver 10.0.2.3\nnameserver fec0::3\n'), /search domain test.example missing/],
  ];
  for (const [name, lose, message] of losses) {
    it(`notices a lost ${name}`, () => {
      const state = restored();
      lose(state);
      assert.ok(
        networkDifferences(scenario, state).some((p) => message.test(p)),
        JSON.stringify(networkDifferences(scenario, state)),
      );
    });
  }
});

// The data-centre box after a rescue, as `ip -j addr` / `ip -j -d link` show it: new NIC names, bond members
// carrying the bond's MAC (their own only as permaddr), virtual links under their old names.
const dc = dataCentreScenario();
const BOND_MAC = '52:54:00:12:34:11';
const DUMMY_MAC = '6a:1e:3c:55:02:80';
const dcRestored = (): NetworkState => ({
  addrs: [
    {
      ifname: 'eth0',
      address: '52:54:00:12:34:01',
      addr_info: [
        { family: 'inet', local: '10.0.2.15', prefixlen: 24 },
        { family: 'inet6', local: 'fec0::15', prefixlen: 64 },
      ],
    },
    { ifname: 'eth1', address: BOND_MAC, addr_info: [] },
    { ifname: 'eth2', address: BOND_MAC, addr_info: [] },
    { ifname: 'eth3', address: '52:54:00:12:34:13', addr_info: [] },
    { ifname: 'bond0', address: BOND_MAC, addr_info: [{ family: 'inet', local: '10.10.0.5', prefixlen: 24 }] },
    {
      ifname: 'bond0.100',
      address: BOND_MAC,
      addr_info: [
        { family: 'inet', local: '10.100.0.5', prefixlen: 24 },
        { family: 'inet6', local: '2001:db8:100::5', prefixlen: 64 },
      ],
    },
    { ifname: 'br0', address: '52:54:00:12:34:13', addr_info: [{ family: 'inet', local: '10.30.0.5', prefixlen: 24 }] },
    { ifname: 'anycast0', address: DUMMY_MAC, addr_info: [{ family: 'inet', local: '192.0.2.80', prefixlen: 32 }] },
  ],
  routes4: [
    { dst: 'default', gateway: '10.0.2.2', dev: 'eth0' },
    { dst: '203.0.113.0/24', gateway: '10.100.0.1', dev: 'bond0.100' },
    { dst: '198.51.100.0/24', gateway: '10.30.0.1', dev: 'br0' },
  ],
  routes6: [{ dst: '2001:db8:200::/48', gateway: '2001:db8:100::1', dev: 'bond0.100' }],
  links: [
    { ifname: 'eth0', address: '52:54:00:12:34:01' },
    { ifname: 'eth1', address: BOND_MAC, permaddr: BOND_MAC, master: 'bond0', linkinfo: {} },
    { ifname: 'eth2', address: BOND_MAC, permaddr: '52:54:00:12:34:12', master: 'bond0', linkinfo: {} },
    { ifname: 'eth3', address: '52:54:00:12:34:13', master: 'br0', linkinfo: {} },
    { ifname: 'bond0', address: BOND_MAC, linkinfo: { info_kind: 'bond', info_data: { mode: 'active-backup', miimon: 100, primary: 'eth2' } } },
    { ifname: 'bond0.100', address: BOND_MAC, link: 'bond0', linkinfo: { info_kind: 'vlan', info_data: { protocol: '802.1Q', id: 100 } } },
    { ifname: 'br0', address: '52:54:00:12:34:13', linkinfo: { info_kind: 'bridge', info_data: { stp_state: 0 } } },
    { ifname: 'anycast0', address: DUMMY_MAC, linkinfo: { info_kind: 'dummy', info_data: {} } },
  ],
  resolvConf: 'nameserver 10.0.2.3\n',
});

describe('networkDifferences with bonds, VLANs, bridges and a dummy', () => {
  it('finds nothing when all is restored (bond members found by permanent MAC)', () => assert.deepEqual(networkDifferences(dc, dcRestored()), []));
  const link = (s: NetworkState, name: string) => s.links!.find((l) => l.ifname === name)!;
  const losses: [string, (s: NetworkState) => void, RegExp][] = [
    ['the bond mode', (s) => (link(s, 'bond0').linkinfo!.info_data!.mode = 'balance-rr'), /bond bond0 has mode balance-rr, not active-backup/],
    ['the MII monitor', (s) => (link(s, 'bond0').linkinfo!.info_data!.miimon = 0), /bond bond0 has miimon 0, not 100/],
    ['the primary member', (s) => delete link(s, 'bond0').linkinfo!.info_data!.primary, /bond bond0 has primary none, not eth2 \(was eno2\)/],
    ['a bond member', (s) => delete link(s, 'eth2').master, /bond bond0 has members eth1 .*; wanted .*eth2 \(MAC 52:54:00:12:34:12, was eno2\)/],
    ['a member found by the wrong MAC', (s) => (link(s, 'eth2').permaddr = '52:54:00:99:99:99'), /no interface with MAC 52:54:00:12:34:12 \(was eno2\)/],
    ['the bridge member, put into the bond', (s) => (link(s, 'eth3').master = 'bond0'), /bridge br0 has members none; wanted eth3/],
    ['the VLAN id', (s) => (link(s, 'bond0.100').linkinfo!.info_data!.id = 101), /VLAN bond0.100 has id 101, not 100/],
    ['the VLAN parent', (s) => (link(s, 'bond0.100').link = 'eth1'), /VLAN bond0.100 is on eth1, not bond0/],
    ['the bridge', (s) => (s.links = s.links!.filter((l) => l.ifname !== 'br0')), /no bridge br0/],
    ['the dummy', (s) => (s.links = s.links!.filter((l) => l.ifname !== 'anycast0')), /no dummy anycast0/],
    ['the dummy address', (s) => (s.addrs[7].addr_info = []), /192\.0\.2\.80\/32 missing on anycast0 \(dummy anycast0\)/],
    ['the kind of a link', (s) => (link(s, 'bond0').linkinfo = { info_kind: 'dummy' }), /no bond bond0 \(bond0 is dummy\)/],
    ['a VLAN address', (s) => s.addrs[5].addr_info.pop(), /2001:db8:100::5\/64 missing on bond0.100 \(vlan bond0.100\)/],
    ['the bond address', (s) => (s.addrs[4].addr_info = []), /10\.10\.0\.5\/24 missing on bond0/],
    ['a route via the VLAN', (s) => s.routes6.pop(), /route 2001:db8:200::\/48 via 2001:db8:100::1 dev bond0.100 \(was bond0.100\) missing/],
    ['the link details', (s) => delete s.links, /bond bond0: no link details were read/],
  ];
  for (const [name, lose, message] of losses) {
    it(`notices a lost ${name}`, () => {
      const state = dcRestored();
      lose(state);
      const problems = networkDifferences(dc, state);
      assert.ok(
        problems.some((p) => message.test(p)),
        JSON.stringify(problems),
      );
    });
  }
  it('virtualLinkMacs lists bonds, VLANs, bridges and dummies, not NICs', () => {
    assert.deepEqual(virtualLinkMacs(dcRestored()), { bond0: BOND_MAC, 'bond0.100': BOND_MAC, br0: '52:54:00:12:34:13', anycast0: DUMMY_MAC });
  });
});

describe('parseNetworkState', () => {
  const sections = ['[{"ifname":"eth0","addr_info":[]}]', '[]', '[]'];
  it('reads link details as the fourth of five sections', () => {
    const s = parseNetworkState([...sections, '[{"ifname":"eth0","address":"52:54:00:12:34:01"}]', 'nameserver 10.0.2.3\n'].join('\n@@\n'));
    assert.deepEqual(s.links, [{ ifname: 'eth0', address: '52:54:00:12:34:01' }]);
    assert.equal(s.resolvConf, 'nameserver 10.0.2.3\n');
  });
  it('still reads the four-section form, without link details', () => {
    const s = parseNetworkState([...sections, 'nameserver 10.0.2.3\n'].join('\n@@\n'));
    assert.equal(s.links, undefined);
    assert.equal(s.resolvConf, 'nameserver 10.0.2.3\n');
  });
});
