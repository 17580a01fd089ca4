/**
 * Network namespaces for the round-trip tests: build a case's network in a namespace, capture it with the real
 * scripts/capture-network.sh, run a restore script in another namespace, and read back a normalized state
 * (interfaces keyed by kind and MAC, never by name) to compare. Needs root; touches nothing outside namespaces.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linkKind } from '../../network/link-kinds.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CAPTURE_SCRIPT = join(REPO, 'scripts/capture-network.sh');

/** A NIC of a case: the old name and MAC; in the rescue namespace it gets another name. */
export interface Nic {
  name: string;
  mac: string;
  /** Its name in the restore namespace (default: `resN`). */
  rescueName?: string;
}

/** One round-trip case: NICs (veth pairs whose peers sit in a wire namespace) and the commands that configure them. */
export interface NetnsCase {
  name: string;
  nics: Nic[];
  /** Shell commands run inside the namespace (ip …), after the NICs exist and lo is up. */
  setup: string;
  /** Link kinds the kernel must support (bond, vlan, dummy); the case is skipped without them. */
  needs?: string[];
  resolvConf?: string;
  resolvedResolvConf?: string;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The shells the host and rescue scripts must run under (dash and busybox ash), those installed here. */
export const SCRIPT_SHELLS: string[][] = [['dash'], ['busybox', 'ash']].filter((shell) => spawnSync(shell[0], [...shell.slice(1), '-c', 'true']).status === 0);

/** Why a test that runs a script in network namespaces under SCRIPT_SHELLS cannot run here; false when it can. */
export function scriptNetnsSkip(): string | false {
  if (!isRoot()) return 'needs root (network namespaces)';
  return SCRIPT_SHELLS.length === 0 ? 'needs dash or busybox' : false;
}

/** The restore tests' network.sh: the NIC stand-in res0 at 10.9.0.5/24, its default gateway 10.9.0.1. */
export const ONE_NIC_NETWORK_SH = `#!/bin/sh
ip link set res0 up
ip addr add 10.9.0.5/24 dev res0
ip route add default via 10.9.0.1 dev res0
`;

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Namespaces made by this process, deleted by cleanup(). */
const created = new Set<string>();
let counter = 0;

export function addNetns(tag: string): string {
  const name = `emt${process.pid % 100000}-${++counter}-${tag}`.slice(0, 40);
  sh('ip', ['netns', 'add', name]);
  created.add(name);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

export function deleteNetns(name: string): void {
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  created.delete(name);
}

export function cleanup(): void {
  for (const name of [...created]) deleteNetns(name);
}

const kindSupport = new Map<string, boolean>();
/** Whether this kernel can create links of this kind (bonding, 8021q and dummy are modules that may be missing). */
export function kernelSupports(kind: string): boolean {
  if (!kindSupport.has(kind)) {
    const entry = linkKind(kind);
    if (!entry) throw new Error(`${kind} is not a link kind of ts/network/link-kinds.ts`);
    const ns = addNetns('probe');
    // A kind that hangs off another link (a VLAN) gets a veth as its parent.
    if (entry.probe.includes('PARENT')) spawnSync('ip', ['-n', ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'], { stdio: 'ignore' });
    const words = entry.probe.map((w) => (w === 'PARENT' ? 'v0' : w));
    kindSupport.set(kind, spawnSync('ip', ['-n', ns, 'link', 'add', 'probe0', ...words], { stdio: 'ignore' }).status === 0);
    deleteNetns(ns);
  }
  return kindSupport.get(kind)!;
}

/** Creates the case's NICs in `ns` (named as in the old system, or their rescue names) with peers in `wire`. */
export function addNics(ns: string, wire: string, nics: Nic[], rescue: boolean): void {
  nics.forEach((nic, i) => {
    const name = rescue ? (nic.rescueName ?? `res${i}`) : nic.name;
    sh('ip', ['-n', ns, 'link', 'add', name, 'address', nic.mac, 'type', 'veth', 'peer', 'name', `w${i}`, 'netns', wire]);
    sh('ip', ['-n', wire, 'link', 'set', `w${i}`, 'up']);
  });
}

/** Runs a command inside a namespace. */
export function nsExec(ns: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  return spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', env: opts.env ?? process.env, input: opts.input });
}

/** Builds the old system of a case; returns the namespace. */
export function buildOld(c: NetnsCase): { ns: string; wire: string } {
  const ns = addNetns('old');
  const wire = addNetns('wire');
  noDad(ns);
  addNics(ns, wire, c.nics, false);
  const r = nsExec(ns, ['sh', '-ec', c.setup]);
  if (r.status !== 0) throw new Error(`setup of ${c.name} failed: ${r.stderr}`);
  return { ns, wire };
}

/** Makes a rescue namespace: the same NICs (same MACs) under other names, nothing configured. */
export function buildRescue(c: NetnsCase, tag: string): { ns: string; wire: string } {
  const ns = addNetns(tag);
  const wire = addNetns('wire');
  noDad(ns);
  addNics(ns, wire, c.nics, true);
  return { ns, wire };
}

// Deterministic IPv6 in tests: no duplicate address detection (per namespace, never the host's setting).
function noDad(ns: string): void {
  const r = nsExec(ns, ['sh', '-c', 'for k in all default; do echo 0 >/proc/sys/net/ipv6/conf/$k/accept_dad; done']);
  if (r.status !== 0) throw new Error(`cannot turn off DAD in ${ns}: ${r.stderr}`);
}

/** Runs scripts/capture-network.sh in the namespace, with the case's resolv.conf files mounted privately. */
export function captureIn(ns: string, c: NetnsCase): string {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-capture-'));
  try {
    writeFileSync(join(dir, 'resolv.conf'), c.resolvConf ?? 'nameserver 192.0.2.53\n');
    const mounts = [
      // A private mount namespace: the host's /etc/resolv.conf and /run stay untouched.
      'mount --bind "$D/resolv.conf" /etc/resolv.conf',
      'mount -t tmpfs emergency-test /run',
    ];
    if (c.resolvedResolvConf !== undefined) {
      writeFileSync(join(dir, 'resolved.conf'), c.resolvedResolvConf);
      mounts.push('mkdir -p /run/systemd/resolve', 'cp "$D/resolved.conf" /run/systemd/resolve/resolv.conf');
    }
    const script = `${mounts.join(' && ')} && sh "$S"`;
    const r = nsExec(ns, ['unshare', '-m', 'sh', '-ec', script], { env: { ...process.env, D: dir, S: CAPTURE_SCRIPT } });
    if (r.status !== 0) throw new Error(`capture in ${ns} failed: ${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface JsonLink {
  ifname: string;
  address?: string;
  permaddr?: string;
  mtu: number;
  flags: string[];
  master?: string;
  link?: string;
  link_type: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: Record<string, unknown>[];
}

/** The state of a namespace with interface names replaced by kind and MAC, sorted, so two namespaces compare. */
export interface NormalizedState {
  links: string[];
  addresses: string[];
  routes: string[];
  rules: string[];
}

export function normalizedState(ns: string): NormalizedState {
  const ipj = (...args: string[]) => JSON.parse(sh('ip', ['-n', ns, '-j', ...args]) || '[]');
  const links: JsonLink[] = ipj('-d', 'addr', 'show');
  const byName = new Map(links.map((l) => [l.ifname, l]));
  const key = (name: string | undefined): string => {
    if (name === undefined) return '-';
    const l = byName.get(name);
    if (!l) return `?${name}`;
    if (l.link_type === 'loopback') return 'lo';
    const kind = l.linkinfo?.info_kind === 'veth' || !l.linkinfo?.info_kind ? 'nic' : l.linkinfo.info_kind;
    const identity = linkKind(kind)?.identity;
    return identity ? identity(l, key(l.link)) : `${kind}:${l.permaddr ?? l.address}`;
  };
  const out: NormalizedState = { links: [], addresses: [], routes: [], rules: [] };
  for (const l of links) {
    out.links.push(`${key(l.ifname)} mtu ${l.mtu} ${l.flags.includes('UP') ? 'up' : 'down'} master ${key(l.master)}`);
    for (const a of l.addr_info ?? []) {
      if (a.scope === 'link' || a.scope === 'host') continue;
      const peer = a.address ? ` peer ${String(a.address)}` : '';
      const flags = ['noprefixroute'].filter((f) => a[f]).join(',');
      out.addresses.push(`${key(l.ifname)} ${String(a.local)}/${String(a.prefixlen)}${peer} brd ${String(a.broadcast ?? '-')} ${flags}`);
    }
  }
  for (const fam of ['-4', '-6']) {
    for (const r of ipj(fam, 'route', 'show', 'table', 'all') as Record<string, unknown>[]) {
      const { dev, expires, flags, ...rest } = r;
      void expires;
      // Link-local and multicast routes follow carrier (a bridge gets it after its forward delay): not ours.
      if (r.protocol === 'kernel' && /^(fe80:|ff00:)/.test(String(r.dst))) continue;
      const f = ((flags as string[]) ?? []).filter((x) => x !== 'linkdown');
      out.routes.push(`${fam} dev ${key(dev as string | undefined)} ${JSON.stringify(rest)} ${f.join(',')}`);
    }
    for (const r of ipj(fam, 'rule', 'show') as Record<string, unknown>[]) {
      const { iif, oif, ...rest } = r;
      out.rules.push(`${fam} iif ${key(iif as string | undefined)} oif ${key(oif as string | undefined)} ${JSON.stringify(rest)}`);
    }
  }
  for (const k of Object.keys(out) as (keyof NormalizedState)[]) out[k].sort();
  return out;
}
