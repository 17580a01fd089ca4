/**
 * The link-kind table drives the planner, the restore script, the plan's description and the test server: one
 * row per kind, each a captured link of that kind on a NIC, planned, rendered and described through its entry.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import type { IpLink, NetworkCapture } from '../../network/capture.js';
import { checkLink, LINK_KINDS, linkKind, type LinkSpec, type VirtualKind } from '../../network/link-kinds.js';
import { planNetwork } from '../../network/plan.js';
import { describePlan, renderRestoreScript } from '../../network/render.js';
import { renderSetup, defaultScenario } from '../lib/server-scenario.js';

const NIC_MAC = '52:54:00:12:34:01';
const LINK_MAC = '52:54:00:aa:bb:01';

const nic: IpLink = { ifindex: 2, ifname: 'eth0', flags: ['BROADCAST', 'UP'], mtu: 1500, link_type: 'ether', address: NIC_MAC, addr_info: [] };

/** A link of the kind as `ip -j -d addr` shows it, with one address. */
function captured(kind: VirtualKind, info_data: Record<string, unknown>, extra: Partial<IpLink> = {}): IpLink {
  return {
    ifindex: 3,
    ifname: `${kind}0`,
    flags: ['BROADCAST', 'UP'],
    mtu: 1400,
    link_type: 'ether',
    address: LINK_MAC,
    linkinfo: { info_kind: kind, info_data },
    addr_info: [{ family: 'inet', local: '192.0.2.7', prefixlen: 24, scope: 'global' }] as IpLink['addr_info'],
    ...extra,
  };
}

const captureOf = (links: IpLink[]): NetworkCapture => ({
  links,
  routes4: [],
  routes6: [],
  rules4: [],
  rules6: [],
  rtTables: {},
  resolvConf: 'nameserver 192.0.2.53\n',
  notes: [],
});

/** One row per kind: its captured link, and what the restore script, the description and the test server say. */
const ROWS: { kind: VirtualKind; link: IpLink; nicIsMember: boolean; creates: RegExp; describes: string; spec: LinkSpec; builds: string[] }[] = [
  {
    kind: 'bond',
    link: captured('bond', { mode: 'active-backup', miimon: 100, primary: 'eth0' }),
    nicIsMember: true,
    creates: /new_link "\$if_2" name "\$if_2" address 52:54:00:aa:bb:01 type bond mode active-backup miimon 100\n/,
    describes: 'bond0: bond, re-created with MAC 52:54:00:aa:bb:01 mode active-backup miimon 100 primary eth0',
    spec: { kind: 'bond', name: 'bond0', mode: 'active-backup', miimon: 100, members: ['eth0'], primary: 'eth0', ipv4: [], ipv6: [] },
    builds: [
      'ip link add name bond0 type bond mode active-backup miimon 100',
      'ip link set dev eth0 master bond0',
      'ip link set dev bond0 type bond primary eth0',
    ],
  },
  {
    kind: 'vlan',
    link: captured('vlan', { protocol: '802.1ad', id: 42 }, { link: 'eth0' }),
    nicIsMember: false,
    creates:
      /if \[ -n "\$if_1" \]; then\n {2}step 'create vlan vlan0 \(52:54:00:aa:bb:01\)' new_link "\$if_2" link "\$if_1" name "\$if_2" address 52:54:00:aa:bb:01 type vlan id 42 protocol 802\.1ad\n/,
    describes: 'vlan0: VLAN 42 on eth0, re-created with MAC 52:54:00:aa:bb:01',
    spec: { kind: 'vlan', name: 'vlan0', parent: 'eth0', id: 42, ipv4: [], ipv6: [] },
    builds: ['ip link add link eth0 name vlan0 type vlan id 42'],
  },
  {
    kind: 'bridge',
    link: captured('bridge', { stp_state: 0, forward_delay: 1500, vlan_filtering: 0 }),
    nicIsMember: true,
    creates: /new_link "\$if_2" name "\$if_2" address 52:54:00:aa:bb:01 type bridge stp_state 0 forward_delay 1500\n/,
    describes: 'bridge0: bridge, re-created with MAC 52:54:00:aa:bb:01 stp_state 0 forward_delay 1500',
    spec: { kind: 'bridge', name: 'bridge0', members: ['eth0'], ipv4: [], ipv6: [] },
    builds: ['ip link add name bridge0 type bridge', 'ip link set dev eth0 master bridge0'],
  },
  {
    kind: 'dummy',
    link: captured('dummy', {}),
    nicIsMember: false,
    creates: /^step 'create dummy dummy0 \(52:54:00:aa:bb:01\)' new_link "\$if_2" name "\$if_2" address 52:54:00:aa:bb:01 type dummy$/m,
    describes: 'dummy0: dummy, re-created with MAC 52:54:00:aa:bb:01',
    spec: { kind: 'dummy', name: 'dummy0', ipv4: ['192.0.2.7/24'], ipv6: [] },
    builds: ['ip link add name dummy0 type dummy'],
  },
];

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

describe('link kinds: each entry drives plan, render, description and the test server', () => {
  test('every kind of the table has a row here', () => {
    assert.deepEqual(ROWS.map((r) => r.kind).sort(), Object.keys(LINK_KINDS).sort());
  });

  for (const row of ROWS) {
    test(`${row.kind}: planned with its attributes, created by network.sh with its MAC, described, built on a test server`, () => {
      const member = row.nicIsMember ? { ...nic, master: row.link.ifname } : nic;
      const plan = planNetwork(captureOf([member, row.link]));
      const planned = plan.interfaces.find((i) => i.name === row.link.ifname);
      assert.ok(planned, `${row.kind} is planned: ${JSON.stringify(plan.skipped)}`);
      assert.equal(planned.kind, row.kind);
      assert.equal(planned.mac, LINK_MAC, 're-created with the old MAC');
      assert.deepEqual(
        planned.addresses.map((a) => a.cidr),
        ['192.0.2.7/24'],
      );
      assert.ok(plan.interfaces.indexOf(planned) > plan.interfaces.findIndex((i) => i.name === 'eth0'), 'after the NIC it hangs off or holds');

      const script = renderRestoreScript(plan);
      assert.match(script, row.creates);
      assert.match(script, /ip_step '[^']+' addr replace 192\.0\.2\.7\/24 dev "\$if_2"/);
      if (row.nicIsMember) assert.match(script, /enslave "\$if_1" "\$if_2"/);
      // Bond members take the bond's MTU: the table says whether the NIC gets its own.
      assert.equal(/ip_step '[^']+' link set dev "\$if_1" mtu/.test(script), !(row.nicIsMember && LINK_KINDS[row.kind].membersTakeMtu));
      for (const argv of [
        ['dash', '-n'],
        ['busybox', 'ash', '-n'],
      ].filter((c) => has(c[0]))) {
        const r = spawnSync(argv[0], argv.slice(1), { input: script, encoding: 'utf8' });
        assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
      }

      assert.ok(describePlan(plan).includes(`  ${row.describes}\n`), describePlan(plan));

      const scenario = { ...defaultScenario(), links: [row.spec] };
      const setup = renderSetup(scenario);
      const entry = LINK_KINDS[row.kind];
      assert.ok(
        setup.includes(`run ${['modprobe', entry.module, ...entry.moduleOptions].join(' ')}\n`),
        'the kind’s module is loaded, without a link of its own',
      );
      for (const line of row.builds) assert.ok(setup.includes(`run ${line}\n`), `${line} in:\n${setup}`);
    });
  }

  test('a kind the table does not know is skipped with the reason, and so is what hangs off it', () => {
    const vxlan: IpLink = { ...captured('dummy', {}), ifname: 'vxlan0', linkinfo: { info_kind: 'vxlan', info_data: {} } };
    const onTop: IpLink = { ...captured('vlan', { id: 5, protocol: '802.1Q' }, { link: 'vxlan0' }), ifindex: 4, ifname: 'vxlan0.5' };
    assert.equal(linkKind('vxlan'), undefined);
    assert.equal(linkKind('toString'), undefined, 'only the table’s own keys');
    const plan = planNetwork(captureOf([nic, vxlan, onTop]));
    assert.deepEqual(plan.skipped, [
      { what: 'interface vxlan0', reason: 'vxlan interfaces cannot be re-created from a capture' },
      { what: 'interface vxlan0.5', reason: 'its parent vxlan0 is not restored' },
    ]);
  });

  test('a VLAN without an id is skipped, through its entry', () => {
    const plan = planNetwork(captureOf([nic, captured('vlan', {}, { link: 'eth0' })]));
    assert.deepEqual(plan.skipped, [{ what: 'interface vlan0', reason: 'VLAN without a parent interface or id' }]);
  });

  test('the checks of the test harness come from the entries too', () => {
    const shown = (kind: string, info_data: Record<string, unknown>, link?: string) => ({ ifname: 'x', linkinfo: { info_kind: kind, info_data }, link });
    const bond: LinkSpec = { kind: 'bond', name: 'bond0', mode: 'active-backup', members: [], primary: 'eno2', ipv4: [], ipv6: [] };
    assert.deepEqual(
      checkLink(bond, shown('bond', { mode: 'active-backup', primary: 'eth1' }), () => 'eth1'),
      [],
    );
    assert.deepEqual(
      checkLink(bond, shown('bond', { mode: 'balance-rr' }), () => 'eth1'),
      ['bond bond0 has mode balance-rr, not active-backup', 'bond bond0 has primary none, not eth1 (was eno2)'],
    );
    const vlan: LinkSpec = { kind: 'vlan', name: 'v', parent: 'eno1', id: 7, ipv4: [], ipv6: [] };
    assert.deepEqual(
      checkLink(vlan, shown('vlan', { id: 8 }, 'eth0'), () => 'eth0'),
      ['VLAN v has id 8, not 7'],
    );
    assert.deepEqual(
      checkLink({ kind: 'dummy', name: 'd', ipv4: [], ipv6: [] }, shown('dummy', {}), (n) => n),
      [],
    );
  });
});
