/** The restore script and the plan description, rendered from every fixture. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { describePlan, renderRestoreScript } from '../../network/render.js';
import { fixture, fixtureNames } from './network-fixtures.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const SYNTAX_CHECKERS = [
  ['dash', '-n'],
  ['busybox', 'ash', '-n'],
].filter((c) => has(c[0]));

/** The script without comments and single-quoted strings (descriptions and messages), i.e. only the code. */
const codeOnly = (script: string) =>
  script
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .map((line) => line.replace(/'[^']*'/g, "''"))
    .join('\n');

describe('renderRestoreScript', () => {
  test('what the planner left out is said by network.sh too, for the restore report', () => {
    const withSkips = fixtureNames()
      .map((n) => fixture(n).plan)
      .filter((p) => p.skipped.length > 0);
    assert.ok(withSkips.length > 0, 'some fixture has skipped items');
    for (const plan of withSkips) {
      const script = renderRestoreScript(plan);
      for (const item of plan.skipped) assert.ok(script.includes(`skipped: ${item.what}: `), `network.sh says it skipped ${item.what}`);
    }
  });
  for (const name of fixtureNames()) {
    test(`${name}: valid POSIX sh, interfaces only by MAC`, () => {
      const { plan } = fixture(name);
      const script = renderRestoreScript(plan);
      assert.ok(script.startsWith('#!/bin/sh\n'));
      assert.match(script, /\nexit "\$failures"\n$/);
      for (const argv of SYNTAX_CHECKERS) {
        const r = spawnSync(argv[0], argv.slice(1), { input: script, encoding: 'utf8' });
        assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
      }
      if (has('shellcheck')) {
        const r = spawnSync('shellcheck', ['-s', 'sh', '-'], { input: script, encoding: 'utf8' });
        assert.equal(r.status, 0, r.stdout);
      }
      for (const nic of plan.interfaces.filter((i) => i.kind === 'nic')) {
        assert.ok(script.includes(`find_nic ${nic.mac}`), `${nic.name} is looked up by ${nic.mac}`);
        // The old name of a NIC means nothing in the rescue system: it may only appear in messages.
        assert.doesNotMatch(codeOnly(script), new RegExp(`\\b${nic.name.replace(/\./g, '\\.')}\\b`), nic.name);
      }
    });
  }

  test('the helpers are scripts/network-lib.sh verbatim, from `set -u` on, ahead of the first step', () => {
    const lib = readFileSync(new URL('../../../scripts/network-lib.sh', import.meta.url), 'utf8');
    const code = lib.slice(lib.search(/^set -u$/m));
    assert.ok(code.length > 1000 && code.includes('find_nic() {'), 'network-lib.sh holds the helpers');
    const script = renderRestoreScript(fixture('static-ipv4').plan);
    const at = script.indexOf(`\n${code}`);
    assert.ok(at > 0, 'network.sh carries the file');
    assert.ok(at < script.indexOf('\n# Interfaces, parents before children.'), 'the helpers come before the first step');
    assert.equal(script.split('\nset -u\n').length, 2, 'the helpers appear once');
  });

  test('routes are added on-link first, in the order of the plan', () => {
    const script = renderRestoreScript(fixture('ovh-failover').plan);
    const hostRoute = script.indexOf('ip -6 route replace 2001:41d0:1:2ff:ff:ff:ff:ff metric 1024 dev');
    const viaIt = script.indexOf('ip -6 route replace default via 2001:41d0:1:2ff:ff:ff:ff:ff');
    assert.ok(hostRoute > 0 && viaIt > hostRoute, 'host route to the gateway before the route via it');
  });

  test('onlink, IPv4 via IPv6 gateway and route metrics reach the ip command line', () => {
    assert.match(renderRestoreScript(fixture('hetzner-dedicated').plan), /ip -4 route replace default via 203\.0\.113\.65 onlink dev "\$if_2"/);
    assert.match(renderRestoreScript(fixture('ipv6-only').plan), /ip -4 route replace default via inet6 fe80::1 dev "\$if_2"/);
    assert.match(renderRestoreScript(fixture('route-attributes').plan), /ip -4 route replace default via 10\.5\.0\.1 metric 10 mtu 1400 advmss 1360 dev/);
  });

  test('bond, VLAN and bridge are created with their MAC, members enslaved, parents first', () => {
    const script = renderRestoreScript(fixture('bond-vlan-datacentre').plan);
    const bond = script.indexOf('new_link "$if_4" name "$if_4" address 3c:ec:ef:10:20:30 type bond mode 802.3ad');
    const vlan = script.indexOf('new_link "$if_5" link "$if_4" name "$if_5" address 3c:ec:ef:10:20:30 type vlan id 100 protocol 802.1Q');
    assert.ok(bond > 0 && vlan > bond, 'bond created before its VLAN');
    assert.ok(script.indexOf('enslave "$if_3" "$if_4"') > bond);
    // Bond members follow the bond's MTU; only the bond gets one.
    assert.doesNotMatch(script, /ip link set dev "\$if_[23]" mtu/);
    assert.match(script, /ip link set dev "\$if_4" mtu 9000/);
  });

  test("a bond's primary member is set after the members are in, by its rescue name", () => {
    const { plan } = fixture('bond-vlan-datacentre');
    plan.interfaces.find((i) => i.name === 'bond0')!.primary = 'eno2';
    const script = renderRestoreScript(plan);
    const primary = script.indexOf('ip link set dev "$if_4" type bond primary "$if_3"');
    assert.ok(primary > script.indexOf('enslave "$if_3" "$if_4"'), 'primary after the members are enslaved');
    assert.match(describePlan(plan), /bond0: bond, re-created with MAC \S+ .*primary eno2/);
  });

  test('dynamic interfaces get a DHCP client or RA, static ones none', () => {
    assert.match(renderRestoreScript(fixture('aws-dhcp').plan), /start_dhcp "\$if_2"/);
    assert.match(renderRestoreScript(fixture('ipv6-ra').plan), /accept_ra "\$if_2"/);
    assert.doesNotMatch(renderRestoreScript(fixture('static-ipv4').plan), /start_dhcp "|accept_ra "/);
    // A static interface must not pick up RA routes the old system ignored, and the guard comes before `up`.
    const script = renderRestoreScript(fixture('static-ipv4').plan);
    assert.match(script, /ignore_ra "\$if_\d+"/);
    assert.ok(script.indexOf('ignore_ra "$') < script.indexOf('ip link set dev "$if_2" up'), 'RA is switched off before the link comes up');
  });
});

describe('describePlan', () => {
  test('per interface: MAC, old name, static/dynamic; routes; rules; nameservers; skipped and why', () => {
    const text = describePlan(fixture('bond-vlan-datacentre').plan);
    for (const line of [
      'eno2: found by MAC 3c:ec:ef:10:20:31',
      'bond0: bond, re-created with MAC 3c:ec:ef:10:20:30 mode 802.3ad',
      'bond0.100: VLAN 100 on bond0',
      'member of bond0',
      '203.0.113.10/26  static',
      'default via 203.0.113.1 dev bond0.100',
      'Not restored:',
      'interface wg0: wireguard interface without a MAC address to find it by',
      'route 192.168.0.0/16: multipath routes are not restored',
    ]) {
      assert.ok(text.includes(line), `"${line}" in:\n${text}`);
    }
    const aws = describePlan(fixture('aws-dhcp').plan);
    assert.match(aws, /172\.31\.5\.9\/20 {2}dynamic \(DHCP; kept statically too\)/);
    assert.match(aws, /172\.31\.0\.2; search ec2\.internal/);
    assert.match(describePlan(fixture('policy-routing').plan), /Policy rules:\n {2}priority 1000 from 10\.2\.0\.2 table 200/);
  });
});
