import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO } from '../../test-image/build.js';
import { KERNEL_PARAMS_FILE, rescueCmdline, rescueKernelParams } from '../../test-image/kernel-params.js';

/** Whether `nix-instantiate` (CI installs Debian's nix-bin) can run here. */
function hasNixInstantiate(): boolean {
  try {
    execFileSync('nix-instantiate', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** What the NixOS image's modules take: modules/lib.nix's rescueKernelParams, evaluated by Nix itself. */
function nixRescueKernelParams(arch: string): string[] {
  const expr = `(import ${join(REPO, 'modules/lib.nix')}).rescueKernelParams ${JSON.stringify(arch)}`;
  return JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
}

const arches = Object.keys(JSON.parse(readFileSync(KERNEL_PARAMS_FILE, 'utf8')).consoles as Record<string, string[]>);

describe('rescue kernel parameters: one place for both image builders', () => {
  it('covers both architectures', () => assert.deepEqual(arches.sort(), ['aarch64', 'x86_64']));

  for (const arch of arches) {
    it(`${arch}: the test image builder and the Nix modules read the same parameters`, {
      skip: hasNixInstantiate() ? false : 'nix-instantiate is not installed (apt-get install nix-bin)',
    }, () => {
      assert.deepEqual(rescueKernelParams(arch), nixRescueKernelParams(arch));
    });

    it(`${arch}: a panic reboots, the rescue marker is set, the serial console is /dev/console`, () => {
      const params = rescueKernelParams(arch);
      assert.ok(
        params.some((p) => /^panic=[1-9][0-9]*$/.test(p)),
        `no positive panic= in ${params.join(' ')}`,
      );
      assert.ok(params.includes('emergency.rescue=1'));
      const consoles = params.filter((p) => p.startsWith('console='));
      assert.match(consoles.at(-1)!, arch === 'x86_64' ? /^console=ttyS0,/ : /^console=ttyAMA0,/);
    });
  }

  it('the test image cmdline is the parameters, space-separated, in order', () => {
    assert.equal(rescueCmdline('x86_64'), 'console=tty0 console=ttyS0,115200 emergency.rescue=1 panic=10 loglevel=4');
  });

  it('an architecture the file does not know is refused with the file named', () => {
    assert.throws(() => rescueKernelParams('riscv64'), /kernel-params\.json has no consoles for riscv64/);
  });
});
