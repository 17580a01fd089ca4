/**
 * Parses what scripts/capture-network.sh printed into a typed, validated capture of the host's network.
 * Pure: the input is the parsed script output, so it is tested on fixtures captured with real `ip -j`.
 */
import { z } from 'zod';
import { describeIssues } from '../boundary/schema.js';
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
/** Every section capture-network.sh prints (the preflight round trip carries them beside preflight.sh's own). */
export const CAPTURE_SECTIONS: readonly string[] = [...IP_SECTIONS, 'rt-tables', 'resolv-conf', 'resolved-resolv-conf', 'capture-unavailable'];

/** True when the host's ip could not produce the capture and it must be re-run with the image's ip. */
export function captureNeedsImageIp(output: ScriptOutput): boolean {
  if (output.sections.some((s) => s.name === 'capture-unavailable')) return true;
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
  const unavailable = output.sections.find((s) => s.name === 'capture-unavailable');
  if (unavailable) {
    throw new CaptureError(`the network capture failed on the host (${unavailable.args.join(' ') || 'no reason given'})`, unavailable.body || undefined);
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

  const links = json('ip-addr').map(checkLink('ip-addr'));
  const routes4 = json('ip-route4').map(checkRoute('ip-route4'));
  const routes6 = json('ip-route6').map(checkRoute('ip-route6'));
  const rules4 = json('ip-rule4').map(checkRule('ip-rule4'));
  const rules6 = json('ip-rule6').map(checkRule('ip-rule6'));
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

// An interface name as the kernel allows it, and nothing a shell could misread (names are quoted anyway).
const IFNAME = /^[^\s/'"\\$`]{1,15}$/;
/** A MAC as ip and sysfs print it (lower case; InfiniBand's are 20 bytes). */
export const MAC_PATTERN = /^[0-9a-f]{2}(:[0-9a-f]{2})+$/;

// The shapes of `ip -j` output the planner relies on, declared once. Objects are loose: ip prints more fields
// than we read, and the planner itself rejects what it cannot restore (rule keys, multipath).
const lowerCase = z.string().transform((v) => v.toLowerCase());
const AddressSchema = z.looseObject({ family: z.enum(['inet', 'inet6']), local: z.string(), prefixlen: z.number() });
const LinkSchema = z.looseObject({
  ifindex: z.number(),
  ifname: z.string().regex(IFNAME, 'an invalid interface name'),
  mtu: z.number(),
  link_type: z.string(),
  address: lowerCase.optional(),
  permaddr: lowerCase.optional(),
  master: z.string().optional(),
  flags: z.array(z.string()),
  linkinfo: z.looseObject({}).optional(),
  // Other families (MPLS, say) are not restored: dropped here rather than refused.
  addr_info: z
    .array(z.looseObject({ family: z.string() }))
    .optional()
    .transform((list) => (list ?? []).filter((a) => a.family === 'inet' || a.family === 'inet6'))
    .pipe(z.array(AddressSchema)),
});
const optionalString = z.string().optional();
const RouteSchema = z.looseObject({
  dst: z.string(),
  gateway: optionalString,
  dev: optionalString,
  table: optionalString,
  protocol: optionalString,
  scope: optionalString,
  prefsrc: optionalString,
  type: optionalString,
  pref: optionalString,
  metric: z.number().optional(),
  via: z.looseObject({ host: z.string() }).optional(),
  metrics: z.array(z.unknown()).optional(),
});
const RuleSchema = z.looseObject({ priority: z.number() });

/** Checks one element of an ip section against its schema; the error names the section, index and field. */
function checked<T>(schema: z.ZodType, section: string) {
  return (v: unknown, i: number): T => {
    const result = schema.safeParse(v);
    if (!result.success) {
      throw new CaptureError(
        `capture section ${section} is broken: ${describeIssues(result.error.issues, 'field')
          .map((p) => `${section}[${i}] ${p}`)
          .join('; ')}`,
      );
    }
    return result.data as T;
  };
}
const checkLink = (section: string) => checked<IpLink>(LinkSchema, section);
const checkRoute = (section: string) => checked<IpRoute>(RouteSchema, section);
const checkRule = (section: string) => checked<IpRule>(RuleSchema, section);
