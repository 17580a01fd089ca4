/** The local image check: one read hashes the tarball and each member; the members are compared with SHA256SUMS. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { hashImageTar, sumsMismatches } from '../../image-verify.js';
import { createTar, listTar } from '../../tar.js';

const dir = mkdtempSync(join(tmpdir(), 'emergency-image-verify-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('hashImageTar', () => {
  it('hashes the whole file and every member, members spanning several 1 MiB reads and empty ones included', async () => {
    const big = Buffer.alloc(3 * (1 << 20) + 123);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const small = Buffer.from('x\n');
    const tar = createTar({
      'emergency-image/a-small': small,
      'emergency-image/kernel': big,
      'emergency-image/empty': '',
      'emergency-image/z': big.subarray(5, 70_000),
    });
    const path = join(dir, 'a.tar');
    writeFileSync(path, tar);
    const { tarSha256, files } = await hashImageTar(path, await listTar(path));
    assert.equal(tarSha256, sha(tar));
    assert.deepEqual(Object.fromEntries(files), {
      'emergency-image/a-small': sha(small),
      'emergency-image/kernel': sha(big),
      'emergency-image/empty': sha(''),
      'emergency-image/z': sha(big.subarray(5, 70_000)),
    });
  });
});

describe('sumsMismatches', () => {
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((x) => x.repeat(64));
  const actual = new Map([
    ['emergency-image/kernel', a],
    ['emergency-image/initrd', b],
    ['emergency-image/SHA256SUMS', c],
  ]);
  const cases: [string, string, string[]][] = [
    ['all match (sha256sum text and binary mode lines)', `${a}  kernel\n${b} *initrd\n`, []],
    ['a changed file', `${a}  kernel\n${d}  initrd\n`, ['initrd']],
    ['a listed file missing from the tar', `${a}  kernel\n${b}  initrd\n${e}  bin/kexec\n`, ['bin/kexec']],
    ['a file the manifest does not list', `${a}  kernel\n`, ['initrd (not in SHA256SUMS)']],
    ['an empty manifest', '', ['initrd (not in SHA256SUMS)', 'kernel (not in SHA256SUMS)']],
  ];
  for (const [name, sums, want] of cases) it(name, () => assert.deepEqual(sumsMismatches(sums, actual, 'emergency-image'), want));
});
