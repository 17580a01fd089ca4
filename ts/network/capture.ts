/**
 * Parses what scripts/capture-network.sh printed into a typed, validated capture of the host's network.
 * Pure: the input is the parsed script output, so it is tested on fixtures captured with real `ip -j`.
 */
import { ExitCode, EmergencyError } from '../errors.js';
import type { ScriptOutput, Section } from '../sections.js';

/** The network capture could not be used: a section is missing or does not hold what it should. */
export class CaptureError extends EmergencyError {
  constructor(message: string, detail?: string) {
    super(
      message,
      'The network of this host could not be read, so it could not be restored after the rescue; nothing was ' +
        'changed. Run `ip -j -d addr` and `ip -j route show table all` on the host to see why, and report it.',
      ExitCode.Refused,
      detail,
    );
  }
}

/** One address of `ip -j addr` (the fields the planner uses). */
export interface IpAddress {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  /** The peer of a point-to-point address (`ip addr add A peer B/32`). */
  address?: string;
  broadcast?: string;
  scope?: string;
  dynamic?: boolean;
  noprefixroute?: boolean;
  temporary?: boolean;
  dadfailed?: boolean;
  valid_life_time?: number;
  preferred_life_time?: number;
}

/** One link of `ip -j -d addr` with its details and addresses. */
export interface IpLink {
  ifindex: number;
  ifname: string;
  /** The lower device (VLAN parent, veth peer); null when it lives in another namespace. */
  link?: string | null;
  master?: string;
  flags: string[];
  mtu: number;
  link_type: string;
  address?: string;
  /** The permanent MAC when the current one differs (bond members take the bond's MAC). */
  permaddr?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_kind?: string };
  addr_info: IpAddress[];
}

/** One route of `ip -j route show table all`. */
export interface IpRoute {
  type?: string;
  dst: string;
  gateway?: string;
  via?: { family: string; host: string };
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  flags?: string[];
  metrics?: Record<string, unknown>[];
  nexthops?: unknown[];
  pref?: string;
  [key: string]: unknown;
}

/** One rule of `ip -j rule show`; the planner rejects keys it does not know. */
export interface IpRule {
  priority: number;
  [key: string]: unknown;
}

/** The host's network as captured: the raw `ip -j` data, table names and resolver configuration. */
export interface NetworkCapture {
  links: IpLink[];
  routes4: IpRoute[];
  routes6: IpRoute[];
  rules4: IpRule[];
  rules6: IpRule[];
  /** Routing table names from the host's rt_tables files, name → number. */
  rtTables: Record<string, number>;
  /** /etc/resolv.conf, undefined when the host has none. */
  resolvConf?: string;
  /** systemd-resolved's upstream configuration (/run/systemd/resolve/resolv.conf), when present. */
  resolvedResolvConf?: string;
  /** Things worth telling the operator about the capture itself (e.g. IPv6 disabled). */
  notes: string[];
}

const IP_SECTIONS = ['ip-addr', 'ip-route4', 'ip-route6', 'ip-rule4', 'ip-rule6'] as const;

/** True when the host's ip could not produce the capture and it must be re-run with the image's ip. */
export function captureNeedsImageIp(output: ScriptOutput): boolean {
  if (output.sections.some((s) => s.name === 'capture-error')) return true;
  // An old ip may print JSON for links but not for rules or routes: the image's ip does all of them.
  for (const name of IP_SECTIONS) {
    const s = output.sections.find((x) => x.name === name);
    if (!s) return true;
    if (s.args[0] === 'failed') {
      if (name.endsWith('6') && ipv6Unavailable(s)) continue;
      return true;
    }
    if (!isJsonArray(s.body)) return true;
  }
  return false;
}

/** Validates every section of the capture script's output and returns the capture; throws CaptureError. */
export function parseNetworkCapture(output: ScriptOutput): NetworkCapture {
  const error = output.sections.find((s) => s.name === 'capture-error');
  if (error) {
    throw new CaptureError(
      `the network capture failed on the host (${error.args.join(' ') || 'no reason given'})`,
      error.body || undefined,
    );
  }
  const notes: string[] = [];
  const json = (name: (typeof IP_SECTIONS)[number]): unknown[] => {
    const s = section(output, name);
    if (s.args[0] === 'failed') {
      if (name.endsWith('6') && ipv6Unavailable(s)) {
        if (!notes.includes('IPv6 is disabled on the host')) notes.push('IPv6 is disabled on the host');
        return [];
      }
      throw new CaptureError(`capture section ${name}: ip failed with exit code ${s.args[1] ?? '?'}`, s.body);
    }
    let value: unknown;
    try {
      value = JSON.parse(s.body);
    } catch (e) {
      throw new CaptureError(`capture section ${name} is not JSON: ${(e as Error).message}`, s.body.slice(0, 2000));
    }
    if (!Array.isArray(value)) throw new CaptureError(`capture section ${name} is not a JSON array`);
    return value;
  };

  const links = json('ip-addr').map((l, i) => checkLink(l, `ip-addr[${i}]`));
  const routes4 = json('ip-route4').map((r, i) => checkRoute(r, `ip-route4[${i}]`));
  const routes6 = json('ip-route6').map((r, i) => checkRoute(r, `ip-route6[${i}]`));
  const rules4 = json('ip-rule4').map((r, i) => checkRule(r, `ip-rule4[${i}]`));
  const rules6 = json('ip-rule6').map((r, i) => checkRule(r, `ip-rule6[${i}]`));
  if (!links.some((l) => l.link_type === 'loopback')) {
    throw new CaptureError('capture section ip-addr has no loopback interface: it is not a full `ip addr` listing');
  }

  const rtTables = parseRtTables(section(output, 'rt-tables').body);
  const resolv = section(output, 'resolv-conf');
  const resolvConf = resolv.args[0] === 'missing' ? undefined : resolv.body;
  const resolved = output.sections.find((s) => s.name === 'resolved-resolv-conf');
  const resolvedResolvConf = resolved && resolved.args[0] !== 'missing' ? resolved.body : undefined;
  return { links, routes4, routes6, rules4, rules6, rtTables, resolvConf, resolvedResolvConf, notes };
}

/** Table names from rt_tables content (`NUMBER NAME` lines, `#` comments). Later files override earlier ones. */
export function parseRtTables(text: string): Record<string, number> {
  const tables: Record<string, number> = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^(0x[0-9a-fA-F]+|\d+)\s+(\S+)$/.exec(line);
    if (m) tables[m[2]] = Number(m[1]);
  }
  return tables;
}

function section(output: ScriptOutput, name: string): Section {
  const s = output.sections.find((x) => x.name === name);
  if (!s) throw new CaptureError(`the network capture has no ${name} section`);
  return s;
}

function ipv6Unavailable(s: Section): boolean {
  return /not supported|address family|ipv6/i.test(s.body);
}

function isJsonArray(text: string): boolean {
  try {
    return Array.isArray(JSON.parse(text));
  } catch {
    return false;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function broken(where: string, what: string): never {
  throw new CaptureError(`capture section ${where.replace(/\[.*/, '')} is broken: ${where} ${what}`);
}

function want(o: Record<string, unknown>, key: string, type: 'string' | 'number', where: string, optional = false) {
  const v = o[key];
  if (v === undefined && optional) return;
  if (typeof v !== type) broken(where, `has no ${type} "${key}"`);
}

// An interface name as the kernel allows it, and nothing a shell could misread (names are quoted anyway).
const IFNAME = /^[^\s/'"\\$`]{1,15}$/;
/** A MAC as ip and sysfs print it (lower case; InfiniBand's are 20 bytes). */
export const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2})+$/;

function checkLink(v: unknown, where: string): IpLink {
  if (!isObject(v)) broken(where, 'is not an object');
  want(v, 'ifindex', 'number', where);
  want(v, 'ifname', 'string', where);
  want(v, 'mtu', 'number', where);
  want(v, 'link_type', 'string', where);
  want(v, 'address', 'string', where, true);
  want(v, 'permaddr', 'string', where, true);
  want(v, 'master', 'string', where, true);
  if (!IFNAME.test(v.ifname as string)) broken(where, `has an invalid interface name ${JSON.stringify(v.ifname)}`);
  if (!Array.isArray(v.flags)) broken(where, 'has no "flags" list');
  if (v.addr_info !== undefined && !Array.isArray(v.addr_info)) broken(where, '"addr_info" is not a list');
  if (v.linkinfo !== undefined && !isObject(v.linkinfo)) broken(where, '"linkinfo" is not an object');
  for (const key of ['address', 'permaddr'] as const) {
    if (typeof v[key] === 'string') v[key] = (v[key] as string).toLowerCase();
  }
  const addr_info = ((v.addr_info as unknown[] | undefined) ?? []).map((a, i) => {
    const w = `${where}.addr_info[${i}]`;
    if (!isObject(a)) broken(w, 'is not an object');
    if (a.family !== 'inet' && a.family !== 'inet6') return undefined; // e.g. MPLS: not restored
    want(a, 'local', 'string', w);
    want(a, 'prefixlen', 'number', w);
    return a as unknown as IpAddress;
  });
  return { ...(v as unknown as IpLink), addr_info: addr_info.filter((a): a is IpAddress => a !== undefined) };
}

function checkRoute(v: unknown, where: string): IpRoute {
  if (!isObject(v)) broken(where, 'is not an object');
  want(v, 'dst', 'string', where);
  for (const key of ['gateway', 'dev', 'table', 'protocol', 'scope', 'prefsrc', 'type', 'pref']) {
    want(v, key, 'string', where, true);
  }
  want(v, 'metric', 'number', where, true);
  if (v.via !== undefined && (!isObject(v.via) || typeof v.via.host !== 'string')) broken(where, 'has a broken "via"');
  if (v.metrics !== undefined && !Array.isArray(v.metrics)) broken(where, '"metrics" is not a list');
  return v as IpRoute;
}

function checkRule(v: unknown, where: string): IpRule {
  if (!isObject(v)) broken(where, 'is not an object');
  want(v, 'priority', 'number', where);
  return v as IpRule;
}
