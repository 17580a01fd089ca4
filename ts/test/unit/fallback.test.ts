/**
 * The fallback reboot without QEMU: --fallback-reboot parsing, the texts, the rescue-side outputs parsed through their
 * schemas, and scripts/fallback-reboot.sh itself under dash and busybox ash with a stand-in reboot command and a
 * 2-second deadline (arm → reboot; arm → confirm → no reboot; a login without a terminal does not confirm).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { describeConfirmation, describeFallback, explainUnexpectedBoot, formatDuration, parseFallbackDuration, reportWarnings } from '../../fallback.js';
import { parseRescueAnswer } from '../../boundary/rescue.js';
import { parseArgs } from '../../args.js';
import { ExitCode } from '../../errors.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/fallback-reboot.sh', import.meta.url));

describe('--fallback-reboot', () => {
  const cases: [string, number | 'off'][] = [
    ['15m', 900],
    ['90s', 90],
    ['1h', 3600],
    ['1h30m', 5400],
    ['2m30s', 150],
    ['off', 'off'],
    ['OFF', 'off'],
  ];
  for (const [text, want] of cases) it(`${text} → ${want}`, () => assert.equal(parseFallbackDuration(text), want));

  const bad: [string, RegExp][] = [
    ['15', /not a duration.*90s, 10m, 1h/],
    ['10 minutes', /not a duration/],
    ['-5m', /not a duration/],
    ['', /not a duration/],
    ['10s', /too short.*at least 30s, or off/],
  ];
  for (const [text, want] of bad) it(`refuses ${JSON.stringify(text)}`, () => assert.throws(() => parseFallbackDuration(text), want));

  it('defaults to 15 minutes; a bad value is a usage error (exit 2) with the fix', async () => {
    assert.equal((await parseArgs(['root@h'])).fallbackReboot, 900);
    assert.equal((await parseArgs(['--fallback-reboot', 'off', 'root@h'])).fallbackReboot, 'off');
    await assert.rejects(parseArgs(['--fallback-reboot', 'soon', 'root@h']), (e: { exitCode: number; message: string }) => {
      assert.equal(e.exitCode, ExitCode.Usage);
      assert.match(e.message, /--fallback-reboot soon: not a duration\. Use .*90s, 10m, 1h/);
      return true;
    });
  });
});

describe('fallback texts', () => {
  const now = new Date(2026, 11, 1, 23, 50, 0);
  it('the confirmation screen names the local time and the duration, and which comes first', () => {
    const text = describeFallback(900, 600, now);
    assert.match(text, /reboots into its installed system at about 00:05 \(15 min after the rescue system starts\)/);
    assert.match(text, /emergency waits 10 min \(--timeout\) and gives up before the fallback reboot/);
    assert.match(describeFallback(60, 600, now), /at about 23:51 .*\n.*fallback reboot comes before emergency gives up/);
    assert.match(describeFallback('off', 600, now), /Fallback reboot: off/);
  });
  it('formats durations', () => {
    assert.equal(formatDuration(5400), '1 h 30 min');
    assert.equal(formatDuration(90), '1 min 30 s');
  });
  it('an unexpected boot after the fallback time is the fallback; before it, something else', () => {
    assert.match(explainUnexpectedBoot(75, 60).message, /the fallback reboot \(1 min\) brought it back/);
    assert.match(explainUnexpectedBoot(20, 60).message, /another reason \(a watchdog reset, a panic.*too early for the fallback/);
    assert.match(explainUnexpectedBoot(2000, 'off').message, /another reason/);
  });
});

describe('the rescue answer (fallback state + restore report)', () => {
  const report = [
    'format\t1\t-\temergency restore report',
    'step\thost-keys\tok\thost keys installed: 3',
    'step\tnetwork\tfailed\tnetwork.sh reported 1 failed step(s); see /var/log/emergency-restore.log',
    'network\t-\tfailed\troute 10.0.0.0/8 via 10.0.3.2: RTNETLINK answers: Network is unreachable',
    'network\t-\tskipped\tmultipath route 192.0.2.0/24 (not restored)',
    'step\tgateway\tfailed\tno default gateway answered within 8 s: 10.0.2.2 eth0,',
    'step\tlast-chance-dhcp\tok\tlast chance: DHCP started on eth0, next to the static addresses',
    'step\tfallback-reboot\tok\tarmed: reboots into the installed system unless confirmed within 60 s',
    'done\t-\tfailed\t2 failed step(s)',
  ].join('\n');
  const confirmed = 'fallback_state=confirmed\nfallback_seconds=60\nfallback_confirmed_by=cli\nfallback_confirmed_after_s=12\n';

  it('parses both and turns failures, skipped items and the last chance into warnings with the log path', () => {
    const answer = parseRescueAnswer(`${confirmed}@@emergency-section restore-report\n${report}\n`);
    assert.deepEqual(answer.fallback, { fallback_state: 'confirmed', fallback_seconds: 60, fallback_confirmed_by: 'cli', fallback_confirmed_after_s: 12 });
    assert.equal(answer.report?.result, 'failed');
    assert.equal(answer.report?.steps.length, 5);
    const warnings = reportWarnings(answer);
    assert.ok(warnings.some((w) => /network failed: network\.sh reported 1/.test(w)));
    assert.ok(warnings.some((w) => /network skipped: multipath route/.test(w)));
    assert.ok(warnings.some((w) => /no default gateway answered, so DHCP started on eth0/.test(w)));
    assert.match(warnings.at(-1)!, /\/var\/log\/emergency-restore\.log/);
    assert.match(describeConfirmation(answer.fallback, 31.2), /confirmed 31\.2 s after kexec \(12 s into its 1 min\)/);
  });
  it('a clean report gives no warnings', () => {
    const clean = 'format\t1\t-\tx\nstep\thost-keys\tok\t3\ndone\t-\tok\t0 failed step(s)\n';
    assert.deepEqual(reportWarnings(parseRescueAnswer(`${confirmed}@@emergency-section restore-report\n${clean}`)), []);
  });
  it('a missing or unfinished report is a warning, not silence', () => {
    assert.match(reportWarnings(parseRescueAnswer(`${confirmed}@@emergency-section restore-report\n`))[0], /no report at/);
    const unfinished = 'format\t1\t-\tx\nstep\thost-keys\tok\t3\n';
    assert.match(
      reportWarnings(parseRescueAnswer(`${confirmed}@@emergency-section restore-report\n${unfinished}`))[0],
      /not understood: .*restore\.sh did not finish/,
    );
    const badStatus = 'format\t1\t-\tx\nstep\thost-keys\tmaybe\t3\ndone\t-\tok\t0\n';
    assert.match(
      reportWarnings(parseRescueAnswer(`${confirmed}@@emergency-section restore-report\n${badStatus}`))[0],
      /not understood: line "1\.status": Invalid option/,
    );
  });
  it('a fallback state with a missing or unknown field is refused, naming it', () => {
    assert.throws(() => parseRescueAnswer('fallback_state=confirmed\nfallback_seconds=60\n'), /fallback_confirmed_by/);
    assert.throws(() => parseRescueAnswer('fallback_state=sleeping\n'), /fallback_state/);
    assert.throws(() => parseRescueAnswer('fallback_state=off\nsurprise=1\n'), /surprise/);
  });
});

const shells = [['dash'], ['busybox', 'ash']].filter((shell) => spawnSync(shell[0], [...shell.slice(1), '-c', 'true']).status === 0);

describe('scripts/fallback-reboot.sh', { skip: shells.length === 0 ? 'needs dash or busybox' : false }, () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const setup = (seconds: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'emergency-fallback-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'restore.env'), `hostname=h\nfallback_reboot_seconds=${seconds}\n`);
    const env = {
      ...process.env,
      EMERGENCY_DIR: dir,
      EMERGENCY_FALLBACK_DIR: join(dir, 'state'),
      EMERGENCY_CONSOLE: '/dev/null',
      EMERGENCY_FALLBACK_REBOOT: `echo rebooted >${join(dir, 'rebooted')}`,
    };
    return { dir, env };
  };
  const runScript = (shell: string[], env: NodeJS.ProcessEnv, ...args: string[]) =>
    spawnSync(shell[0], [...shell.slice(1), SCRIPT, ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const background = (shell: string[], env: NodeJS.ProcessEnv) =>
    new Promise<void>((resolve) => spawn(shell[0], [...shell.slice(1), SCRIPT, 'run'], { env, stdio: 'ignore' }).on('close', () => resolve()));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  for (const shell of shells) {
    const name = shell.join(' ');
    it(`${name}: not confirmed → reboots at the deadline; a late confirm is told so`, async () => {
      const { dir, env } = setup('2');
      const done = background(shell, env);
      await sleep(700);
      assert.match(runScript(shell, env, 'status').stdout, /fallback_state=armed\nfallback_seconds=2\nfallback_remaining_s=[12]\n/);
      await done;
      assert.equal(readFileSync(join(dir, 'rebooted'), 'utf8'), 'rebooted\n');
      const late = runScript(shell, env, 'confirm', 'cli');
      assert.equal(late.status, 1);
      assert.match(late.stdout, /fallback_state=rebooting/);
    });
    it(`${name}: confirmed → no reboot; a second confirm reports the first`, async () => {
      const { dir, env } = setup('2');
      const done = background(shell, env);
      await sleep(700);
      const first = runScript(shell, env, 'confirm', 'cli');
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stdout, /fallback_state=confirmed\nfallback_seconds=2\nfallback_confirmed_by=cli\nfallback_confirmed_after_s=\d+\n/);
      // login without a terminal (stdin is not a tty here) neither confirms nor complains.
      assert.equal(runScript(shell, env, 'login').status, 0);
      await done;
      await sleep(1500);
      assert.equal(existsSync(join(dir, 'rebooted')), false, 'no reboot after a confirmation');
      assert.match(runScript(shell, env, 'confirm', 'login').stdout, /fallback_confirmed_by=cli/);
    });
    it(`${name}: login without a terminal does not confirm`, async () => {
      const { dir, env } = setup('2');
      const done = background(shell, env);
      await sleep(500);
      assert.equal(runScript(shell, env, 'login').status, 0);
      await done;
      assert.equal(readFileSync(join(dir, 'rebooted'), 'utf8'), 'rebooted\n', 'rebooted although a non-terminal login ran');
    });
    it(`${name}: off in the restore data → nothing armed`, () => {
      const { env } = setup('off');
      assert.equal(runScript(shell, env, 'run').status, 0);
      assert.equal(runScript(shell, env, 'status').stdout, 'fallback_state=off\n');
      assert.equal(runScript(shell, env, 'confirm', 'cli').status, 0);
    });
  }
});
