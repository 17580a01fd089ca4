/**
 * `npm run bench -- --trace DIR`: one timeline per rescue, the CLI's stderr lines and the server's serial console
 * stamped as they arrive (the console is a file QEMU appends to; it is read every 20 ms), so where the time goes
 * between the CLI's step lines and the host's and rescue's own messages can be read off one list. It is how the
 * fresh connection's slow first megabytes and the memory poller's cost were found (docs/benchmarks.md).
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** One stamped line: milliseconds since the epoch, where it came from, its text. */
export interface TimelineEvent {
  at: number;
  source: 'CLI' | 'CON';
  text: string;
}

/** The timeline as text: seconds after `startedAt` (two decimals), source, line; escape sequences and CRs dropped. Pure. */
export function timelineText(events: readonly TimelineEvent[], startedAt: number): string {
  return [...events]
    .sort((a, b) => a.at - b.at)
    .map((e) => `${((e.at - startedAt) / 1000).toFixed(2).padStart(7)} ${e.source} ${e.text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\r/g, '')}`)
    .join('\n')
    .concat('\n');
}

/** Splits what a growing text file gained since `seen` characters into whole lines, keeping a partial last line for later. Pure. */
export function newLines(text: string, seen: number): { lines: string[]; seen: number } {
  const end = text.lastIndexOf('\n') + 1;
  if (end <= seen) return { lines: [], seen };
  return {
    lines: text
      .slice(seen, end)
      .split('\n')
      .slice(0, -1)
      .filter((l) => l.trim() !== ''),
    seen: end,
  };
}

/** Records a timeline until `finish` writes it; `cli` takes each stderr line of the CLI as it comes. */
export function recordTimeline(serialLogFile: string): { cli(line: string): void; finish(path: string): void } {
  const startedAt = Date.now();
  const events: TimelineEvent[] = [];
  let seen = 0;
  const readConsole = () => {
    let text = '';
    try {
      text = readFileSync(serialLogFile, 'latin1');
    } catch {
      return;
    }
    const next = newLines(text, seen);
    seen = next.seen;
    const at = Date.now();
    for (const line of next.lines) events.push({ at, source: 'CON', text: line });
  };
  // What the console held before the run is not part of it.
  seen = newLines(safeRead(serialLogFile), 0).seen;
  const poll = setInterval(readConsole, 20);
  return {
    cli: (line) => events.push({ at: Date.now(), source: 'CLI', text: line }),
    finish: (path) => {
      clearInterval(poll);
      readConsole();
      writeFileSync(path, timelineText(events, startedAt));
    },
  };
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}
