/**
 * What a QEMU test server looks like (ServerScenario), the default one of the end-to-end test, and the pure rendering of a
 * scenario into the server's files: /etc/passwd and friends, sudoers, resolv.conf, sshd_config and the
 * setup script its /init runs (addresses, routes, fault options).
 */
import { buildLink, LINK_KINDS, type LinkSpec } from '../../network/link-kinds.js';
import { shellJoin } from '../../shell-quote.js';
import type { KeyType } from './ssh.js';

/** One NIC: a virtio NIC on its own restrict=on user-mode netdev. */
export interface NicSpec {
  mac: string;
  /** The server's name for it; differs from the rescue kernel's ethN on purpose. */
  name: string;
  /** CIDRs, e.g. `10.0.2.15/24`. */
  ipv4: string[];
  /** CIDRs, e.g. `fec0::15/64` (added with nodad, so usable at once). */
  ipv6: string[];
  /** Whether this NIC carries the ssh hostfwd (exactly one NIC should). */
  ssh: boolean;
  /** slirp's network for this netdev; unset keeps QEMU's default 10.0.2.0/24 and fec0::/64. */
  slirpNet?: string;
  slirpIpv6Net?: string;
  /**
   * QEMU's NIC model; default `virtio-net-pci`. `vmxnet3` is the one model Debian's cloud kernel drives (the
   * server loads its module) that the test image does not ship: a NIC the rescue kernel could not drive.
   */
  model?: 'virtio-net-pci' | 'vmxnet3';
}

/** A bond, VLAN, bridge or dummy the setup script creates before any address (its kind's entry in link-kinds.ts). */
export type { LinkSpec };

/** How a user may become root. */
export type SudoMode = { kind: 'none' } | { kind: 'nopasswd' } | { kind: 'password'; password: string };

/** A login user; the harness makes an ed25519 key for each and puts it in their authorized_keys. */
export interface UserSpec {
  name: string;
  uid: number;
  /** Supplementary groups, e.g. `sudo` (created as needed). */
  groups: string[];
  sudo: SudoMode;
  /** A login password when `sudo` has none (a user who can type a password but has no sudo rights); default: locked. */
  password?: string;
  /** More authorized_keys lines (e.g. a `command=` key), after the generated one. */
  extraAuthorizedKeys?: string[];
}

/** Ways to make the server harder to rescue (the fault matrix, docs/fault-matrix.md). */
export interface Faults {
  /** sysctl kernel.kexec_load_disabled=1. */
  kexecDisabled?: boolean;
  /** `/` remounted read-only at the end of boot: no writable /tmp; /run and /dev/shm stay tmpfs. */
  readOnlyRoot?: boolean;
  /**
   * Nothing writable for a tmpfs dir: once sshd is up (its pid file written; /run/sshd stays as it is), `/`, /run
   * and /dev/shm are remounted read-only, so /tmp and /var/tmp are read-only too and only an existing directory
   * such as /mnt (on the read-only root) is left to mount over.
   */
  noWritableTmpfsDirs?: boolean;
  /** Commands deleted from every PATH directory after the network is up, e.g. `ip`, `tar`, `cpio`, `gzip`. */
  removeTools?: string[];
}

/** A whole test server. */
export interface ServerScenario {
  /** RAM; the root filesystem is in it too (about 30 MiB). Low values exercise preflight's memory check. */
  memoryMiB: number;
  hostname: string;
  nics: NicSpec[];
  /** Bonds, VLANs, bridges and dummies, parents before children; a NIC that is a member should have no addresses. */
  links?: LinkSpec[];
  /** Arguments after `ip route add` (`-6` is added when one of them is an IPv6 address). */
  routes: string[][];
  nameservers: string[];
  search: string[];
  users: UserSpec[];
  /** Whether root gets a generated key of its own, plus extra authorized_keys lines. */
  root: { key: boolean; extraAuthorizedKeys?: string[] };
  hostKeyTypes: KeyType[];
  faults: Faults;
  /** A raw virtio disk (/dev/vda), empty, optionally taking writes at most at `writeBytesPerSecond` (a dying disk). */
  disk?: { sizeMiB: number; writeBytesPerSecond?: number };
  /**
   * An i6300esb hardware watchdog that resets the machine when it runs out (QEMU `-action watchdog=reset`): the
   * server then boots Debian's generic kernel (the cloud kernel lacks the driver) and loads i6300esb.
   */
  watchdog?: boolean;
  /** More kernel command line parameters for the server, e.g. `lockdown=integrity`. */
  kernelArgs?: string[];
  /** Commands the setup script runs after the routes (e.g. an address on a macvlan the planner cannot re-create). */
  extraSetup?: string[][];
}

/** The end-to-end scenario: two NICs, IPv4 + IPv6, a link-local IPv6 gateway, a sudo user. */
export function defaultScenario(): ServerScenario {
  return {
    memoryMiB: 512,
    hostname: 'testhost',
    nics: [
      { mac: '52:54:00:12:34:01', name: 'ens3', ipv4: ['10.0.2.15/24'], ipv6: ['fec0::15/64'], ssh: true },
      { mac: '52:54:00:12:34:02', name: 'enp0s4', ipv4: ['10.0.3.15/24'], ipv6: ['fec0:0:0:3::15/64'], ssh: false },
    ],
    routes: [
      ['default', 'via', '10.0.2.2', 'dev', 'ens3'],
      // Documentation prefixes (RFC 5737, RFC 3849): routed, never contacted.
      ['198.51.100.0/24', 'via', '10.0.3.2', 'dev', 'enp0s4'],
      ['2001:db8:100::/64', 'via', 'fec0:0:0:3::2', 'dev', 'enp0s4'],
      ['default', 'via', 'fe80::2', 'dev', 'ens3'],
    ],
    nameservers: ['10.0.2.3', 'fec0::3'],
    search: ['test.example'],
    users: [{ name: 'admin', uid: 1000, groups: ['sudo'], sudo: { kind: 'nopasswd' } }],
    root: { key: true },
    hostKeyTypes: ['ed25519', 'ecdsa', 'rsa'],
    faults: {},
  };
}

/**
 * A server whose every default gateway is dead, as after a provider moved it: one NIC, the operator still reaching it
 * on-link. QEMU's user-mode network (slirp) answers ARP only for its own virtual addresses in 10.0.2.0/24 (the
 * gateway .2, the DNS .3, guestfwd targets) and neighbour solicitations only for its own host address (fec0::2 and
 * its link-local twin fe80::2); so 10.0.2.99 and fe80::99 are on-link addresses nobody answers. restore.sh's gateway
 * check passes when ANY default gateway answers, so both families point at a dead one. The operator's ssh arrives
 * from 10.0.2.2 on the connected 10.0.2.0/24, which needs no gateway: the old system and the rescue stay reachable.
 * slirp's DHCP server leases 10.0.2.15 to the rescue's last-chance DHCP (under restrict=on without a router option).
 */
export function deadGatewayScenario(): ServerScenario {
  const base = defaultScenario();
  return {
    ...base,
    hostname: 'moved-box',
    nics: [{ mac: '52:54:00:12:34:01', name: 'ens3', ipv4: ['10.0.2.15/24'], ipv6: ['fec0::15/64'], ssh: true }],
    routes: [
      ['default', 'via', '10.0.2.99', 'dev', 'ens3'],
      ['default', 'via', 'fe80::99', 'dev', 'ens3'],
    ],
  };
}

/**
 * The data-centre box: ssh on a plain NIC, bond0 (eno1 + eno2, eno2 preferred) with bond0.100 on top, br0 with
 * enp5s0, and a dummy anycast0 holding a service address.
 */
export function dataCentreScenario(): ServerScenario {
  const base = defaultScenario();
  return {
    ...base,
    hostname: 'dc-box',
    nics: [
      { mac: '52:54:00:12:34:01', name: 'ens3', ipv4: ['10.0.2.15/24'], ipv6: ['fec0::15/64'], ssh: true },
      { mac: '52:54:00:12:34:11', name: 'eno1', ipv4: [], ipv6: [], ssh: false },
      { mac: '52:54:00:12:34:12', name: 'eno2', ipv4: [], ipv6: [], ssh: false },
      { mac: '52:54:00:12:34:13', name: 'enp5s0', ipv4: [], ipv6: [], ssh: false },
    ],
    links: [
      { kind: 'bond', name: 'bond0', mode: 'active-backup', miimon: 100, members: ['eno1', 'eno2'], primary: 'eno2', ipv4: ['10.10.0.5/24'], ipv6: [] },
      { kind: 'vlan', name: 'bond0.100', parent: 'bond0', id: 100, ipv4: ['10.100.0.5/24'], ipv6: ['2001:db8:100::5/64'] },
      { kind: 'bridge', name: 'br0', members: ['enp5s0'], ipv4: ['10.30.0.5/24'], ipv6: [] },
      // A service address on no NIC (anycast, a load balancer's VIP), documentation prefix: routed nowhere.
      { kind: 'dummy', name: 'anycast0', ipv4: ['192.0.2.80/32'], ipv6: [] },
    ],
    routes: [
      ['default', 'via', '10.0.2.2', 'dev', 'ens3'],
      // Documentation prefixes (RFC 5737, RFC 3849): routed, never contacted.
      ['203.0.113.0/24', 'via', '10.100.0.1', 'dev', 'bond0.100'],
      ['2001:db8:200::/48', 'via', '2001:db8:100::1', 'dev', 'bond0.100'],
      ['198.51.100.0/24', 'via', '10.30.0.1', 'dev', 'br0'],
    ],
    nameservers: ['10.0.2.3'],
    search: [],
  };
}

/** `ip route add` arguments with the family flag ip needs for `default` via an IPv6 gateway. */
export function routeCommand(args: string[]): string[] {
  return args.some((a) => a.includes(':')) ? ['ip', '-6', 'route', 'add', ...args] : ['ip', 'route', 'add', ...args];
}

/** The server's setup script: addresses, routes, then the fault options (POSIX sh, run by dash). */
export function renderSetup(s: ServerScenario): string {
  const lines = [
    '#!/bin/sh',
    '# Generated by ts/test/lib/server-scenario.ts. Every command runs; failures are counted.',
    'failed=0',
    'run() { "$@" || { echo "setup: FAILED: $*" >/dev/console; failed=$((failed + 1)); }; }',
    'run ip link set lo up',
  ];
  const cmd = (words: string[]) => `run ${shellJoin(words)}`;
  const links = s.links ?? [];
  // Bonds take members only while they are down: every link is built before any NIC comes up.
  // Each kind's module (the server's base has them), with the options that keep it from making a link of its own.
  for (const kind of new Set(links.map((l) => LINK_KINDS[l.kind]))) lines.push(cmd(['modprobe', kind.module, ...kind.moduleOptions]));
  for (const l of links) for (const words of buildLink(l)) lines.push(cmd(words));
  for (const iface of [...s.nics, ...links]) {
    lines.push(cmd(['ip', 'link', 'set', 'dev', iface.name, 'up']));
    for (const a of iface.ipv4) lines.push(cmd(['ip', 'addr', 'add', a, 'dev', iface.name]));
    for (const a of iface.ipv6) lines.push(cmd(['ip', '-6', 'addr', 'add', a, 'dev', iface.name, 'nodad']));
  }
  for (const r of s.routes) lines.push(cmd(routeCommand(r)));
  if (s.disk) lines.push(cmd(['modprobe', 'virtio_blk']));
  if (s.watchdog) lines.push(cmd(['modprobe', 'i6300esb']));
  for (const c of s.extraSetup ?? []) lines.push(cmd(c));
  if (s.faults.kexecDisabled) lines.push('run sh -c "echo 1 >/proc/sys/kernel/kexec_load_disabled"');
  for (const tool of s.faults.removeTools ?? []) {
    lines.push(cmd(['rm', '-f', `/usr/sbin/${tool}`, `/usr/bin/${tool}`, `/sbin/${tool}`, `/bin/${tool}`]));
  }
  if (s.faults.readOnlyRoot) lines.push('run mount -o remount,ro /');
  if (s.faults.noWritableTmpfsDirs) {
    // busybox init starts sshd after this script: wait in the background (up to 60 s) until sshd has written its
    // pid file, so it started with a writable /run like on a real host; failures go to the console.
    lines.push(
      '(',
      '  tries=0',
      '  until [ -s /run/sshd.pid ] || [ "$tries" -gt 600 ]; do tries=$((tries + 1)); usleep 100000; done',
      '  for m in / /run /dev/shm; do mount -o remount,ro "$m" || echo "setup: FAILED: remount $m read-only" >/dev/console; done',
      '  echo "test-server: no writable tmpfs dirs" >/dev/console',
      ') </dev/null >/dev/null 2>&1 &',
    );
  }
  lines.push('exit "$failed"', '');
  return lines.join('\n');
}

/** Group name → members, with each user's supplementary groups (gids from 100 on, sudo = 27 as on Debian). */
export function renderGroups(s: ServerScenario): string {
  const groups = new Map<string, { gid: number; members: string[] }>([
    ['root', { gid: 0, members: [] }],
    ['sudo', { gid: 27, members: [] }],
    ['nogroup', { gid: 65534, members: [] }],
  ]);
  let next = 100;
  for (const u of s.users) {
    groups.set(u.name, { gid: u.uid, members: [] });
    for (const g of u.groups) {
      if (!groups.has(g)) groups.set(g, { gid: next++, members: [] });
      groups.get(g)!.members.push(u.name);
    }
  }
  return [...groups].map(([name, g]) => `${name}:x:${g.gid}:${g.members.join(',')}\n`).join('');
}

/** /etc/passwd. */
export function renderPasswd(s: ServerScenario): string {
  return `${[
    'root:x:0:0:root:/root:/bin/sh',
    'sshd:x:100:65534::/run/sshd:/usr/sbin/nologin',
    ...s.users.map((u) => `${u.name}:x:${u.uid}:${u.uid}:${u.name}:/home/${u.name}:/bin/sh`),
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  ].join('\n')}\n`;
}

/** /etc/shadow, given each password user's crypt(3) hash. `*` locks the password but not key logins. */
export function renderShadow(s: ServerScenario, hashes: Map<string, string>): string {
  const line = (name: string) => `${name}:${hashes.get(name) ?? '*'}:19000:0:99999:7:::`;
  return `${['root', 'sshd', ...s.users.map((u) => u.name), 'nobody'].map(line).join('\n')}\n`;
}

/** /etc/sudoers: one rule per user with sudo rights (no group rules, so groups and sudo are independent). */
export function renderSudoers(s: ServerScenario): string {
  const rules = s.users.flatMap((u) =>
    u.sudo.kind === 'nopasswd' ? [`${u.name} ALL=(ALL:ALL) NOPASSWD: ALL`] : u.sudo.kind === 'password' ? [`${u.name} ALL=(ALL:ALL) ALL`] : [],
  );
  return ['Defaults env_reset', 'Defaults lecture=never', 'Defaults !fqdn', 'root ALL=(ALL:ALL) ALL', ...rules, ''].join('\n');
}

/** /etc/resolv.conf. */
export function renderResolvConf(s: ServerScenario): string {
  return [...s.nameservers.map((n) => `nameserver ${n}`), ...(s.search.length ? [`search ${s.search.join(' ')}`] : []), ''].join('\n');
}

/** sshd_config of the server: keys only, like a hardened Debian host. */
export function renderSshdConfig(s: ServerScenario): string {
  return [
    ...s.hostKeyTypes.map((t) => `HostKey /etc/ssh/ssh_host_${t}_key`),
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'PrintMotd no',
    'UseDNS no',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/** /etc/test-server/nics: `MAC NAME` per NIC, read by server-init.sh. */
export function renderNics(s: ServerScenario): string {
  return s.nics.map((n) => `${n.mac} ${n.name}\n`).join('');
}
