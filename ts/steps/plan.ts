/**
 * Step 4: decide what the rescue system restores — network script and root's keys — and show it.
 * Pure work on what capture and preflight brought; writes the --dump-network files if asked.
 */
import { writeFile } from 'node:fs/promises';
import type { HostKey } from '../boundary/preflight.js';
import { fingerprint, type KeySelection } from '../keys/authorized-keys.js';
import type { NetworkCapture } from '../network/capture.js';
import { dumpNetworkFiles } from '../network/dump.js';
import { planNetwork, type NetworkPlan } from '../network/plan.js';
import { describePlan, renderRestoreScript } from '../network/render.js';
import type { Ui } from '../ui.js';

/** The network part of the rescue: the plan and the network.sh rendered from it. */
export interface NetworkRestore {
  plan: NetworkPlan;
  script: string;
}

export async function plan(capture: NetworkCapture, ui: Ui, dumpNetwork: boolean): Promise<NetworkRestore> {
  const networkPlan = planNetwork(capture);
  if (dumpNetwork) {
    const files = dumpNetworkFiles(capture, networkPlan);
    for (const [name, content] of Object.entries(files)) await writeFile(name, content);
    ui.info(`network written to ${Object.keys(files).join(', ')} in ${process.cwd()}`);
  }
  return { plan: networkPlan, script: renderRestoreScript(networkPlan) };
}

/** The key summary shown by --dry-run and the confirmation: fingerprints and counts, never private material. */
export function describeKeys(hostKeys: readonly HostKey[], keys: KeySelection): string {
  const lines: string[] = ['Host keys (the rescue system presents these):'];
  for (const key of hostKeys) {
    const [type, blob] = key.pub.split(/\s+/);
    lines.push(
      key.present && blob ? `  ${type} ${fingerprint(blob)}  ${key.path}` : `  ${key.path}: not carried over (${key.present ? 'no .pub' : 'missing'})`,
    );
  }
  lines.push(`Root accepts ${keys.keys.length} key(s) in the rescue system:`);
  for (const [user, count] of Object.entries(keys.perUser)) lines.push(`  ${count} from ${user}`);
  for (const left of keys.leftOut) lines.push(`  left out: ${left.fingerprint} ${left.comment} of ${left.user} (${left.file}): ${left.reason}`);
  return lines.join('\n');
}

/** Plan and keys together, as --dry-run prints them and the confirmation shows them. */
export function describeRescue(network: NetworkRestore | undefined, hostKeys: readonly HostKey[], keys: KeySelection): string {
  const text = network ? describePlan(network.plan) : 'Network: captured after staging (the host has no iproute2 JSON).';
  return `${text}\n${describeKeys(hostKeys, keys)}`;
}
