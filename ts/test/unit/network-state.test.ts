import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkDifferences, type NetworkState } from '../lib/network-state.js';
import { defaultScenario } from '../lib/server-scenario.js';

// The checker the end-to-end tests rely on must itself notice every kind of loss.
const scenario = defaultScenario();
const restored = (): NetworkState => ({
  addrs: [
    { ifname: 'eth0', address: '52:54:00:12:34:01', addr_info: [{ family: 'inet', local: '10.0.2.15', prefixlen: 24 }, { family: 'inet6', local: 'fec0::15', prefixlen: 64 }] },
    { ifname: 'eth1', address: '52:54:00:12:34:02', addr_info: [{ family: 'inet', local: '10.0.3.15', prefixlen: 24 }, { family: 'inet6', local: 'fec0:0:0:3::15', prefixlen: 64 }] },
  ],
  routes4: [{ dst: 'default', gateway: '10.0.2.2', dev: 'eth0' }, { dst: '198.51.100.0/24', gateway: '10.0.3.2', dev: 'eth1' }],
  routes6: [{ dst: '2001:db8:100::/64', gateway: 'fec0:0:0:3::2', dev: 'eth1' }, { dst: 'default', gateway: 'fe80::2', dev: 'eth0' }],
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
      assert.ok(networkDifferences(scenario, state).some((p) => message.test(p)), JSON.stringify(networkDifferences(scenario, state)));
    });
  }
});
