/**
 * scripts/watchdog.sh against a fake sysfs and device directory, under dash and busybox ash: when the host arms
 * a watchdog before the jump, and how the rescue feeds, stops or keeps feeding it (docs/watchdog.md).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO } from '../../test-image/build.js';

const SCRIPT = join(REPO, 'scripts/watchdog.sh');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const shells = [['dash'], ['busybox', 'ash']].filter((s) => has(s[0]));

interface FakeWatchdog {
  module: string;
  /** What the driver calls itself (sysfs identity, and its driver's name). */
  identity: string;
  /** Whether the class device has a parent device (iTCO_wdt) or is virtual (i6300esb). */
  parent?: boolean;
  timeout: number;
  state: 'active' | 'inactive';
}

/** A sysfs with /sys/class/watchdog/watchdog0 (or none), a dev dir, a fallback state dir, a kmsg file. */
function fakeHost(root: string, dog: FakeWatchdog | undefined, fallback: { confirmed?: boolean; off?: boolean } = {}) {
  const sys = join(root, 'sys');
  const dev = join(root, 'dev');
  const state = join(root, 'fallback');
  mkdirSync(join(sys, 'class/watchdog'), { recursive: true });
  mkdirSync(dev);
  mkdirSync(join(state, 'decision'), { recursive: true });
  if (dog) {
    const wd = join(sys, 'class/watchdog/watchdog0');
    mkdirSync(join(sys, 'module', dog.module, 'drivers', `pci:${dog.identity}`), { recursive: true });
    mkdirSync(wd);
    writeFileSync(join(wd, 'identity'), `${dog.identity}\n`);
    if (dog.parent) {
      mkdirSync(join(sys, 'devices/platform/wdt/driver'), { recursive: true });
      symlinkSync(join(sys, 'module', dog.module), join(sys, 'devices/platform/wdt/driver/module'));
      symlinkSync(join(sys, 'devices/platform/wdt'), join(wd, 'device'));
    }
    writeFileSync(join(wd, 'timeout'), `${dog.timeout}\n`);
    writeFileSync(join(wd, 'state'), `${dog.state}\n`);
    writeFileSync(join(wd, 'nowayout'), '0\n');
    writeFileSync(join(dev, 'watchdog0'), '');
  }
  if (fallback.confirmed) writeFileSync(join(state, 'decision/confirmed'), 'cli\n12\n');
  if (fallback.off) writeFileSync(join(state, 'seconds'), 'off\n');
  writeFileSync(join(root, 'kmsg'), '');
  return { sys, dev, state, kmsg: join(root, 'kmsg') };
}

describe('scripts/watchdog.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-watchdog-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  const run = (shell: string[], host: ReturnType<typeof fakeHost>, args: string[], timeoutMs = 10_000) =>
    spawnSync(shell[0], [...shell.slice(1), SCRIPT, ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
      env: { PATH: process.env.PATH, EMERGENCY_SYSFS: host.sys, EMERGENCY_DEV: host.dev, EMERGENCY_FALLBACK_DIR: host.state, EMERGENCY_CONSOLE: host.kmsg },
    });
  const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');

  it('is shellcheck-clean', { skip: has('shellcheck') ? false : 'shellcheck not installed' }, () => {
    const r = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
  });

  // arm: [what, the watchdog, modules the image takes over, expected fact line]
  const armCases: [string, FakeWatchdog | undefined, string[], RegExp][] = [
    ['no watchdog device', undefined, ['i6300esb'], /^watchdog_skipped=none: no watchdog device$/m],
    [
      'a driver the rescue cannot take over',
      { module: 'iTCO_wdt', identity: 'iTCO_wdt', parent: true, timeout: 30, state: 'inactive' },
      ['i6300esb'],
      /^watchdog_skipped=watchdog0: its driver \(iTCO_wdt\) is not one the rescue image takes over$/m,
    ],
    [
      'an image that takes none over',
      { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 30, state: 'inactive' },
      [],
      /^watchdog_skipped=watchdog0: its driver \(i6300ESB timer\) is not one/m,
    ],
    [
      'a timeout too short for the rescue to boot',
      { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 10, state: 'inactive' },
      ['i6300esb'],
      /^watchdog_skipped=watchdog0: timeout 10 s does not cover/m,
    ],
    [
      'a watchdog someone else runs',
      { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 30, state: 'active' },
      ['i6300esb'],
      /^watchdog_skipped=watchdog0: already running under another owner$/m,
    ],
  ];
  for (const shell of shells) {
    for (const [what, dog, modules, expected] of armCases) {
      it(`${shell.join(' ')}: arm skips ${what}, touching nothing`, () => {
        const host = fakeHost(join(dir, String(n++)), dog);
        const r = run(shell, host, ['arm', ...modules]);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, expected);
        assert.doesNotMatch(r.stdout, /watchdog_armed/);
        if (dog) {
          assert.equal(read(join(host.sys, 'class/watchdog/watchdog0/nowayout')), '0\n', 'nowayout untouched');
          assert.equal(read(join(host.dev, 'watchdog0')), '', 'the device was not opened');
        }
      });
    }

    it(`${shell.join(' ')}: arm sets nowayout, then starts the watchdog with one ping, and says so`, () => {
      const host = fakeHost(join(dir, String(n++)), { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 30, state: 'inactive' });
      const r = run(shell, host, ['arm', 'iTCO_wdt', 'i6300esb']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^watchdog_armed=watchdog0\nwatchdog_timeout_s=30$/m);
      assert.equal(read(join(host.sys, 'class/watchdog/watchdog0/nowayout')), '1\n');
      assert.equal(read(join(host.dev, 'watchdog0')), '.', 'opened and pinged, closed without the magic V');
      assert.match(read(host.kmsg), /watchdog0 \(i6300esb\) armed with 30 s/);
      assert.doesNotMatch(r.stdout, /watchdog_skipped/);
    });

    it(`${shell.join(' ')}: arm finds the driver through the parent device where there is one`, () => {
      const host = fakeHost(join(dir, String(n++)), { module: 'iTCO_wdt', identity: 'Intel TCO', parent: true, timeout: 30, state: 'inactive' });
      const r = run(shell, host, ['arm', 'iTCO_wdt']);
      assert.match(r.stdout, /^watchdog_armed=watchdog0$/m);
    });

    it(`${shell.join(' ')}: feed does nothing without a watchdog`, () => {
      const host = fakeHost(join(dir, String(n++)), undefined);
      const r = run(shell, host, ['feed']);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /no watchdog device: nothing to take over/);
    });

    for (const [what, fallback] of [
      ['confirmed', { confirmed: true }],
      ['with the fallback off', { off: true }],
    ] as const) {
      it(`${shell.join(' ')}: feed stops a watchdog that can stop once the rescue is ${what} (magic close)`, () => {
        const host = fakeHost(join(dir, String(n++)), { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 30, state: 'inactive' }, fallback);
        const r = run(shell, host, ['feed']);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /watchdog0 taken over: fed every 7 s until the rescue is confirmed/);
        assert.match(r.stdout, /watchdog0 stopped: the rescue is confirmed/);
        assert.equal(read(join(host.dev, 'watchdog0')), 'V');
      });
    }

    it(`${shell.join(' ')}: feed keeps feeding a watchdog that stays active after the magic close (the host's lock)`, () => {
      const host = fakeHost(join(dir, String(n++)), { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 8, state: 'active' }, { confirmed: true });
      const r = run(shell, host, ['feed'], 3000);
      assert.equal(r.signal, 'SIGTERM', 'still feeding when the test ended it');
      assert.match(r.stdout, /watchdog0 cannot be stopped \(nowayout\): fed for as long as the rescue runs/);
      assert.equal(read(join(host.dev, 'watchdog0')), '.', 'opened again and pinged');
    });

    it(`${shell.join(' ')}: feed keeps feeding until the rescue is confirmed`, () => {
      const host = fakeHost(join(dir, String(n++)), { module: 'i6300esb', identity: 'i6300ESB timer', timeout: 4, state: 'inactive' });
      const r = run(shell, host, ['feed'], 3500);
      assert.equal(r.signal, 'SIGTERM', 'not confirmed: still feeding');
      assert.match(read(join(host.dev, 'watchdog0')), /^\.{2,}$/, 'pinged every second (timeout 4 s)');
      assert.doesNotMatch(r.stdout, /stopped/);
    });
  }
});
