/**
 * Preflight's decision, pure: every check of ts/preflight/checks.ts judged at once, each refusal and warning
 * under its check's name, with the operator's --ignore-preflight-errors applied. Nothing here touches the host.
 */
import { CHECKS, IGNORE_ALL, memoryNeed, stagePlace, type Check, type CheckInput, type Finding, type MemoryNeed, type StagePlace } from './checks.js';

export type { Finding, MemoryNeed, StagePlace } from './checks.js';

/** A finding with the name of the check that made it. */
export interface NamedFinding extends Finding {
  check: string;
}

/** One check's outcome, as --dry-run lists it. */
export interface CheckResult {
  name: string;
  title: string;
  /** pass; warn (warnings only); refuse; ignored (refused, but the operator ignored it); pending (needs the plan). */
  status: 'pass' | 'warn' | 'refuse' | 'ignored' | 'pending';
  findings: Finding[];
  /** What the check looked at (CheckFindings.notes). */
  notes?: string[];
}

/** The verdict: refusals (any → do not proceed), warnings (ignored refusals among them), and where to stage. */
export interface Verdict {
  results: CheckResult[];
  refusals: NamedFinding[];
  warnings: NamedFinding[];
  memory: MemoryNeed;
  stage?: StagePlace;
}

/** Judges the host with every check (or those given); `ignore` names checks whose refusals become warnings. */
export function judgeHost(input: CheckInput, ignore: readonly string[] = [], checks: readonly Check[] = CHECKS): Verdict {
  const results: CheckResult[] = [];
  const refusals: NamedFinding[] = [];
  const warnings: NamedFinding[] = [];
  for (const check of checks) {
    if (check.needsPlan && !input.plan) {
      results.push({ name: check.name, title: check.title, status: 'pending', findings: [] });
      continue;
    }
    const found = check.judge(input);
    const refused = found.refusals ?? [];
    const warned = found.warnings ?? [];
    const ignored = refused.length > 0 && check.ignorable && (ignore.includes(check.name) || ignore.includes(IGNORE_ALL));
    for (const f of warned) warnings.push({ check: check.name, ...f });
    if (ignored)
      for (const f of refused) warnings.push({ check: check.name, message: `${f.message} (ignored: --ignore-preflight-errors ${check.name})`, fix: f.fix });
    else for (const f of refused) refusals.push({ check: check.name, ...f });
    const status = refused.length ? (ignored ? 'ignored' : 'refuse') : warned.length ? 'warn' : 'pass';
    results.push({ name: check.name, title: check.title, status, findings: [...refused, ...warned], ...(found.notes?.length ? { notes: found.notes } : {}) });
  }
  return { results, refusals, warnings, memory: memoryNeed(input.image), stage: stagePlace(input.facts, input.image) };
}

/** Every check with its verdict, as --dry-run prints it. */
export function describeChecks(verdict: Verdict): string {
  const width = Math.max(...verdict.results.map((r) => r.name.length));
  const lines = ['Preflight checks:'];
  for (const r of verdict.results) {
    lines.push(`  ${r.status.padEnd(7)} ${r.name.padEnd(width)}  ${r.title}`);
    for (const f of r.findings) lines.push(`          ${''.padEnd(width)}  ${f.message}`);
    for (const n of r.notes ?? []) lines.push(`          ${''.padEnd(width)}  ${n}`);
  }
  return lines.join('\n');
}
