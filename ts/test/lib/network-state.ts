/**
 * The observable network of a (test) host, read over ssh, and the comparison with what a scenario says it
 * must be. Interfaces are matched by MAC, because the rescue kernel names them differently.
 */
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

/** What was read from the host. */
export interface NetworkState {
  addrs: IpAddrJson[];
  routes4: IpRouteJson[];
  routes6: IpRouteJson[];
  resolvConf: string;
}

/** The shell command that prints a NetworkState as four sections separated by marker lines. */
export const READ_NETWORK = 'ip -j addr; echo @@; ip -j -4 route show table main; echo @@; ip -j -6 route show table main; echo @@; cat /etc/resolv.conf';

/** Parses READ_NETWORK's output. */
export function parseNetworkState(stdout: string): NetworkState {
  const [addrs, routes4, routes6, resolvConf] = stdout.split('\n@@\n');
  return { addrs: JSON.parse(addrs), routes4: JSON.parse(routes4), routes6: JSON.parse(routes6), resolvConf: resolvConf ?? '' };
}

/**
 * Every difference between the scenario's network and the state (empty = restored): each address on the
 * interface with the NIC's MAC, each route via the same gateway on that interface, each nameserver and
 * search domain.
 */
export function networkDifferences(expected: Pick<ServerScenario, 'nics' | 'routes' | 'nameservers' | 'search'>, state: NetworkState): string[] {
  const problems: string[] = [];
  const byMac = new Map(state.addrs.filter((a) => a.address).map((a) => [a.address!.toLowerCase(), a]));
  const nameFor = new Map<string, string>();
  for (const nic of expected.nics) {
    const iface = byMac.get(nic.mac.toLowerCase());
    if (!iface) {
      problems.push(`no interface with MAC ${nic.mac} (was ${nic.name})`);
      continue;
    }
    nameFor.set(nic.name, iface.ifname);
    const have = new Set(iface.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
    for (const cidr of [...nic.ipv4, ...nic.ipv6]) {
      if (!have.has(cidr)) problems.push(`${cidr} missing on ${iface.ifname} (MAC ${nic.mac}, was ${nic.name}); it has ${[...have].join(' ')}`);
    }
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
