/**
 * The benchmark's pure half (ts/test/bench.ts): parsing the CLI's step lines and /proc/meminfo samples,
 * medians, and the table. Nothing here runs anything.
 */

/** Step name → seconds, as the CLI printed them (`✓ NAME 1.2 s`); a step run twice (plan) is summed. */
export function parseStepLines(stderr: string): Record<string, number> {
  const steps: Record<string, number> = {};
  for (const m of stderr.matchAll(/^✓ (.+?) (\d+(?:\.\d+)?) s\b/gm)) steps[m[1]] = (steps[m[1]] ?? 0) + Number(m[2]);
  return steps;
}

/** What the CLI says about the run besides the step lines. */
export interface CliFacts {
  roundTrips?: number;
  /** Seconds from `kexec -e` being triggered to the rescue system answering. */
  rescueAnswersS?: number;
  /** Seconds from the trigger until the old system stopped answering. */
  oldGoneS?: number;
}

/** Parses `N ssh round trip(s) before kexec` and `rescue system answers X s after kexec (old system gone after Y s)`. */
export function parseCliFacts(stderr: string): CliFacts {
  const facts: CliFacts = {};
  const trips = /(\d+) ssh round trip\(s\) before kexec/.exec(stderr);
  if (trips) facts.roundTrips = Number(trips[1]);
  const answers = /rescue system answers (\d+(?:\.\d+)?) s after kexec/.exec(stderr);
  if (answers) facts.rescueAnswersS = Number(answers[1]);
  const gone = /old system gone after (\d+(?:\.\d+)?) s/.exec(stderr);
  if (gone) facts.oldGoneS = Number(gone[1]);
  return facts;
}

/** The median of a non-empty list (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** One /proc/meminfo sample (kB), with the time it arrived. */
export interface MemSample {
  atMs: number;
  memAvailableKb: number;
  shmemKb: number;
}

/**
 * Parses the poller's output: blocks of `MemAvailable: N` / `Shmem: N` lines, each block closed by a `.` line.
 * `arrivals` gives the time each `.` line arrived (same order); incomplete blocks are dropped.
 */
export function parseMemSamples(lines: string[], arrivals: number[]): MemSample[] {
  const samples: MemSample[] = [];
  let avail: number | undefined;
  let shmem: number | undefined;
  let block = 0;
  for (const line of lines) {
    const [key, value] = line.trim().split(/\s+/);
    if (key === 'MemAvailable:') avail = Number(value);
    else if (key === 'Shmem:') shmem = Number(value);
    else if (key === '.') {
      if (avail !== undefined && shmem !== undefined) samples.push({ atMs: arrivals[block] ?? NaN, memAvailableKb: avail, shmemKb: shmem });
      avail = shmem = undefined;
      block++;
    }
  }
  return samples;
}

/** Peak memory taken from the host while staging: the largest drop of MemAvailable and the largest rise of Shmem (tmpfs). */
export function memoryPeak(baseline: MemSample, during: MemSample[]): { usedBytes: number; tmpfsBytes: number; samples: number } {
  let used = 0;
  let tmpfs = 0;
  for (const s of during) {
    used = Math.max(used, baseline.memAvailableKb - s.memAvailableKb);
    tmpfs = Math.max(tmpfs, s.shmemKb - baseline.shmemKb);
  }
  return { usedBytes: used * 1024, tmpfsBytes: tmpfs * 1024, samples: during.length };
}

/** MB (10^6) with one decimal: sizes on the wire. */
export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
/** Seconds with one (or two, below 1 s) decimals. */
export const sec = (s: number) => (Number.isFinite(s) ? `${s.toFixed(s < 1 ? 2 : 1)} s` : '—');

/** Renders rows of [label, value, note] as an aligned two-column table. */
export function renderTable(rows: [string, string, string?][]): string {
  const width = Math.max(...rows.map((r) => r[0].length));
  const valueWidth = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([label, value, note]) => `${label.padEnd(width)}  ${value.padStart(valueWidth)}${note ? `  ${note}` : ''}`.trimEnd()).join('\n');
}
