/** Step: every preflight check judged at once (ts/preflight/checks.ts); warnings printed, refusals thrown together. */
import { RefusedError } from '../errors.js';
import { CHECKS, type Check, type CheckInput } from '../preflight/checks.js';
import { judgeHost, type Verdict } from '../preflight/verdict.js';
import type { Ui } from '../ui.js';

/** Judges `input` with `list` (every check by default); throws a RefusedError naming each refusal's check. */
export function checks(input: CheckInput, ignore: readonly string[], ui: Ui, list: readonly Check[] = CHECKS): Verdict {
  const verdict = judgeHost(input, ignore, list);
  for (const w of verdict.warnings) ui.warn(`[${w.check}] ${w.message}. ${w.fix}`);
  if (verdict.refusals.length) throw new RefusedError(verdict.refusals);
  return verdict;
}

/** The checks that wait for the network plan: judged again once a late capture (image ip) brought it. */
export const NETWORK_CHECKS: readonly Check[] = CHECKS.filter((c) => c.needsPlan);
