/**
 * The observable network of a (test) host, read over ssh, and the comparison with what a scenario says it
 * must be. Interfaces are matched by MAC, because the rescue kernel names them differently.
 */
import { checkLink, LINK_KINDS, linkKind } from '../../network/link-kinds.js';
import type { ServerScenario } from './server-scenario.js';

/** One interface as `ip -j addr` shows it. */
export interface IpAddrJson {
  ifname: string;
  address?: string;
  addr_info: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** One route as `ip -j route` shows it. */
export interface IpRouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
}

/** One link as `ip -j -d link` shows it: kind, bond/VLAN data, master, a bond member's permanent MAC. */
export interface IpLinkJson {
  ifname: string;
  address?: string;
  permaddr?: string;
  master?: string;
  /** A VLAN's parent. */
  link?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** What was read from the host. */
export interface NetworkState {
  addrs: IpAddrJson[];
  routes4: IpRouteJson[];
  routes6: IpRouteJson[];
  /** Link details; without them NICs are found by their current MAC (a bond member's is the bond's). */
  links?: IpLinkJson[];
  resolvConf: string;
}

/** The shell command that prints a NetworkState as five sections separated by marker lines. */
export const READ_NETWORK =
  'ip -j addr; echo @@; ip -j -4 route show table main; echo @@; ip -j -6 route show table main; echo @@; ip -j -d link show; echo @@; cat /etc/resolv.conf';

/** Parses READ_NETWORK's output (and its older four-section form, without link details). */
export function parseNetworkState(stdout: string): NetworkState {
  const parts = stdout.split('\n@@\n');
  const [addrs, routes4, routes6] = parts;
  const links = parts.length >= 5 ? (JSON.parse(parts[3]) as IpLinkJson[]) : undefined;
  const resolvConf = parts[parts.length >= 5 ? 4 : 3] ?? '';
  return { addrs: JSON.parse(addrs), routes4: JSON.parse(routes4), routes6: JSON.parse(routes6), links, resolvConf };
}

/** The MAC of every re-created link (bond, VLAN, bridge, dummy) by name: they must carry the old ones. */
export function virtualLinkMacs(state: NetworkState): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of state.links ?? []) {
    if (linkKind(l.linkinfo?.info_kind) && l.address) out[l.ifname] = l.address.toLowerCase();
  }
  return out;
}

/**
 * Every difference between the scenario's network and the state (empty = restored): each address on the
 * interface with the NIC's MAC, each bond, VLAN, bridge and dummy under its old name with what its kind's entry
 * checks (mode, id, parent, …), its members (NICs by permanent MAC) and its addresses, each route via the same gateway on that interface, each
 * nameserver and search domain.
 */
export function networkDifferences(expected: Pick<ServerScenario, 'nics' | 'links' | 'routes' | 'nameservers' | 'search'>, state: NetworkState): string[] {
  const problems: string[] = [];
  const addrsByName = new Map(state.addrs.map((a) => [a.ifname, a]));
  // A NIC is a link of no kind; a bond member shows the bond's MAC as its address, its own as permaddr.
  const nicByMac = state.links
    ? new Map(state.links.filter((l) => !l.linkinfo?.info_kind && (l.permaddr ?? l.address)).map((l) => [(l.permaddr ?? l.address)!.toLowerCase(), l.ifname]))
    : new Map(state.addrs.filter((a) => a.address).map((a) => [a.address!.toLowerCase(), a.ifname]));
  const nameFor = new Map<string, string>();
  const checkAddresses = (ifname: string, wanted: string[], what: string) => {
    const have = new Set((addrsByName.get(ifname)?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    for (const cidr of wanted) if (!have.has(cidr)) problems.push(`${cidr} missing on ${ifname} (${what}); it has ${[...have].join(' ')}`);
  };
  for (const nic of expected.nics) {
    const ifname = nicByMac.get(nic.mac.toLowerCase());
    if (!ifname) {
      problems.push(`no interface with MAC ${nic.mac} (was ${nic.name})`);
      continue;
    }
    nameFor.set(nic.name, ifname);
    checkAddresses(ifname, [...nic.ipv4, ...nic.ipv6], `MAC ${nic.mac}, was ${nic.name}`);
  }
  for (const spec of expected.links ?? []) {
    if (!state.links) {
      problems.push(`${spec.kind} ${spec.name}: no link details were read`);
      continue;
    }
    const link = state.links.find((l) => l.ifname === spec.name);
    const kind = link?.linkinfo?.info_kind;
    if (!link || kind !== spec.kind) {
      problems.push(`no ${spec.kind} ${spec.name}${link ? ` (${spec.name} is ${kind ?? 'a NIC'})` : ''}`);
      continue;
    }
    nameFor.set(spec.name, spec.name);
    problems.push(...checkLink(spec, link, (old) => nameFor.get(old) ?? old));
    if ('members' in spec && LINK_KINDS[spec.kind].hasMembers) {
      const want = spec.members.map((m) => {
        const nic = expected.nics.find((n) => n.name === m);
        return nic ? `${nicByMac.get(nic.mac.toLowerCase()) ?? '?'} (MAC ${nic.mac}, was ${m})` : `${m} (not a NIC of the scenario)`;
      });
      const have = state.links
        .filter((l) => l.master === spec.name)
        .map((l) => {
          const mac = (l.permaddr ?? l.address ?? '').toLowerCase();
          const nic = expected.nics.find((n) => n.mac.toLowerCase() === mac);
          return `${l.ifname} (MAC ${nic?.mac ?? mac}, was ${nic?.name ?? 'no NIC of the scenario'})`;
        });
      if (JSON.stringify([...want].sort()) !== JSON.stringify([...have].sort())) {
        problems.push(`${spec.kind} ${spec.name} has members ${have.join(', ') || 'none'}; wanted ${want.join(', ')}`);
      }
    }
    checkAddresses(spec.name, [...spec.ipv4, ...spec.ipv6], `${spec.kind} ${spec.name}`);
  }
  for (const args of expected.routes) {
    const dst = args[0];
    const via = args[args.indexOf('via') + 1];
    const oldDev = args[args.indexOf('dev') + 1];
    const dev = nameFor.get(oldDev) ?? oldDev;
    const table = args.some((a) => a.includes(':')) ? state.routes6 : state.routes4;
    const found = table.some((r) => r.dst === dst && r.gateway === via && r.dev === dev);
    if (!found) problems.push(`route ${dst} via ${via} dev ${dev} (was ${oldDev}) missing`);
  }
  const resolv = state.resolvConf.split('\n').map((l) => l.trim().split(/\s+/));
  for (const ns of expected.nameservers) {
    if (!resolv.some(([k, v]) => k === 'nameserver' && v === ns)) problems.push(`nameserver ${ns} missing from resolv.conf`);
  }
  const search = resolv.find(([k]) => k === 'search')?.slice(1) ?? [];
  for (const domain of expected.search) if (!search.includes(domain)) problems.push(`search domain ${domain} missing from resolv.conf`);
  return problems;
}
