import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withDeadline } from '../../deadline.js';

const after = <T>(ms: number, value: T) => new Promise<T>((r) => setTimeout(() => r(value), ms));

describe('withDeadline', () => {
  it('passes the result through when the work finishes in time', async () => {
    assert.equal(await withDeadline(after(5, 'done'), 1000, () => new Error('late')), 'done');
  });
  it('rejects with the caller’s error when the work is late', async () => {
    await assert.rejects(
      withDeadline(after(1000, 'done'), 10, () => new Error('kexec step: no answer within 0.01 s')),
      /no answer within 0\.01 s/,
    );
  });
  it('passes the work’s own failure through', async () => {
    await assert.rejects(
      withDeadline(Promise.reject(new Error('ssh failed')), 1000, () => new Error('late')),
      /ssh failed/,
    );
  });
  it('leaves no timer behind, so the CLI can exit at once', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await withDeadline(Promise.resolve(1), 60_000, () => new Error('late'));
    assert.equal(timers(), before);
  });
});
