/**
 * The wait step's probe command (ts/steps/wait.ts), run under dash and busybox ash as a login shell would run it
 * (`SHELL -c COMMAND`): the boot id and command line, and the confirmation only on the rescue. The /proc files are
 * swapped for temporary ones; the fallback script is absent here, so the rescue's answer is `not-armed`.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CONFIRM_AND_REPORT, LATE_REPORT, parseLateReport, parseRescueAnswer, REPORT_WAIT_S } from '../../boundary/rescue.js';
import { restoreFromAnswer } from '../../rescue-summary.js';
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

/**
 * CONFIRM_AND_REPORT while restore.sh's network phase may still run (sshd answers before it ends): the confirmation
 * comes at once, the report is waited for while its .tmp is there, at most REPORT_WAIT_S. The fallback script is a
 * stand-in that notes when it confirmed.
 */
describe('the confirmation and report command, while the restore runs', () => {
  const REPORT = 'format\t1\t-\temergency restore report\nstep\tnetwork\tok\tnetwork restored\ndone\t-\tok\t0 failed step(s)\n';
  let n = 0;
  function rescue() {
    const root = join(dir, `rescue-${++n}`);
    mkdirSync(root);
    const report = join(root, 'emergency-restore.report');
    const confirmed = join(root, 'confirmed');
    writeFileSync(join(root, 'fallback.sh'), `echo confirmed >${confirmed}\necho fallback_state=off\n`);
    const command = CONFIRM_AND_REPORT.replaceAll('/var/log/emergency-restore.report', report).replaceAll(
      '/etc/emergency/fallback-reboot.sh',
      join(root, 'fallback.sh'),
    );
    return { report, confirmed, command };
  }
  function run(shell: [string, string], command: string): Promise<{ stdout: string; seconds: number }> {
    const started = Date.now();
    const args = shell[0] === 'busybox ash' ? ['ash', '-c', command] : ['-c', command];
    return new Promise((resolve, reject) =>
      execFile(shell[1], args, { encoding: 'utf8' }, (error, stdout) => (error ? reject(error) : resolve({ stdout, seconds: (Date.now() - started) / 1000 }))),
    );
  }
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  for (const shell of SHELLS) {
    it(`${shell[0]}: confirms first, then prints the report once the network phase moves it into place`, async () => {
      const r = rescue();
      writeFileSync(`${r.report}.tmp`, 'format\t1\t-\temergency restore report\n');
      const answer = run(shell, r.command);
      await sleep(800);
      assert.equal(existsSync(r.confirmed), true, 'confirmed before the report exists');
      writeFileSync(`${r.report}.new`, REPORT);
      // What restore.sh does at its end: the report appears and the .tmp goes in one rename.
      renameSync(`${r.report}.new`, r.report);
      rmSync(`${r.report}.tmp`);
      const { stdout, seconds } = await answer;
      assert.ok(seconds < 3, `returned ${seconds} s after the start, soon after the report appeared`);
      const parsed = parseRescueAnswer(stdout);
      // The section's body, as the sections parser gives it: without the last newline.
      assert.equal(parsed.reportText, REPORT.trimEnd());
      assert.equal(parsed.report?.result, 'ok');
    });

    it(`${shell[0]}: a network phase still running after REPORT_WAIT_S is said, not waited for longer`, async () => {
      const r = rescue();
      writeFileSync(`${r.report}.tmp`, 'format\t1\t-\temergency restore report\n');
      const { stdout, seconds } = await run(shell, r.command);
      assert.ok(seconds >= REPORT_WAIT_S - 0.5 && seconds < REPORT_WAIT_S + 3, `waited ${seconds} s`);
      const parsed = parseRescueAnswer(stdout);
      assert.equal(parsed.fallback.fallback_state, 'off');
      assert.equal(parsed.restoreRunning, true);
      assert.equal(parsed.reportText, undefined);
      assert.match(parsed.reportProblem ?? '', new RegExp(`still running after ${REPORT_WAIT_S} s`));
      assert.deepEqual(restoreFromAnswer(parsed, '/R'), {
        none: 'the restore was still running (no report at /R yet); log in to see the banner once it is done',
      });
    });

    it(`${shell[0]}: the later read (LATE_REPORT) waits on past REPORT_WAIT_S for the report, and keeps the earlier confirmation`, async () => {
      const r = rescue();
      writeFileSync(`${r.report}.tmp`, 'format\t1\t-\temergency restore report\n');
      const command = LATE_REPORT.replaceAll('/var/log/emergency-restore.report', r.report);
      const answer = run(shell, command);
      await sleep((REPORT_WAIT_S + 1) * 1000);
      writeFileSync(r.report, REPORT);
      rmSync(`${r.report}.tmp`);
      const { stdout, seconds } = await answer;
      assert.ok(seconds > REPORT_WAIT_S && seconds < REPORT_WAIT_S + 3, `returned after ${seconds} s`);
      assert.equal(existsSync(r.confirmed), false, 'no confirmation in the later read');
      const earlier = parseRescueAnswer(
        'fallback_state=confirmed\nfallback_seconds=900\nfallback_confirmed_by=cli\nfallback_confirmed_after_s=9\n@@emergency-section restore-running\n',
      );
      const parsed = parseLateReport(stdout, earlier);
      assert.equal(parsed.fallback.fallback_state, 'confirmed');
      assert.equal(parsed.report?.result, 'ok');
      assert.equal(parsed.restoreRunning, undefined);
    });

    it(`${shell[0]}: no report and no .tmp (restore.sh never ran) answers at once, without a section`, async () => {
      const r = rescue();
      const { stdout, seconds } = await run(shell, r.command);
      assert.ok(seconds < 1.5, `took ${seconds} s`);
      assert.equal(stdout, 'fallback_state=off\n');
      assert.equal(parseRescueAnswer(stdout).restoreRunning, undefined);
    });
  }
});
