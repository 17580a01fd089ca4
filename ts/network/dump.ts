/**
 * The files `--dump-network` writes: the original dasJ/emergency-kexec format (`emergency_ips`, `emergency_routes`,
 * `emergency_nameservers`) plus the raw capture as JSON, so the old configuration is never lost. Pure.
 */
import type { NetworkCapture } from './capture.js';
import type { NetworkPlan } from './plan.js';

/** File name → content of the network dump. */
export function dumpNetworkFiles(capture: NetworkCapture, plan: NetworkPlan): Record<string, string> {
  const lines = (xs: string[]) => xs.map((x) => `${x}\n`).join('');
  const ips = plan.interfaces.filter((i) => i.addresses.length > 0).map((i) => [i.name, ...i.addresses.map((a) => a.cidr)].join(';'));
  const routes = plan.routes.map((r) => [r.dst, r.gateway?.host ?? '', r.dev ?? ''].join(';'));
  return {
    emergency_ips: lines(ips),
    emergency_routes: lines(routes),
    emergency_nameservers: lines(plan.dns?.nameservers ?? []),
    'emergency_capture.json': `${JSON.stringify(capture, null, 2)}\n`,
  };
}
