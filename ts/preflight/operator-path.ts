/**
 * The operator's path, pure (issue 9, check `operator-path`): the address the operator's ssh connection arrived
 * on must come back in the rescue system on an interface the plan restores, and the route the host uses back to
 * the operator (`ip route get`) must be in the plan with the same gateway and interface. Behind ProxyJump the jump
 * host is the operator: SSH_CONNECTION names whoever opened the TCP connection to this sshd.
 */
import type { NetworkPlan, PlannedRoute } from '../network/plan.js';
import type { Finding } from './checks.js';

/** SSH_CONNECTION: `client port server port`. */
export interface SshConnection {
  client: string;
  server: string;
}

/** Strips an IPv4-mapped IPv6 prefix (sshd listening on `::` reports `::ffff:10.0.2.15`) and a zone. */
export function plainAddress(address: string): string {
  return address
    .replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1')
    .replace(/%.*$/, '')
    .toLowerCase();
}

export function parseSshConnection(value: string | undefined): SshConnection | undefined {
  const [client, , server] = (value ?? '').trim().split(/\s+/);
  if (!client || !server) return undefined;
  return { client: plainAddress(client), server: plainAddress(server) };
}

/** An address as a number and its width in bits; undefined when it is not an IPv4 or IPv6 address. */
export function addressBits(address: string): { value: bigint; bits: 32 | 128 } | undefined {
  const a = plainAddress(address);
  if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) {
    const parts = a.split('.').map(Number);
    if (parts.some((p) => p > 255)) return undefined;
    return { value: parts.reduce((v, p) => (v << 8n) | BigInt(p), 0n), bits: 32 };
  }
  if (!a.includes(':')) return undefined;
  let groups: string[];
  const [head, tail, extra] = a.split('::');
  if (extra !== undefined) return undefined;
  if (tail === undefined) groups = head.split(':');
  else {
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  }
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return { value: groups.reduce((v, g) => (v << 16n) | BigInt(parseInt(g, 16)), 0n), bits: 128 };
}

/** Whether `address` lies in `prefix` (`10.0.0.0/8`, `default`, a bare address = host route). */
export function inPrefix(address: string, prefix: string): boolean {
  const a = addressBits(address);
  if (!a) return false;
  if (prefix === 'default') return true;
  const [net, lenText] = prefix.split('/');
  const n = addressBits(net);
  if (!n || n.bits !== a.bits) return false;
  const len = lenText === undefined ? n.bits : Number(lenText);
  const shift = BigInt(n.bits - len);
  return a.value >> shift === n.value >> shift;
}

/** The route `ip route get` printed: `ADDR [via GW] dev DEV [table T] [src S] …`. */
export interface RouteGet {
  type?: string;
  gateway?: string;
  dev?: string;
  table?: string;
  src?: string;
}

export function parseRouteGet(text: string | undefined): RouteGet | undefined {
  const line = (text ?? '').split('\n').find((l) => l.trim() && !l.trim().startsWith('cache'));
  if (!line) return undefined;
  const words = line.trim().split(/\s+/);
  const out: RouteGet = {};
  if (['local', 'unreachable', 'prohibit', 'blackhole', 'broadcast', 'multicast'].includes(words[0])) out.type = words[0];
  for (let i = 0; i < words.length - 1; i++) {
    if (words[i] === 'via') out.gateway = plainAddress(words[i + 1] === 'inet6' || words[i + 1] === 'inet' ? (words[i + 2] ?? '') : words[i + 1]);
    else if (words[i] === 'dev') out.dev = words[i + 1];
    else if (words[i] === 'table') out.table = words[i + 1];
    else if (words[i] === 'src') out.src = plainAddress(words[i + 1]);
  }
  return out;
}

const FIX =
  'Make sure the address and the route back to you are restored (run with --dry-run to see the plan and what it leaves out), or connect over an address that is.';

/** The operator-path findings: refusals when the rescue system would not be reachable the way the operator came. */
export function judgeOperatorPath(
  connection: SshConnection | undefined,
  routeBack: RouteGet | undefined,
  plan: NetworkPlan,
  /** The host interface that holds the server address (from the capture), to say why the plan lacks it. */
  owner?: string,
): { refusals: Finding[]; warnings: Finding[]; summary: string } {
  const refusals: Finding[] = [];
  const warnings: Finding[] = [];
  const refuse = (message: string) => refusals.push({ message, fix: FIX });
  if (!connection) {
    warnings.push({
      message: 'the host did not report SSH_CONNECTION, so the path back to you is not checked',
      fix: 'Nothing to do; check the plan with --dry-run.',
    });
    return { refusals, warnings, summary: 'operator path: unknown (no SSH_CONNECTION)' };
  }
  const { client, server } = connection;
  const skippedAbout = (needle: string) => plan.skipped.filter((s) => s.what.split(/[\s/]/).includes(needle)).map((s) => `${s.what}: ${s.reason}`);

  const carrier = plan.interfaces.find((i) => i.addresses.some((a) => plainAddress(a.cidr.split('/')[0]) === server));
  if (!carrier) {
    const why = [...skippedAbout(server), ...(owner ? skippedAbout(owner) : [])];
    refuse(
      `your ssh connection arrived on ${server}${owner ? ` (${owner})` : ''}, and the rescue system would not have that address${why.length ? ` (${why.join('; ')})` : ''}`,
    );
  }

  if (!routeBack || routeBack.type === 'local') {
    if (!routeBack) warnings.push({ message: `the host could not say how it reaches ${client} (no ip route get)`, fix: 'Check the routes in --dry-run.' });
    return { refusals, warnings, summary: `operator ${client} → ${server}${carrier ? ` on ${carrier.name}` : ''}` };
  }
  if (routeBack.type) {
    refuse(`the host has no usable route back to you (${client}: ${routeBack.type})`);
    return { refusals, warnings, summary: `operator ${client}: ${routeBack.type}` };
  }
  const dev = routeBack.dev;
  const devPlanned = dev ? plan.interfaces.find((i) => i.name === dev) : undefined;
  const family = client.includes(':') ? 'inet6' : 'inet';
  const table = routeBack.table ?? 'main';
  const sameTable = (r: PlannedRoute) => r.table === table || (table === 'main' && r.table === '254');
  const how = `${client}${routeBack.gateway ? ` via ${routeBack.gateway}` : ''}${dev ? ` dev ${dev}` : ''}${table !== 'main' ? ` table ${table}` : ''}`;
  if (!dev || !devPlanned) {
    const why = dev ? skippedAbout(dev) : [];
    refuse(`the host reaches you by ${how}, and the rescue system would not have ${dev ?? 'that interface'}${why.length ? ` (${why.join('; ')})` : ''}`);
    return { refusals, warnings, summary: `route back: ${how} (not restored)` };
  }
  const covering = plan.routes.filter((r) => r.family === family && r.dev === dev && sameTable(r) && inPrefix(client, r.dst) && r.type === 'unicast');
  const onLinkByAddress = devPlanned.addresses.some((a) => a.family === family && !a.noprefixroute && inPrefix(client, a.cidr));
  if (routeBack.gateway) {
    const route = covering.find((r) => r.gateway && plainAddress(r.gateway.host) === routeBack.gateway);
    if (!route) {
      refuse(
        `the host reaches you by ${how}, and the plan has no route to ${client} via ${routeBack.gateway} on ${dev}${skippedAbout(dev).length ? ` (${skippedAbout(dev).join('; ')})` : ''}`,
      );
    } else if (!route.onlink && !gatewayReachable(routeBack.gateway, dev, plan)) {
      refuse(
        `the plan's route to ${client} via ${routeBack.gateway} on ${dev} has a gateway outside ${dev}'s restored prefixes and is not onlink, so the kernel would not add it`,
      );
    }
  } else if (!onLinkByAddress && !covering.some((r) => !r.gateway)) {
    refuse(
      `the host reaches you directly on ${dev} (${client} is on-link), and the plan has neither an address on ${dev} whose prefix holds ${client} nor an on-link route to it`,
    );
  }
  return { refusals, warnings, summary: `operator ${client} → ${server}${carrier ? ` on ${carrier.name}` : ''}; route back: ${how}` };
}

/** Whether a gateway is on-link on `dev` in the plan: inside one of its address prefixes, or behind an on-link route. */
function gatewayReachable(gateway: string, dev: string, plan: NetworkPlan): boolean {
  const iface = plan.interfaces.find((i) => i.name === dev);
  if (iface?.addresses.some((a) => !a.noprefixroute && inPrefix(gateway, a.cidr))) return true;
  if (gateway.startsWith('fe80:')) return true;
  return plan.routes.some((r) => r.dev === dev && !r.gateway && inPrefix(gateway, r.dst));
}
