/**
 * Re-records the unit-test fixtures (ts/test/fixtures/network/CASE.txt): the real output of
 * scripts/capture-network.sh for each round-trip case, configured in a namespace. Needs root.
 * Run: npm run build && node dist/test/netns/record-fixtures.js [CASE...]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CASES } from './cases.js';
import { REPO, buildOld, captureIn, cleanup, kernelSupports } from './netns.js';

const only = process.argv.slice(2);
try {
  for (const c of CASES) {
    if (only.length > 0 && !only.includes(c.name)) continue;
    const missing = (c.needs ?? []).filter((k) => !kernelSupports(k));
    if (missing.length > 0) {
      console.log(`${c.name}: not recorded, this kernel lacks ${missing.join(', ')}`);
      continue;
    }
    const old = buildOld(c);
    const file = join(REPO, 'ts/test/fixtures/network', `${c.name}.txt`);
    writeFileSync(file, captureIn(old.ns, c));
    console.log(`${c.name}: ${file}`);
  }
} finally {
  cleanup();
}
