import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../../errors.js';
import { buildImageWithNix, nixBuildArgs, nixOnPath, noNixError, parseNixBuildJson } from '../../image.js';

const hasNix = spawnSync('sh', ['-c', 'command -v nix']).status === 0;

describe('the nix build call', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-nix-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('uses --json --no-link (Nix 2.4+), not --print-out-paths (2.14+), with flakes switched on for the call', () => {
    assert.deepEqual(nixBuildArgs('.#packages.x86_64-linux.image'), [
      '--extra-experimental-features',
      'nix-command flakes',
      'build',
      '--json',
      '--no-link',
      '.#packages.x86_64-linux.image',
    ]);
  });

  for (const [stdout, path] of [
    ['[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/abc-image"}}]\n', '/nix/store/abc-image'],
    ['[{"drvPath":"/nix/store/a.drv","outputs":{"bin":"/nix/store/abc-bin"}}]', '/nix/store/abc-bin'],
    ['[]', undefined],
    ['not json', undefined],
    ['{"outputs":{"out":"/nix/store/x"}}', undefined],
    ['[{"outputs":{"out":"relative"}}]', undefined],
  ] as const) {
    it(`parseNixBuildJson(${JSON.stringify(stdout).slice(0, 50)}) → ${path}`, () => assert.equal(parseNixBuildJson(stdout), path));
  }

  it('nixOnPath looks for an executable nix in each PATH directory', () => {
    const present = new Set(['/opt/nix/bin/nix']);
    assert.equal(
      nixOnPath('/usr/bin:/opt/nix/bin', (f) => present.has(f)),
      true,
    );
    assert.equal(
      nixOnPath('/usr/bin::/bin', (f) => present.has(f)),
      false,
    );
    assert.equal(
      nixOnPath(undefined, () => true),
      false,
    );
    const bin = mkdtempSync(join(dir, 'bin-'));
    writeFileSync(join(bin, 'nix'), '#!/bin/sh\n');
    assert.equal(nixOnPath(bin), false, 'not executable');
    chmodSync(join(bin, 'nix'), 0o755);
    assert.equal(nixOnPath(bin), true);
  });

  it('the no-Nix error gives both ways out', () => {
    const e = noNixError();
    assert.equal(e.exitCode, 2);
    assert.match(e.message, /`nix`.*not installed/);
    assert.match(e.fix, /install Nix/);
    assert.match(e.fix, /--image PATH/);
  });

  it('returns the store path a nix that speaks --json prints, and passes the attribute', async () => {
    const fake = join(dir, 'fake-nix');
    const argsFile = join(dir, 'fake-nix.args');
    writeFileSync(
      fake,
      `#!/bin/sh\nprintf '%s\\n' "$@" >'${argsFile}'\necho '[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/nix/store/abc-emergency-image"}}]'\n`,
    );
    chmodSync(fake, 0o755);
    assert.equal(await buildImageWithNix('aarch64', '/src/emergency', fake), '/nix/store/abc-emergency-image');
    assert.deepEqual(readFileSync(argsFile, 'utf8').trim().split('\n'), nixBuildArgs('/src/emergency#packages.aarch64-linux.image'));
  });

  it('refuses an architecture it has no Nix system for', async () => {
    await assert.rejects(buildImageWithNix('riscv64', '.', '/nonexistent'), (e: unknown) => e instanceof UsageError && /riscv64/.test(e.message));
  });

  it("this machine's Nix (Debian's nix-bin in CI) understands the command line; an unbuildable flake is named with what to do", {
    skip: hasNix ? false : 'nix not installed (.ci/run installs nix-bin)',
    timeout: 180_000,
  }, async () => {
    const flake = mkdtempSync(join(dir, 'flake-'));
    writeFileSync(join(flake, 'flake.nix'), '{ outputs = _: { }; }\n');
    await assert.rejects(buildImageWithNix('x86_64', `path:${flake}`), (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.match(e.message, new RegExp(`the flake path:${flake} did not build an image for x86_64-linux`));
      // Nix got as far as evaluating the flake: it did not reject a flag (as 2.8 did with --print-out-paths).
      assert.doesNotMatch(e.message, /unrecognised flag|unrecognized option/);
      assert.match(e.message, /does not provide attribute/);
      assert.match(e.fix, /--image PATH/);
      assert.match(e.fix, /packages\.x86_64-linux\.image/);
      return true;
    });
  });
});
