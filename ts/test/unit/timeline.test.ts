import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newLines, timelineText } from '../lib/timeline.js';

describe('bench --trace timeline', () => {
  it('orders the lines by arrival, in seconds after the start, without escape sequences', () => {
    const text = timelineText(
      [
        { at: 10_500, source: 'CON', text: 'emergency-restore: done\r' },
        { at: 10_000, source: 'CLI', text: '\x1b[1m» wait\x1b[0m' },
        { at: 22_345, source: 'CLI', text: '✓ wait 12.3 s' },
      ],
      10_000,
    );
    assert.equal(text, '   0.00 CLI » wait\n   0.50 CON emergency-restore: done\n  12.35 CLI ✓ wait 12.3 s\n');
  });

  for (const [name, text, seen, lines, next] of [
    ['nothing new', 'a\nb\n', 4, [], 4],
    ['whole new lines', 'a\nb\nc\n', 2, ['b', 'c'], 6],
    ['a partial last line waits for its end', 'a\nb\nc', 2, ['b'], 4],
    ['blank lines are dropped', 'a\n\n  \nd\n', 0, ['a', 'd'], 8],
  ] as const) {
    it(`newLines: ${name}`, () => {
      assert.deepEqual(newLines(text, seen), { lines, seen: next });
    });
  }
});
