/**
 * scripts/run-tool.sh in a fake image directory, under dash and busybox ash: it finds the image directory from the
 * path it was started by, whichever way it is written (absolute, relative, or `sh run-tool.sh` in the image
 * directory, as docs/image-layout.md writes it), starts bin/TOOL directly or through lib/ld.so when there is one,
 * and says what is wrong when it cannot tell the directory or has no TOOL.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO } from '../../test-image/build.js';

const shells = [['dash'], ['busybox', 'ash']].filter((shell) => spawnSync(shell[0], [...shell.slice(1), '-c', 'true']).status === 0);

/** An image directory with run-tool.sh and bin/echo-args (prints its arguments), and optionally a stand-in lib/ld.so. */
function fakeImage(root: string, withLoader: boolean): string {
  const image = join(root, 'emergency-image');
  mkdirSync(join(image, 'bin'), { recursive: true });
  copyFileSync(join(REPO, 'scripts/run-tool.sh'), join(image, 'run-tool.sh'));
  writeFileSync(join(image, 'bin/echo-args'), '#!/bin/sh\necho "echo-args $*"\n');
  chmodSync(join(image, 'bin/echo-args'), 0o755);
  if (withLoader) {
    mkdirSync(join(image, 'lib'));
    // The loader's call as ld.so gets it: --library-path DIR PROGRAM ARG...; it says so, then runs the program.
    writeFileSync(join(image, 'lib/ld.so'), '#!/bin/sh\necho "ld.so $1 $2"\nshift 2\nexec "$@"\n');
    chmodSync(join(image, 'lib/ld.so'), 0o755);
  }
  return image;
}

describe('scripts/run-tool.sh', { skip: shells.length === 0 ? 'needs dash or busybox' : false }, () => {
  const work = mkdtempSync(join(tmpdir(), 'emergency-run-tool-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const direct = fakeImage(join(work, 'static'), false);
  const loaded = fakeImage(join(work, 'dynamic'), true);

  // [how it is started, (image directory) => [working directory, the path given to sh]]
  const starts: [string, (image: string) => [string, string]][] = [
    ['absolute path', (image) => ['/', join(image, 'run-tool.sh')]],
    ['relative path from the parent', (image) => [join(image, '..'), 'emergency-image/run-tool.sh']],
    ['./run-tool.sh in the image directory', (image) => [image, './run-tool.sh']],
    ['run-tool.sh in the image directory (no slash)', (image) => [image, 'run-tool.sh']],
  ];

  for (const shell of shells) {
    const name = shell.join(' ');
    const run = (image: string, start: (image: string) => [string, string], args: string[]) => {
      const [cwd, path] = start(image);
      return spawnSync(shell[0], [...shell.slice(1), path, ...args], { cwd, encoding: 'utf8' });
    };
    for (const [how, start] of starts) {
      it(`${name}, ${how}: runs bin/TOOL with its arguments, through lib/ld.so when the image has one`, () => {
        const plain = run(direct, start, ['echo-args', 'a b', 'c']);
        assert.equal(plain.status, 0, plain.stderr);
        assert.equal(plain.stdout, 'echo-args a b c\n');
        const viaLoader = run(loaded, start, ['echo-args', 'x']);
        assert.equal(viaLoader.status, 0, viaLoader.stderr);
        assert.equal(viaLoader.stdout, `ld.so --library-path ${join(loaded, 'lib')}\necho-args x\n`);
      });
    }

    it(`${name}: without TOOL → exit 2 and the usage`, () => {
      const r = run(direct, starts[0][1], []);
      assert.equal(r.status, 2);
      assert.equal(r.stderr, 'usage: sh IMAGE_DIR/run-tool.sh TOOL [ARG...]\n');
    });
  }

  // bash alone looks on PATH for a script named without a slash that is not in the current directory; $0 then does
  // not say where it lies.
  it('bash run-tool.sh found on PATH, not in the current directory → exit 2, the cause and the fix', {
    skip: spawnSync('bash', ['-c', 'true']).status === 0 ? false : 'needs bash',
  }, () => {
    const r = spawnSync('bash', ['run-tool.sh', 'echo-args'], { cwd: work, encoding: 'utf8', env: { ...process.env, PATH: `${direct}:${process.env.PATH}` } });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'run-tool.sh: cannot tell the image directory: run-tool.sh is not in the current directory; run it as sh IMAGE_DIR/run-tool.sh TOOL\n',
    );
  });
});
