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

/** The rendered `ip_step DESC ARGS` lines, as [DESC, ARGS], in script order. */
const ipSteps = (script: string) => [...script.matchAll(/^\s*ip_step '([^']*)' (.*)$/gm)].map((m) => [m[1], m[2]] as const);

/**
 * How many `ip -batch` runs the script makes when every interface is found: runs of ip steps between the commands
 * that run the queue first (`step`, `find_nic`, the final `ip_flush`). The `say` of a guard's else branch does
 * too, but only runs when an interface is missing.
 */
function batchRuns(script: string): number {
  let runs = 0;
  let queued = false;
  for (const line of script.slice(script.indexOf('\n# NICs, found by MAC.')).split('\n')) {
    if (/^\s*ip_step /.test(line)) {
      if (!queued) runs++;
      queued = true;
    } else if (/^\s*(step |find_nic )|^ip_flush$/.test(line)) {
      queued = false;
    }
  }
  return runs;
}

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
    const hostRoute = script.indexOf('route replace 2001:41d0:1:2ff:ff:ff:ff:ff metric 1024 dev');
    const viaIt = script.indexOf('route replace ::/0 via 2001:41d0:1:2ff:ff:ff:ff:ff');
    assert.ok(hostRoute > 0 && viaIt > hostRoute, 'host route to the gateway before the route via it');
  });

  // One line per case: the step's description (its report line) and the words after `ip`.
  const IP_STEPS: [fixture: string, desc: string, args: string][] = [
    ['static-ipv4', 'bring up lo', 'link set dev "$if_1" up'],
    ['static-ipv4', 'MTU 1500 on eth0 (52:54:00:12:34:01)', 'link set dev "$if_2" mtu 1500'],
    ['static-ipv4', 'route default via 192.0.2.1 dev eth0', 'route replace 0.0.0.0/0 via 192.0.2.1 dev "$if_2"'],
    ['hetzner-dedicated', 'address 2a01:4f8:a:b::2/64 on enp0s31f6', 'addr replace 2a01:4f8:a:b::2/64 nodad dev "$if_2"'],
    ['hetzner-dedicated', 'route default via 203.0.113.65 dev enp0s31f6 onlink', 'route replace 0.0.0.0/0 via 203.0.113.65 onlink dev "$if_2"'],
    ['hetzner-dedicated', 'route -6 default via fe80::1 dev enp0s31f6 metric 1024', 'route replace ::/0 via fe80::1 metric 1024 dev "$if_2"'],
    ['ipv6-only', 'route default via inet6 fe80::1 dev ens3', 'route replace 0.0.0.0/0 via inet6 fe80::1 dev "$if_2"'],
    [
      'route-attributes',
      'route default via 10.5.0.1 dev eth0 metric 10 mtu 1400 advmss 1360',
      'route replace 0.0.0.0/0 via 10.5.0.1 metric 10 mtu 1400 advmss 1360 dev "$if_2"',
    ],
    ['route-attributes', 'route blackhole 10.66.0.0/16', 'route replace blackhole 10.66.0.0/16'],
    ['route-attributes', 'route -6 blackhole 2001:db8:dead::/48 dev lo metric 1024', 'route replace blackhole 2001:db8:dead::/48 metric 1024 dev "$if_1"'],
    ['many-addresses', 'address 10.3.0.2/24 on eth0', 'addr replace 10.3.0.2/24 broadcast 10.3.0.255 dev "$if_2"'],
    ['many-addresses', 'address 10.4.0.2/24 on eth0', 'addr replace 10.4.0.2/24 noprefixroute dev "$if_2"'],
    ['many-addresses', 'address 10.9.9.1 peer 10.9.9.2/32 on eth0', 'addr replace 10.9.9.1 peer 10.9.9.2/32 dev "$if_2"'],
  ];
  for (const [name, desc, args] of IP_STEPS) {
    test(`${name}: ip_step '${desc}' ${args}`, () => {
      assert.ok(
        ipSteps(renderRestoreScript(fixture(name).plan)).some(([d, a]) => d === desc && a === args),
        ipSteps(renderRestoreScript(fixture(name).plan)).join('\n'),
      );
    });
  }

  for (const name of fixtureNames()) {
    test(`${name}: every plain ip step is queued, and its first address says its family (no -4/-6 in a batch)`, () => {
      const { plan } = fixture(name);
      const script = renderRestoreScript(plan);
      assert.doesNotMatch(script, /^\s*step '[^']*' ip /m, 'no ip step outside the batch');
      const steps = ipSteps(script);
      for (const [desc, args] of steps) assert.doesNotMatch(args, /^-/, `${desc}: no option before the object`);
      // One step per route and per address, in plan order; ip takes the family from the first address it reads.
      const routes = steps.filter(([, a]) => a.startsWith('route replace '));
      assert.equal(routes.length, plan.routes.length);
      plan.routes.forEach((r, n) => {
        const words = routes[n][1].split(' ').slice(r.type === 'unicast' ? 2 : 3);
        assert.ok(words[0] !== 'default' && words[0].includes(':') === (r.family === 'inet6'), `${routes[n][0]}: ${words[0]} is ${r.family}`);
      });
      const addresses = steps.filter(([, a]) => a.startsWith('addr replace '));
      const planned = plan.interfaces.flatMap((i) => i.addresses);
      assert.equal(addresses.length, planned.length);
      planned.forEach((a, n) => assert.equal(addresses[n][1].split(' ')[2].includes(':'), a.family === 'inet6', addresses[n][0]));
      // The failure count is read after the last queued steps ran.
      assert.match(script, /\nip_flush\nsay "done: \$failures failed step\(s\)"\n/);
    });
  }

  // NICs and their sysctls come first, so the interfaces' ip steps, the addresses and the routes share one batch;
  // virtual links are created (a non-ip step) between their parents' steps and their own.
  const BATCHES: [fixture: string, ipSteps: number, runs: number][] = [
    ['static-ipv4', 5, 1],
    ['hetzner-dedicated', 7, 1],
    ['swapped-names', 9, 1],
    ['policy-routing', 12, 1],
    ['aws-dhcp', 6, 1],
    ['bridge', 11, 2],
    ['bond-vlan-datacentre', 16, 4],
  ];
  for (const [name, steps, runs] of BATCHES) {
    test(`${name}: ${steps} ip steps in ${runs} ip run(s)`, () => {
      const script = renderRestoreScript(fixture(name).plan);
      assert.equal(ipSteps(script).length, steps);
      assert.equal(batchRuns(script), runs);
    });
  }

  test('bond, VLAN and bridge are created with their MAC, members enslaved, parents first', () => {
    const script = renderRestoreScript(fixture('bond-vlan-datacentre').plan);
    const bond = script.indexOf('new_link "$if_4" name "$if_4" address 3c:ec:ef:10:20:30 type bond mode 802.3ad');
    const vlan = script.indexOf('new_link "$if_5" link "$if_4" name "$if_5" address 3c:ec:ef:10:20:30 type vlan id 100 protocol 802.1Q');
    assert.ok(bond > 0 && vlan > bond, 'bond created before its VLAN');
    assert.ok(script.indexOf('enslave "$if_3" "$if_4"') > bond);
    // Bond members follow the bond's MTU; only the bond gets one.
    assert.doesNotMatch(script, /link set dev "\$if_[23]" mtu/);
    assert.match(script, /ip_step '[^']+' link set dev "\$if_4" mtu 9000/);
  });

  test("a bond's primary member is set after the members are in, by its rescue name", () => {
    const { plan } = fixture('bond-vlan-datacentre');
    plan.interfaces.find((i) => i.name === 'bond0')!.primary = 'eno2';
    const script = renderRestoreScript(plan);
    const primary = script.indexOf(`ip_step 'eno2 as primary of bond bond0' link set dev "$if_4" type bond primary "$if_3"`);
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
    assert.ok(script.indexOf('ignore_ra "$if_2"') < script.indexOf('link set dev "$if_2" up'), 'RA is switched off before the link comes up');
    const bond = renderRestoreScript(fixture('bond-vlan-datacentre').plan);
    for (const id of ['if_4', 'if_5']) {
      assert.ok(bond.indexOf(`ignore_ra "$${id}"`) > bond.indexOf(`new_link "$${id}"`), `${id}: RA off once it exists`);
      assert.ok(bond.indexOf(`ignore_ra "$${id}"`) < bond.indexOf(`link set dev "$${id}" up`), `${id}: RA off before it comes up`);
    }
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
