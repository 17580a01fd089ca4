import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LinkModel, TokenBucket } from '../lib/slow-link.js';

describe('TokenBucket (1000 bytes/s, burst 100)', () => {
  // One line per case: offers as [at ms, bytes], and when each may leave.
  const cases: [string, [number, number][], number[]][] = [
    ['within the burst: at once', [[0, 100]], [0]],
    ['past the burst: the excess at the rate', [[0, 300]], [200]],
    [
      'back to back: queued behind each other',
      [
        [0, 100],
        [0, 100],
        [0, 100],
      ],
      [0, 100, 200],
    ],
    [
      'refilled while idle',
      [
        [0, 100],
        [100, 100],
      ],
      [0, 100],
    ],
    [
      'refill stops at the burst',
      [
        [0, 100],
        [10_000, 300],
      ],
      [0, 10_200],
    ],
    [
      'debt paid off before the next offer leaves',
      [
        [0, 600],
        [100, 100],
      ],
      [500, 600],
    ],
  ];
  for (const [name, offers, expected] of cases) {
    it(name, () => {
      const bucket = new TokenBucket(1000, 100);
      assert.deepEqual(
        offers.map(([at, bytes]) => bucket.take(at, bytes)),
        expected,
      );
    });
  }
});

describe('LinkModel (1000 bytes/s, burst 100, 50 ms one way)', () => {
  it('adds the delay after the rate', () => {
    const link = new LinkModel(1000, 50, 100);
    assert.deepEqual([link.deliverAt(0, 100), link.deliverAt(0, 100), link.deliverAt(1000, 10)], [50, 150, 1050]);
  });
  it('never delivers out of order', () => {
    const link = new LinkModel(1e9, 50, 1e9);
    const times = [0, 1, 1, 2].map((t) => link.deliverAt(t, 1));
    assert.deepEqual(times, [50, 51, 51, 52]);
  });
  it('50 Mbit/s: 6.25 MB take one second past the burst', () => {
    const link = new LinkModel(50e6 / 8, 0, 0);
    assert.equal(link.deliverAt(0, 6.25e6), 1000);
  });
});
