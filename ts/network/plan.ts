/**
 * Decides what the rescue system must do to bring the host's network back: a pure function from the capture to a
 * plan. Interfaces are found by MAC (the rescue kernel may name them differently); virtual ones (the kinds of
 * link-kinds.ts) are re-created under their old names. Everything the plan leaves out is listed with its reason.
 */
import { MAC_PATTERN, type IpAddress, type IpLink, type IpRoute, type IpRule, type NetworkCapture } from './capture.js';
import { linkKind, type VirtualKind } from './link-kinds.js';

export type Family = 'inet' | 'inet6';

/** How the rescue system gets hold of an interface. */
export type InterfaceKind = 'loopback' | 'nic' | VirtualKind;

/** One address to put back. Dynamic ones (DHCP, RA) are restored statically too, so a lost lease strands no one. */
export interface PlannedAddress {
  family: Family;
  /** `local/prefixlen` */
  cidr: string;
  /** peer of a point-to-point address, `peer/prefixlen` */
  peer?: string;
  broadcast?: string;
  dynamic: boolean;
  noprefixroute: boolean;
}

/** One interface of the old system and what to restore on it. */
export interface PlannedInterface {
  /** Shell variable that holds the interface's name in the rescue system (`if_1`, …). */
  id: string;
  /** The old name (what the operator knows it by). */
  name: string;
  kind: InterfaceKind;
  /** NIC: the MAC to find it by (its permanent MAC). Virtual: the MAC to give it. */
  mac: string;
  /** A missing interface is no failure (veth: containers' plumbing, in tests a stand-in for a NIC). */
  optional: boolean;
  mtu: number;
  up: boolean;
  /** Old name of the bond or bridge it belongs to. */
  master?: string;
  vlan?: { parent: string; id: number; protocol: string };
  /** `ip link add … type bond|bridge` options, as name/value pairs. */
  linkOptions: [string, string][];
  /** Bond: the old name of the member it prefers (`primary`), set once the members are in. */
  primary?: string;
  addresses: PlannedAddress[];
  /** Run a DHCP client on it (it had a dynamic IPv4 address). */
  dhcp4: boolean;
  /** Accept router advertisements on it (it had a dynamic IPv6 address). */
  acceptRa: boolean;
}

/** One route to put back, in an order that works. `dev` is the old interface name. */
export interface PlannedRoute {
  family: Family;
  /** Table number, or main. */
  table: string;
  type: string;
  dst: string;
  gateway?: { family: Family; host: string };
  dev?: string;
  onlink: boolean;
  metric?: number;
  prefsrc?: string;
  scope?: string;
  protocol?: string;
  pref?: string;
  /** Route metrics such as `mtu 1400`, as name/value pairs. */
  metrics: [string, string][];
  /** Learned from DHCP or RA (restored statically as well). */
  dynamic: boolean;
}

/** One policy routing rule. `args` are ip arguments; `{ dev }` stands for an interface by its old name. */
export interface PlannedRule {
  family: Family;
  priority: number;
  args: (string | { dev: string })[];
}

/** Nameservers and search domains for resolv.conf. */
export interface PlannedDns {
  nameservers: string[];
  search: string[];
  options: string[];
  /** Where they came from (`/etc/resolv.conf`, or resolved's upstream file). */
  source: string;
}

/** Something of the old configuration that is not restored, and why. */
export interface SkippedItem {
  what: string;
  reason: string;
}

/** What the restore script does, in order: interfaces (parents first), addresses, routes, rules, DNS. */
export interface NetworkPlan {
  interfaces: PlannedInterface[];
  routes: PlannedRoute[];
  rules: PlannedRule[];
  dns?: PlannedDns;
  skipped: SkippedItem[];
  notes: string[];
}

const ROUTE_TYPES = new Set(['unicast', 'blackhole', 'unreachable', 'prohibit', 'throw']);
// Protocol names every iproute2 knows (its default rt_protos); anything else is passed as "static".
const PROTOCOLS = new Set(['boot', 'static', 'dhcp', 'ra', 'redirect', 'zebra', 'bird', 'babel', 'bgp', 'isis', 'ospf', 'rip', 'eigrp', 'keepalived']);
const ROUTE_METRICS = new Set(['mtu', 'advmss', 'window', 'rtt', 'rttvar', 'ssthresh', 'cwnd', 'initcwnd', 'initrwnd', 'hoplimit', 'reordering', 'quickack']);
const STUB_RESOLVERS = new Set(['127.0.0.53', '127.0.0.54']);

/** Plans the restore of a captured network; pure. */
export function planNetwork(capture: NetworkCapture): NetworkPlan {
  const skipped: SkippedItem[] = [];
  const notes = [...capture.notes];
  const interfaces = planInterfaces(capture.links, skipped, notes);
  const byName = new Map(interfaces.map((i) => [i.name, i]));
  const routes = [
    ...planRoutes('inet', capture.routes4, byName, capture.rtTables, skipped),
    ...planRoutes('inet6', capture.routes6, byName, capture.rtTables, skipped),
  ];
  const rules = [
    ...planRules('inet', capture.rules4, byName, capture.rtTables, skipped),
    ...planRules('inet6', capture.rules6, byName, capture.rtTables, skipped),
  ];
  const dns = planDns(capture, skipped);
  return { interfaces, routes: orderRoutes(routes), rules, dns, skipped, notes };
}

function kindOf(link: IpLink): InterfaceKind | { skip: string } {
  if (link.link_type === 'loopback') return 'loopback';
  const kind = link.linkinfo?.info_kind;
  if (!link.address || !MAC_PATTERN.test(link.address) || /^(00:)+00$/.test(link.address)) {
    return { skip: `${kind ?? link.link_type} interface without a MAC address to find it by` };
  }
  if (kind === undefined || kind === 'veth') return 'nic';
  if (linkKind(kind)) return kind as VirtualKind;
  return { skip: `${kind} interfaces cannot be re-created from a capture` };
}

function planInterfaces(links: IpLink[], skipped: SkippedItem[], notes: string[]): PlannedInterface[] {
  const planned = new Map<string, PlannedInterface>();
  for (const link of links) {
    const kind = kindOf(link);
    if (typeof kind !== 'string') {
      skipped.push({ what: `interface ${link.ifname}`, reason: kind.skip });
      continue;
    }
    const data = link.linkinfo?.info_data ?? {};
    const iface: PlannedInterface = {
      id: '',
      name: link.ifname,
      kind,
      mac: kind === 'loopback' ? '' : (link.permaddr ?? link.address ?? ''),
      optional: link.linkinfo?.info_kind === 'veth',
      mtu: link.mtu,
      up: link.flags.includes('UP'),
      master: link.master,
      linkOptions: [],
      addresses: planAddresses(link, kind, skipped),
      dhcp4: false,
      acceptRa: false,
    };
    const attributes = linkKind(kind)?.plan(link, data, notes);
    if (attributes && 'skip' in attributes) {
      skipped.push({ what: `interface ${link.ifname}`, reason: attributes.skip });
      continue;
    }
    Object.assign(iface, attributes);
    iface.dhcp4 = iface.addresses.some((a) => a.dynamic && a.family === 'inet');
    iface.acceptRa = iface.addresses.some((a) => a.dynamic && a.family === 'inet6');
    // A NIC that was down with nothing on it may well be absent in the rescue system: no failure then.
    if (kind === 'nic' && !iface.up && iface.addresses.length === 0 && !iface.master) iface.optional = true;
    planned.set(link.ifname, iface);
  }

  // Drop what hangs off a skipped interface, repeatedly (a VLAN on a VLAN on a skipped one).
  for (let changed = true; changed; ) {
    changed = false;
    for (const iface of planned.values()) {
      const parent = iface.vlan?.parent;
      if (parent !== undefined && !planned.has(parent)) {
        skipped.push({ what: `interface ${iface.name}`, reason: `its parent ${parent} is not restored` });
        planned.delete(iface.name);
        changed = true;
      } else if (iface.master !== undefined && !planned.has(iface.master)) {
        skipped.push({ what: `membership of ${iface.name} in ${iface.master}`, reason: `${iface.master} is not restored` });
        iface.master = undefined;
      }
    }
  }
  // A bond's primary names one of its members; one that is not restored cannot be preferred.
  for (const bond of planned.values()) {
    if (bond.primary !== undefined && planned.get(bond.primary)?.master !== bond.name) {
      skipped.push({ what: `primary ${bond.primary} of ${bond.name}`, reason: `${bond.primary} is not a restored member of ${bond.name}` });
      bond.primary = undefined;
    }
  }
  const ordered = dependencyOrder([...planned.values()]);
  for (const [i, iface] of ordered.entries()) iface.id = `if_${i + 1}`;
  return ordered;
}

/** Parents before children: NICs, then bonds (members first), VLANs (parent first), bridges (members first). */
function dependencyOrder(ifaces: PlannedInterface[]): PlannedInterface[] {
  const byName = new Map(ifaces.map((i) => [i.name, i]));
  const deps = (i: PlannedInterface) => [...(i.vlan ? [i.vlan.parent] : []), ...ifaces.filter((m) => m.master === i.name).map((m) => m.name)];
  const done = new Set<string>();
  const out: PlannedInterface[] = [];
  const visit = (i: PlannedInterface, path: Set<string>) => {
    if (done.has(i.name) || path.has(i.name)) return;
    path.add(i.name);
    for (const d of deps(i)) {
      const dep = byName.get(d);
      if (dep) visit(dep, path);
    }
    done.add(i.name);
    out.push(i);
  };
  // Loopback first, then the capture's order (the kernel's ifindex order) within the dependency constraints.
  for (const i of [...ifaces].sort((a, b) => Number(b.kind === 'loopback') - Number(a.kind === 'loopback'))) {
    visit(i, new Set());
  }
  return out;
}

function planAddresses(link: IpLink, kind: InterfaceKind, skipped: SkippedItem[]): PlannedAddress[] {
  const out: PlannedAddress[] = [];
  for (const a of link.addr_info) {
    // Link-local and host-scope (127.0.0.1, ::1) addresses come back by themselves.
    if (a.scope === 'link' || a.scope === 'host') continue;
    const cidr = `${a.local}/${a.prefixlen}`;
    if (a.temporary) continue; // IPv6 privacy addresses: the kernel makes new ones
    if (a.dadfailed) {
      skipped.push({ what: `address ${cidr} on ${link.ifname}`, reason: 'duplicate address detection failed for it' });
      continue;
    }
    if (kind === 'loopback' && (a.local === '127.0.0.1' || a.local === '::1')) continue;
    out.push({
      family: a.family,
      cidr,
      peer: a.address !== undefined && a.address !== a.local ? `${a.address}/${a.prefixlen}` : undefined,
      broadcast: a.broadcast,
      dynamic: isDynamic(a),
      noprefixroute: a.noprefixroute === true,
    });
  }
  return out;
}

function isDynamic(a: IpAddress): boolean {
  return a.dynamic === true;
}

function tableOf(raw: string | undefined, rtTables: Record<string, number>): string | undefined {
  if (raw === undefined || raw === 'main') return 'main';
  if (raw === 'local' || raw === 'default') return raw;
  if (/^\d+$/.test(raw)) return raw;
  const n = rtTables[raw];
  return n === undefined ? undefined : String(n);
}

function planRoutes(
  family: Family,
  routes: IpRoute[],
  byName: Map<string, PlannedInterface>,
  rtTables: Record<string, number>,
  skipped: SkippedItem[],
): PlannedRoute[] {
  const out: PlannedRoute[] = [];
  for (const r of routes) {
    // The kernel makes these from addresses and links by itself; re-adding them would only fail.
    if (r.protocol === 'kernel') continue;
    const type = r.type ?? 'unicast';
    const what = `route ${family === 'inet6' ? '-6 ' : ''}${r.type ? `${r.type} ` : ''}${r.dst}${r.dev ? ` dev ${r.dev}` : ''}${
      r.table ? ` table ${r.table}` : ''
    }`;
    if (!ROUTE_TYPES.has(type)) {
      skipped.push({ what, reason: `${type} routes are not restored` });
      continue;
    }
    if (r.nexthops) {
      skipped.push({ what, reason: 'multipath routes are not restored' });
      continue;
    }
    const table = tableOf(r.table, rtTables);
    if (table === undefined) {
      skipped.push({ what, reason: `routing table ${r.table} has no number in the host's rt_tables` });
      continue;
    }
    if (r.dev !== undefined && r.dev !== 'lo' && !byName.has(r.dev)) {
      skipped.push({ what, reason: `interface ${r.dev} is not restored` });
      continue;
    }
    const gateway = r.gateway
      ? { family, host: r.gateway }
      : r.via && (r.via.family === 'inet' || r.via.family === 'inet6')
        ? { family: r.via.family as Family, host: r.via.host }
        : undefined;
    const metrics: [string, string][] = [];
    for (const m of r.metrics ?? []) {
      for (const [k, v] of Object.entries(m)) {
        if (ROUTE_METRICS.has(k) && typeof v === 'number') metrics.push([k, String(v)]);
        else skipped.push({ what: `${k} of ${what}`, reason: 'route attribute not restored' });
      }
    }
    out.push({
      family,
      table,
      type,
      dst: r.dst,
      gateway,
      dev: r.dev,
      onlink: (r.flags ?? []).includes('onlink'),
      metric: r.metric,
      prefsrc: r.prefsrc,
      scope: r.scope,
      protocol: r.protocol === undefined ? undefined : PROTOCOLS.has(r.protocol) ? r.protocol : 'static',
      pref: r.pref !== undefined && r.pref !== 'medium' ? r.pref : undefined,
      metrics,
      dynamic: r.protocol === 'dhcp' || r.protocol === 'ra',
    });
  }
  return out;
}

/** On-link routes (no gateway, or gateway flagged onlink) first: a `via` needs its gateway reachable already. */
function orderRoutes(routes: PlannedRoute[]): PlannedRoute[] {
  const rank = (r: PlannedRoute) => (r.gateway === undefined ? 0 : r.onlink ? 1 : 2);
  return routes
    .map((r, i) => ({ r, i }))
    .sort((a, b) => rank(a.r) - rank(b.r) || a.i - b.i)
    .map(({ r }) => r);
}

// The rules every kernel starts with; restoring them would duplicate them.
function isDefaultRule(family: Family, r: IpRule): boolean {
  const keys = Object.keys(r).filter((k) => k !== 'priority' && k !== 'src' && k !== 'table');
  if (keys.length > 0 || r.src !== 'all') return false;
  return (
    (r.priority === 0 && r.table === 'local') ||
    (r.priority === 32766 && r.table === 'main') ||
    (family === 'inet' && r.priority === 32767 && r.table === 'default')
  );
}

const RULE_ACTIONS = new Set(['unreachable', 'prohibit', 'blackhole', 'nop', 'goto']);

function planRules(
  family: Family,
  rules: IpRule[],
  byName: Map<string, PlannedInterface>,
  rtTables: Record<string, number>,
  skipped: SkippedItem[],
): PlannedRule[] {
  const out: PlannedRule[] = [];
  next: for (const r of rules) {
    if (isDefaultRule(family, r)) continue;
    const what = `rule ${family === 'inet6' ? '-6 ' : ''}priority ${r.priority}`;
    const args: (string | { dev: string })[] = ['priority', String(r.priority)];
    const skip = (reason: string) => skipped.push({ what, reason });
    const str = (k: string) => (typeof r[k] === 'string' || typeof r[k] === 'number' ? String(r[k]) : undefined);
    for (const key of Object.keys(r)) {
      const v = str(key);
      switch (key) {
        case 'priority':
        case 'srclen':
        case 'dstlen':
        case 'fwmask':
        case 'uid_end':
        case 'iif_detached':
        case 'oif_detached':
        case 'goto':
          break;
        case 'not':
          args.push('not');
          break;
        case 'src':
          if (v !== 'all') args.push('from', r.srclen !== undefined ? `${v}/${r.srclen}` : `${v}`);
          break;
        case 'dst':
          if (v !== 'all') args.push('to', r.dstlen !== undefined ? `${v}/${r.dstlen}` : `${v}`);
          break;
        case 'tos':
        case 'ipproto':
        case 'sport':
        case 'dport':
        case 'suppress_prefixlen':
        case 'suppress_ifgroup':
          if (v === undefined) {
            skip(`rule attribute ${key} has an unexpected form`);
            continue next;
          }
          args.push(key, v);
          break;
        case 'fwmark':
          args.push('fwmark', r.fwmask !== undefined ? `${v}/${String(r.fwmask)}` : `${v}`);
          break;
        case 'iif':
        case 'oif':
          if (v === undefined || (v !== 'lo' && !byName.has(v))) {
            skip(`interface ${String(r[key])} is not restored`);
            continue next;
          }
          args.push(key, { dev: v });
          break;
        case 'uid_start':
          args.push('uidrange', `${v}-${str('uid_end')}`);
          break;
        case 'table': {
          const table = tableOf(v, rtTables);
          if (table === undefined) {
            skip(`routing table ${v} has no number in the host's rt_tables`);
            continue next;
          }
          args.push('table', table);
          break;
        }
        case 'action':
          if (!RULE_ACTIONS.has(v ?? '')) {
            skip(`rule action ${v} is not restored`);
            continue next;
          }
          args.push(v as string);
          if (v === 'goto') args.push(str('goto') ?? '');
          break;
        case 'protocol':
          args.push('protocol', PROTOCOLS.has(v ?? '') ? (v as string) : 'static');
          break;
        default:
          skip(`rule attribute ${key} is not restored`);
          continue next;
      }
    }
    out.push({ family, priority: r.priority, args });
  }
  return out;
}

function parseResolvConf(text: string): { nameservers: string[]; search: string[]; options: string[] } {
  const nameservers: string[] = [];
  let search: string[] = [];
  const options: string[] = [];
  for (const raw of text.split('\n')) {
    const [key, ...values] = raw
      .replace(/[#;].*/, '')
      .trim()
      .split(/\s+/);
    if (key === 'nameserver' && values[0] && /^[0-9a-fA-F.:%A-Za-z-]+$/.test(values[0])) nameservers.push(values[0]);
    else if (key === 'search' || key === 'domain') search = values.filter((d) => /^[A-Za-z0-9._-]+$/.test(d));
    else if (key === 'options') options.push(...values.filter((o) => /^[A-Za-z0-9:._-]+$/.test(o)));
  }
  return { nameservers, search, options };
}

function isLoopback(ns: string): boolean {
  return ns.startsWith('127.') || ns === '::1';
}

function planDns(capture: NetworkCapture, skipped: SkippedItem[]): PlannedDns | undefined {
  if (capture.resolvConf === undefined) {
    skipped.push({ what: 'nameservers', reason: 'the host has no /etc/resolv.conf' });
    return undefined;
  }
  let conf = parseResolvConf(capture.resolvConf);
  let source = '/etc/resolv.conf';
  if (conf.nameservers.some((ns) => STUB_RESOLVERS.has(ns))) {
    if (capture.resolvedResolvConf === undefined) {
      skipped.push({
        what: 'nameservers',
        reason: "resolv.conf points at systemd-resolved's stub and /run/systemd/resolve/resolv.conf was not there",
      });
      return undefined;
    }
    const upstream = parseResolvConf(capture.resolvedResolvConf);
    conf = { ...upstream, search: upstream.search.length > 0 ? upstream.search : conf.search };
    source = "/run/systemd/resolve/resolv.conf (systemd-resolved's upstream servers)";
  }
  for (const ns of conf.nameservers.filter(isLoopback)) {
    skipped.push({ what: `nameserver ${ns}`, reason: 'a resolver on the host itself does not run in the rescue system' });
  }
  const nameservers = conf.nameservers.filter((ns) => !isLoopback(ns));
  if (nameservers.length === 0) {
    if (conf.nameservers.length === 0) skipped.push({ what: 'nameservers', reason: `${source} lists none` });
    return undefined;
  }
  return { nameservers, search: conf.search, options: conf.options.filter((o) => o !== 'trust-ad'), source };
}
