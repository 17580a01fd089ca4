/**
 * The wait step's probe command (ts/steps/wait.ts), run under dash and busybox ash as a login shell would run it
 * (`SHELL -c COMMAND`): the boot id and command line, and the confirmation only on the rescue. The /proc files are
 * swapped for temporary ones; the fallback script is absent here, so the rescue's answer is `not-armed`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { probeCommand, splitProbeAnswer } from '../../steps/wait.js';

const which = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
const SHELLS = [
  ['dash', which('dash')],
  ['busybox ash', which('busybox')],
].filter(([, path]) => path) as [string, string][];
const dir = mkdtempSync(join(tmpdir(), 'emergency-wait-probe-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the probe against a boot id and command line of our choosing. */
function runProbe(shell: [string, string], oldBootId: string, bootId: string, cmdline: string): string {
  writeFileSync(join(dir, 'boot_id'), `${bootId}\n`);
  writeFileSync(join(dir, 'cmdline'), `${cmdline}\n`);
  const command = probeCommand(oldBootId)
    .replaceAll('/proc/sys/kernel/random/boot_id', join(dir, 'boot_id'))
    .replaceAll('/proc/cmdline', join(dir, 'cmdline'))
    .replaceAll('/etc/emergency/fallback-reboot.sh', join(dir, 'absent.sh'));
  const args = shell[0] === 'busybox ash' ? ['ash', '-c', command] : ['-c', command];
  return execFileSync(shell[1], args, { encoding: 'utf8' });
}

describe('the wait probe', () => {
  const OLD = '0d6f1c3e-7a52-4c2e-9d3b-1f0e2a4b5c6d';
  const NEW = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
  // boot id, command line → does the probe confirm (does anything follow the two lines)?
  const cases: [string, string, string, boolean][] = [
    ['the old system (same boot id)', OLD, 'root=/dev/sda1 quiet', false],
    ['the installed system come back (new boot, no marker)', NEW, 'root=/dev/sda1 quiet', false],
    ['the rescue (new boot, marker)', NEW, 'console=ttyS0 emergency.rescue=1 panic=10', true],
    ['the marker last on the line', NEW, 'console=ttyS0 emergency.rescue=1', true],
    ['a marker-like word is no marker', NEW, 'emergency.rescue=10 xemergency.rescue=1', false],
    ['the marker on the old boot (a rescue rescued again is still the old boot)', OLD, 'emergency.rescue=1', false],
  ];
  for (const shell of SHELLS) {
    for (const [name, bootId, cmdline, confirms] of cases) {
      it(`${shell[0]}: ${name}`, () => {
        const answer = splitProbeAnswer(runProbe(shell, OLD, bootId, cmdline));
        assert.equal(answer.bootId, bootId);
        assert.equal(answer.cmdline, cmdline);
        assert.equal(answer.rest, confirms ? 'fallback_state=not-armed\n' : '');
      });
    }
  }
  it('an odd old boot id is quoted, not run', () => {
    const pwned = join(dir, 'pwned');
    const answer = splitProbeAnswer(runProbe(SHELLS[0], `x'; touch ${pwned}; '`, NEW, 'emergency.rescue=1'));
    assert.equal(answer.rest, 'fallback_state=not-armed\n');
    assert.equal(existsSync(pwned), false);
  });
});
