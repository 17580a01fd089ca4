/**
 * Step 4: decide what the rescue system restores — network script and root's keys — and show it.
 * Pure work on what capture and preflight brought; writes the --dump-network files if asked.
 */
import { writeFile } from 'node:fs/promises';
import { fingerprint } from '../keys/authorized-keys.js';
import { dumpNetworkFiles } from '../network/dump.js';
import { planNetwork } from '../network/plan.js';
import { describePlan, renderRestoreScript } from '../network/render.js';
import type { Operation } from '../operation.js';

export async function plan(op: Operation): Promise<void> {
  if (!op.state.capture) return;
  op.state.plan = planNetwork(op.state.capture);
  op.state.restoreScript = renderRestoreScript(op.state.plan);
  if (op.options.dumpNetwork) {
    const files = dumpNetworkFiles(op.state.capture, op.state.plan);
    for (const [name, content] of Object.entries(files)) await writeFile(name, content);
    op.ui.info(`network written to ${Object.keys(files).join(', ')} in ${process.cwd()}`);
  }
}

/** The key summary shown by --dry-run and the confirmation: fingerprints and counts, never private material. */
export function describeKeys(op: Operation): string {
  const lines: string[] = ['Host keys (the rescue system presents these):'];
  for (const key of op.state.hostKeys ?? []) {
    const [type, blob] = key.pub.split(/\s+/);
    lines.push(key.present && blob ? `  ${type} ${fingerprint(blob)}  ${key.path}` : `  ${key.path}: not carried over (${key.present ? 'no .pub' : 'missing'})`);
  }
  const keys = op.state.keys!;
  lines.push(`Root accepts ${keys.keys.length} key(s) in the rescue system:`);
  for (const [user, count] of Object.entries(keys.perUser)) lines.push(`  ${count} from ${user}`);
  for (const left of keys.leftOut) lines.push(`  left out: ${left.fingerprint} ${left.comment} of ${left.user} (${left.file}): ${left.reason}`);
  return lines.join('\n');
}

/** Plan and keys together, as --dry-run prints them and the confirmation shows them. */
export function describeRescue(op: Operation): string {
  const network = op.state.plan ? describePlan(op.state.plan) : 'Network: captured after staging (the host has no iproute2 JSON).';
  return `${network}\n${describeKeys(op)}`;
}
