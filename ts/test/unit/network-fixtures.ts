/** Loads the network capture fixtures (ts/test/fixtures/network/, see its README) for the unit tests. */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseScriptOutput, type ScriptOutput } from '../../sections.js';
import { parseNetworkCapture, type NetworkCapture } from '../../network/capture.js';
import { planNetwork, type NetworkPlan, type PlannedRoute } from '../../network/plan.js';

export const FIXTURES = fileURLToPath(new URL('../../../ts/test/fixtures/network/', import.meta.url));

export function fixtureNames(): string[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.txt'))
    .map((f) => f.slice(0, -4))
    .sort();
}

export function fixtureOutput(name: string): ScriptOutput {
  return parseScriptOutput(readFileSync(`${FIXTURES}${name}.txt`, 'utf8'));
}

export function fixture(name: string): { capture: NetworkCapture; plan: NetworkPlan } {
  const capture = parseNetworkCapture(fixtureOutput(name));
  return { capture, plan: planNetwork(capture) };
}

/** A route in one short line, for table-style expectations. */
export function routeLine(r: PlannedRoute): string {
  const via = r.gateway ? ` via ${r.gateway.family !== r.family ? 'inet6 ' : ''}${r.gateway.host}` : '';
  return [
    r.family === 'inet6' ? '-6 ' : '',
    r.type === 'unicast' ? '' : `${r.type} `,
    r.dst,
    via,
    r.dev ? ` dev ${r.dev}` : '',
    r.onlink ? ' onlink' : '',
    r.table === 'main' ? '' : ` table ${r.table}`,
  ].join('');
}
