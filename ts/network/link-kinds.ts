/**
 * The virtual link kinds the rescue system re-creates (bond, VLAN, bridge, dummy), one entry each: how a link of
 * the kind is recognised in `ip -j -d` output, what the planner keeps of it, how network.sh creates it and how the
 * plan describes it, and, for the test harness, how a test server builds one and how the result is checked.
 * A new kind (macvlan, say) is one entry here. NICs and loopback are found, not made: plan.ts handles them.
 */
import type { IpLink } from './capture.js';

/** The kinds, as `linkinfo.info_kind` names them. */
export type VirtualKind = 'bond' | 'vlan' | 'bridge' | 'dummy';

/** A word of an `ip link add` command: literal, or the rescue name of an interface given by its old name. */
export type LinkWord = string | { dev: string };

/** What the planner keeps of a link of this kind, beyond what every interface has. */
export interface KindAttributes {
  vlan?: { parent: string; id: number; protocol: string };
  /** `ip link add … type KIND` options, as name/value pairs. */
  linkOptions: [string, string][];
  /** Bond: the old name of the member it prefers. */
  primary?: string;
}

/** The fields of a planned interface an entry reads (PlannedInterface has them all). */
export interface PlannedLink extends KindAttributes {
  name: string;
  mac: string;
}

/** A bond, VLAN, bridge or dummy that a test server builds (ServerScenario.links) and a check expects back. */
export type LinkSpec = { name: string; ipv4: string[]; ipv6: string[] } & (
  | { kind: 'bond'; mode: string; miimon?: number /** NIC names, enslaved in this order. */; members: string[] /** The preferred member. */; primary?: string }
  | { kind: 'bridge'; members: string[] }
  | { kind: 'vlan'; parent: string; id: number }
  | { kind: 'dummy' }
);

/** `ip -j -d link` as the test checks read it. */
export interface ShownLink {
  ifname: string;
  address?: string;
  master?: string;
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** One virtual link kind. */
export interface LinkKind<K extends VirtualKind = VirtualKind> {
  kind: K;
  /** The kernel module that provides it (the test images load it; the NixOS image has the whole tree). */
  module: string;
  /** Options that keep loading the module from creating a link of its own (bond0, dummy0) the host never had. */
  moduleOptions: string[];
  /** Whether it takes members (`ip link set MEMBER master IT`). */
  hasMembers: boolean;
  /** Whether members take its MTU, so that setting their own would fail (bonds). */
  membersTakeMtu: boolean;
  /** What the plan keeps of a captured link (`info_data` is `ip -j -d`'s), or why it cannot be re-created. */
  plan(link: IpLink, data: Record<string, unknown>, notes: string[]): KindAttributes | { skip: string };
  /** The `ip link add` words that re-create it in network.sh, under its old name (`{ dev }` = another interface). */
  create(i: PlannedLink): LinkWord[];
  /** The plan's line for it, after `NAME: `. */
  describe(i: PlannedLink): string;
  /** For the tests: the commands a test server runs to build it (members enslaved, in order). */
  build(spec: Extract<LinkSpec, { kind: K }>): string[][];
  /** For the tests: what is wrong with `link` as the spec says it should be (`rescueName` maps old NIC names). */
  check(spec: Extract<LinkSpec, { kind: K }>, link: ShownLink, rescueName: (old: string) => string): string[];
  /** For the tests: `ip link add probe0 …` words that tell whether a kernel can make one (`PARENT`: a veth). */
  probe: string[];
  /**
   * For the tests: what identifies a link of this kind when names differ, given its parent's identity; default
   * `KIND:MAC`. VLANs share their parent's MAC, so their id and parent tell them apart.
   */
  identity?: (link: ShownLink, parent: string) => string;
}

const BOND_OPTIONS = ['mode', 'miimon', 'updelay', 'downdelay', 'min_links', 'arp_interval', 'fail_over_mac'];
// iproute2 prints the LACP rate as `ad_lacp_rate` (ip/iplink_bond.c) but takes it as `lacp_rate`.
const BOND_8023AD_OPTIONS: [string, string][] = [
  ['ad_lacp_rate', 'lacp_rate'],
  ['ad_select', 'ad_select'],
];
const BRIDGE_OPTIONS = ['stp_state', 'forward_delay'];

/** The bond's options as [key in `ip -j -d` output, `ip link add` option] pairs; which apply depends on the mode. */
function bondOptionNames(data: Record<string, unknown>): (string | [string, string])[] {
  const mode = data.mode;
  const names: (string | [string, string])[] = [...BOND_OPTIONS];
  if (mode === '802.3ad') names.push(...BOND_8023AD_OPTIONS);
  if (mode === '802.3ad' || mode === 'balance-xor' || mode === 'balance-tlb') names.push('xmit_hash_policy');
  return names;
}

/** `ip link add` options from a link's captured data; a name is the same in both, or a [captured, option] pair. */
function linkOptions(data: Record<string, unknown>, names: (string | [string, string])[]): [string, string][] {
  const out: [string, string][] = [];
  for (const name of names) {
    const [key, option] = typeof name === 'string' ? [name, name] : name;
    const v = data[key];
    if ((typeof v === 'string' && /^[A-Za-z0-9+._-]+$/.test(v)) || typeof v === 'number') out.push([option, String(v)]);
  }
  // An ARP monitor without its targets does nothing; with them it is the bond's only link check.
  if (Array.isArray(data.arp_ip_target) && data.arp_ip_target.length > 0) {
    out.push(['arp_ip_target', data.arp_ip_target.filter((t) => typeof t === 'string').join(',')]);
  }
  return out;
}

/** `name NAME address MAC type KIND OPTIONS…`: how every kind but VLAN is created. */
const typed =
  (kind: VirtualKind) =>
  (i: PlannedLink): LinkWord[] => ['name', { dev: i.name }, 'address', i.mac, 'type', kind, ...i.linkOptions.flat()];
/** `NAME: KIND, re-created with MAC …`: how every kind but VLAN is described. */
const described = (kind: VirtualKind) => (i: PlannedLink) =>
  `${kind}, re-created with MAC ${i.mac}${i.linkOptions.map(([k, v]) => ` ${k} ${v}`).join('')}${i.primary ? ` primary ${i.primary}` : ''}`;
/** The commands that put a spec's members into it, in order. */
const enslave = (spec: { name: string; members: string[] }) => spec.members.map((m) => ['ip', 'link', 'set', 'dev', m, 'master', spec.name]);

const bond: LinkKind<'bond'> = {
  kind: 'bond',
  module: 'bonding',
  moduleOptions: ['max_bonds=0'],
  hasMembers: true,
  membersTakeMtu: true,
  plan: (_, data) => ({ linkOptions: linkOptions(data, bondOptionNames(data)), ...(typeof data.primary === 'string' ? { primary: data.primary } : {}) }),
  create: typed('bond'),
  describe: described('bond'),
  build: (spec) => [
    ['ip', 'link', 'add', 'name', spec.name, 'type', 'bond', 'mode', spec.mode, ...(spec.miimon === undefined ? [] : ['miimon', String(spec.miimon)])],
    ...enslave(spec),
    ...(spec.primary ? [['ip', 'link', 'set', 'dev', spec.name, 'type', 'bond', 'primary', spec.primary]] : []),
  ],
  check: (spec, link, rescueName) => {
    const data = link.linkinfo?.info_data ?? {};
    const problems: string[] = [];
    if (data.mode !== spec.mode) problems.push(`bond ${spec.name} has mode ${String(data.mode)}, not ${spec.mode}`);
    if (spec.miimon !== undefined && data.miimon !== spec.miimon) problems.push(`bond ${spec.name} has miimon ${String(data.miimon)}, not ${spec.miimon}`);
    const primary = spec.primary === undefined ? undefined : rescueName(spec.primary);
    if (data.primary !== primary)
      problems.push(`bond ${spec.name} has primary ${String(data.primary ?? 'none')}, not ${primary ?? 'none'} (was ${spec.primary ?? 'none'})`);
    return problems;
  },
  probe: ['type', 'bond'],
};

const vlan: LinkKind<'vlan'> = {
  kind: 'vlan',
  module: '8021q',
  moduleOptions: [],
  hasMembers: false,
  membersTakeMtu: false,
  plan: (link, data) =>
    typeof data.id !== 'number' || typeof link.link !== 'string'
      ? { skip: 'VLAN without a parent interface or id' }
      : { vlan: { parent: link.link, id: data.id, protocol: typeof data.protocol === 'string' ? data.protocol : '802.1Q' }, linkOptions: [] },
  create: (i) => [
    'link',
    { dev: i.vlan!.parent },
    'name',
    { dev: i.name },
    'address',
    i.mac,
    'type',
    'vlan',
    'id',
    String(i.vlan!.id),
    'protocol',
    i.vlan!.protocol,
  ],
  describe: (i) => `VLAN ${i.vlan!.id} on ${i.vlan!.parent}, re-created with MAC ${i.mac}`,
  build: (spec) => [['ip', 'link', 'add', 'link', spec.parent, 'name', spec.name, 'type', 'vlan', 'id', String(spec.id)]],
  check: (spec, link, rescueName) => {
    const data = link.linkinfo?.info_data ?? {};
    const parent = rescueName(spec.parent);
    const problems: string[] = [];
    if (data.id !== spec.id) problems.push(`VLAN ${spec.name} has id ${String(data.id)}, not ${spec.id}`);
    if (link.link !== parent) problems.push(`VLAN ${spec.name} is on ${link.link ?? 'nothing'}, not ${parent} (was ${spec.parent})`);
    return problems;
  },
  // The kernel refuses a VLAN on lo even with 8021q loaded: on a veth, then.
  probe: ['link', 'PARENT', 'type', 'vlan', 'id', '2'],
  identity: (link, parent) => `vlan${String(link.linkinfo?.info_data?.id)}@${parent}`,
};

const bridge: LinkKind<'bridge'> = {
  kind: 'bridge',
  module: 'bridge',
  moduleOptions: [],
  hasMembers: true,
  membersTakeMtu: false,
  plan: (link, data, notes) => {
    if (data.vlan_filtering === 1) notes.push(`bridge ${link.ifname}: VLAN filtering is on; its VLAN table is not restored`);
    return { linkOptions: linkOptions(data, BRIDGE_OPTIONS) };
  },
  create: typed('bridge'),
  describe: described('bridge'),
  build: (spec) => [['ip', 'link', 'add', 'name', spec.name, 'type', 'bridge'], ...enslave(spec)],
  check: () => [],
  probe: ['type', 'bridge'],
};

const dummy: LinkKind<'dummy'> = {
  kind: 'dummy',
  module: 'dummy',
  moduleOptions: ['numdummies=0'],
  hasMembers: false,
  membersTakeMtu: false,
  plan: () => ({ linkOptions: [] }),
  create: typed('dummy'),
  describe: described('dummy'),
  build: (spec) => [['ip', 'link', 'add', 'name', spec.name, 'type', 'dummy']],
  check: () => [],
  probe: ['type', 'dummy'],
};

/** Every virtual kind, by `info_kind`. */
export const LINK_KINDS: { [K in VirtualKind]: LinkKind<K> } = { bond, vlan, bridge, dummy };

/** The entry for an `info_kind`, if the rescue system can re-create links of that kind. */
export function linkKind(kind: string | undefined): LinkKind | undefined {
  return kind !== undefined && Object.hasOwn(LINK_KINDS, kind) ? (LINK_KINDS[kind as VirtualKind] as LinkKind) : undefined;
}

/** The test-server commands that build `spec`, through its kind's entry. */
export function buildLink(spec: LinkSpec): string[][] {
  return (LINK_KINDS[spec.kind] as LinkKind).build(spec as never);
}

/** What is wrong with `link` as `spec` says it should be, through its kind's entry. */
export function checkLink(spec: LinkSpec, link: ShownLink, rescueName: (old: string) => string): string[] {
  return (LINK_KINDS[spec.kind] as LinkKind).check(spec as never, link, rescueName);
}
