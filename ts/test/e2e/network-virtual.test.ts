/**
 * End to end (needs QEMU): a data-centre box whose network is more than NICs, rescued through the real CLI.
 * The ssh NIC stays plain (it carries the hostfwd); two NICs form an active-backup bond with an address, a VLAN
 * on the bond has its own IPv4/IPv6 addresses and routes, a bridge has a NIC member and an address, and a dummy
 * holds a service address. The rescue system must re-create all of it: the bond with the same mode and primary and
 * its members found by their old permanent MACs, the VLAN on the bond with the same id, the bridge with its member,
 * the dummy, the old MACs on the virtual links, every address and route. This is where bonds, VLANs, bridges and
 * dummies are proven for real: the namespace round trip skips them on kernels without bonding/8021q/dummy (CI's),
 * the Debian kernel in QEMU has them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, targetArgs } from '../lib/cli.js';
import { networkDifferences, parseNetworkState, READ_NETWORK, virtualLinkMacs, type NetworkState } from '../lib/network-state.js';
import { dataCentreScenario } from '../lib/server-scenario.js';
import { qemuAvailable, startServer, type TestServer } from '../lib/server.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';

describe('emergency restores a bond, a VLAN on it, a bridge and a dummy (needs QEMU)', { skip, timeout: 600_000 }, () => {
  let image: string;
  let server: TestServer;
  let old: NetworkState;

  before(async () => {
    image = await buildTestImage();
    server = await startServer(dataCentreScenario());
  });
  after(async () => {
    await server?.stop();
  });

  it('the server is set up as the scenario says (bond, VLAN, bridge, dummy, addresses, routes)', async () => {
    const state = await server.ssh('root', READ_NETWORK);
    assert.equal(state.code, 0, state.stderr);
    old = parseNetworkState(state.stdout);
    assert.deepEqual(networkDifferences(server.expected, old), [], `the test server's own setup\n${server.serialLog().split('\n').slice(-20).join('\n')}`);
    assert.deepEqual(Object.keys(virtualLinkMacs(old)).sort(), ['anycast0', 'bond0', 'bond0.100', 'br0']);
  });

  it('rescues as root: bond, VLAN, bridge and dummy re-created with old MACs, members found by MAC, all addresses and routes back', async () => {
    assert.ok(old, 'the setup was read');
    const started = Date.now();
    const result = await runCli(['--yes', '--timeout', '120', '--image', image, ...targetArgs(server, 'root')]);
    const serial = () => server.serialLog().split('\n').slice(-60).join('\n');
    assert.equal(result.code, 0, `rescue failed:\n${result.stderr}\n--- serial ---\n${serial()}`);
    const rescueMs = Date.now() - started;

    const marker = await server.ssh('root', 'test -e /etc/emergency-rescue && echo rescue-marker; cat /var/log/emergency-restore.log');
    assert.equal(marker.code, 0, marker.stderr);
    assert.match(marker.stdout, /^rescue-marker$/m, 'the rescue system answers');
    const log = marker.stdout;
    assert.match(log, /emergency-network: done: 0 failed step\(s\)/, `network.sh had no failed step:\n${log}`);

    const state = await server.ssh('root', READ_NETWORK);
    assert.equal(state.code, 0, state.stderr);
    const now = parseNetworkState(state.stdout);
    assert.deepEqual(networkDifferences(server.expected, now), [], `every link, member, address and route is back\n${log}`);
    assert.deepEqual(virtualLinkMacs(now), virtualLinkMacs(old), 'bond, VLAN, bridge and dummy carry their old MACs');
    const oldNics = new Set(server.scenario.nics.map((n) => n.name));
    assert.ok(
      now.links!.every((l) => !oldNics.has(l.ifname)),
      'the rescue kernel named the NICs differently, so matching by MAC was needed',
    );
    const steps = result.stderr.match(/✓ \w+ \d+\.\d s/g) ?? [];
    console.log(
      `# rescue of the data-centre box: ${(rescueMs / 1000).toFixed(1)} s (${steps.join(', ')}); server boot to ssh ${(server.bootToSshMs / 1000).toFixed(1)} s`,
    );
  });
});
