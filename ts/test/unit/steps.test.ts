/**
 * Every step's failure branches against the fake Remote (ts/test/lib/fake-remote.ts): the sudo/doas ladder,
 * boundary errors, stage and kexec failures, the wait step's outcomes, and a whole dry run's round trips.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../boundary/schema.js';
import { ExitCode, InterruptedError } from '../../errors.js';
import type { Image } from '../../image.js';
import type { Options, Session } from '../../operation.js';
import { run } from '../../run.js';
import { kexec } from '../../steps/kexec.js';
import { preflight } from '../../steps/preflight.js';
import { stage, unstage } from '../../steps/stage.js';
import { waitForRescue } from '../../steps/wait.js';
import { FakeRemote, RecordingUi, type FakeReply } from '../lib/fake-remote.js';
import { HEALTHY_FACTS } from '../lib/preflight-facts.js';
import { FIXTURES } from './network-fixtures.js';

/** What preflight.sh prints on a healthy host, followed by a real capture (the Hetzner fixture). */
function preflightOutput(change: Record<string, string | undefined> = {}): string {
  const facts: Record<string, string | undefined> = {
    ...HEALTHY_FACTS,
    ...change,
  };
  const lines = Object.entries(facts)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  lines.push('@@emergency-section host-key /etc/ssh/ssh_host_ed25519_key present', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOnly root@web1');
  lines.push('@@emergency-section authorized-keys root /root/.ssh/authorized_keys', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey op@laptop');
  lines.push('@@emergency-section preflight-end');
  return `${lines.join('\n')}\n${readFileSync(`${FIXTURES}hetzner-dedicated.txt`, 'utf8')}`;
}

const ok = (stdout: string) => ({ code: 0, stdout });
const sudoSays = (stderr: string) => ({ code: 1, stderr });

describe('preflight: how the login user becomes root', () => {
  // One line per case: the login user, the scripted answers, and how it ends.
  const cases: [string, string, FakeReply[], boolean, string | RegExp][] = [
    ['root runs it directly', 'root', [{ script: 'preflight.sh', as: 'root', reply: ok(preflightOutput()) }], false, 'root'],
    ['passwordless sudo', 'admin', [{ script: 'preflight.sh', as: 'sudo', reply: ok(preflightOutput()) }], false, 'sudo'],
    [
      'sudo with a password typed on the terminal',
      'admin',
      [
        { script: 'preflight.sh', as: 'sudo', reply: sudoSays('sudo: a password is required') },
        { script: 'preflight.sh', as: 'sudo-password', reply: ok(preflightOutput()) },
      ],
      true,
      'sudo-password',
    ],
    [
      'a password but no terminal',
      'admin',
      [{ script: 'preflight.sh', as: 'sudo', reply: sudoSays('sudo: a password is required') }],
      false,
      /without a password.*no terminal/,
    ],
    [
      'a wrong password',
      'admin',
      [
        { script: 'preflight.sh', as: 'sudo', reply: sudoSays('sudo: a password is required') },
        { script: 'preflight.sh', as: 'sudo-password', reply: sudoSays('Sorry, try again.\nsudo: 1 incorrect password attempt') },
      ],
      true,
      /refused the password/,
    ],
    [
      'no sudo, but doas',
      'admin',
      [
        { script: 'preflight.sh', as: 'sudo', reply: sudoSays('sh: 1: sudo: not found') },
        { script: 'preflight.sh', as: 'doas', reply: ok(preflightOutput()) },
      ],
      false,
      'doas',
    ],
    [
      'neither sudo nor doas rights',
      'admin',
      [
        { script: 'preflight.sh', as: 'sudo', reply: sudoSays('admin is not in the sudoers file.') },
        { script: 'preflight.sh', as: 'doas', reply: sudoSays('doas: Operation not permitted') },
      ],
      false,
      /cannot become root.*no sudo or doas rights/,
    ],
  ];
  for (const [name, user, replies, terminal, outcome] of cases) {
    it(name, async () => {
      const remote = new FakeRemote(user, replies);
      remote.become = user === 'root' ? 'root' : 'sudo';
      const ui = new RecordingUi();
      ui.terminal = terminal;
      if (typeof outcome === 'string') {
        const { report } = await preflight(remote, ui);
        assert.equal(remote.become, outcome);
        assert.equal(report.facts.hostname, 'web1');
        if (outcome === 'sudo-password') assert.equal(remote.password?.toString(), 'secret', 'the typed password is kept for sudo -S');
      } else {
        await assert.rejects(preflight(remote, ui), (e: { exitCode: number; message: string }) => e.exitCode === ExitCode.Refused && outcome.test(e.message));
      }
    });
  }

  it('Ctrl-C at the password prompt is an interruption (130), not an internal error', async () => {
    const remote = new FakeRemote('admin', [{ script: 'preflight.sh', as: 'sudo', reply: sudoSays('sudo: a password is required') }]);
    remote.become = 'sudo';
    const ui = new RecordingUi();
    ui.terminal = true;
    ui.passwordAnswer = new InterruptedError('at the prompt');
    await assert.rejects(preflight(remote, ui), (e: { exitCode: number }) => e.exitCode === ExitCode.Interrupted);
  });
});

describe('preflight: the boundary', () => {
  const cases: [string, Record<string, string | undefined>, RegExp][] = [
    ['a fact the schema does not know', { has_sudo: '1' }, /unexpected fact "has_sudo"/],
    ['a missing fact', { mem_total_kb: undefined }, /fact "mem_total_kb" is missing/],
    ['a malformed flag', { has_dd: 'yes' }, /fact "has_dd"/],
    ['an unknown kexec state', { kexec_load_disabled: '2' }, /fact "kexec_load_disabled"/],
  ];
  for (const [name, change, message] of cases) {
    it(`names ${name}`, async () => {
      const remote = new FakeRemote('root', [{ script: 'preflight.sh', reply: ok(preflightOutput(change)) }]);
      await assert.rejects(preflight(remote, new RecordingUi()), (e: Error) => e instanceof ProtocolError && message.test(e.message));
    });
  }
  it('output cut short is a connection problem (exit 3)', async () => {
    const text = preflightOutput().split('@@emergency-section preflight-end')[0];
    const remote = new FakeRemote('root', [{ script: 'preflight.sh', reply: ok(text) }]);
    await assert.rejects(
      preflight(remote, new RecordingUi()),
      (e: { exitCode: number; message: string }) => e.exitCode === ExitCode.Connection && /cut short/.test(e.message),
    );
  });
});

/** A stand-in image file: the stage step streams its first bytes as busybox, then the whole file. */
const imageFile = join(mkdtempSync(join(tmpdir(), 'emergency-steps-')), 'image.tar');
writeFileSync(imageFile, Buffer.alloc(4096, 1));
const image: Image = {
  path: imageFile,
  tarBytes: 4096,
  arch: 'x86_64',
  name: 'test',
  cmdline: 'emergency.rescue=1',
  unpackedBytes: 30 << 20,
  kernelBytes: 8 << 20,
  initrdBytes: 20 << 20,
  rescueUnpackedBytes: 60 << 20,
  busybox: { offset: 0, size: 512, sha256: 'x' },
  tarSha256: 'c'.repeat(64),
  sumsSha256: 'y',
  dynamicTools: false,
};
const place = { parent: '/run', mode: 'mkdir' as const, tmpfsBytes: 64 << 20 };

describe('stage', () => {
  it('returns the staged directories and registers the keeper for cleanup', async () => {
    const remote = new FakeRemote('root', [
      { script: 'stage.sh', reply: {}, lines: ['stage_dir=/run/emergency.7', 'image_dir=/run/emergency.7/emergency-image', 'staged=1'], exit: false },
    ]);
    const session: Session = {};
    const staged = await stage(remote, new RecordingUi(), image, place, session);
    assert.deepEqual([staged.dir, staged.imageDir], ['/run/emergency.7', '/run/emergency.7/emergency-image']);
    // The host checks the stream against the whole tarball's hash (docs/image-layout.md, "On the host").
    assert.deepEqual(remote.calls[0].args.slice(2), [String(64 << 20), '512', 'x', '4096', 'c'.repeat(64)]);
    assert.equal(session.stage, staged);
    assert.equal(await unstage(session, 1000), true, 'unstage ends the keeper');
    assert.equal(session.stage, undefined);
  });
  it('with the memory for it, the tarball goes whole into a tmpfs that also holds it (stage.sh file)', async () => {
    const remote = new FakeRemote('root', [
      { script: 'stage.sh', reply: {}, lines: ['stage_dir=/run/emergency.7', 'image_dir=/run/emergency.7/emergency-image', 'staged=1'], exit: false },
    ]);
    const session: Session = {};
    const ui = new RecordingUi();
    await stage(remote, ui, image, place, session, undefined, { via: 'file', tmpfsBytes: (64 << 20) + 4096 });
    assert.ok(ui.lines.includes('info staged in a tmpfs at /run/emergency.7; the tarball hashed on the host before it was unpacked'), ui.lines.join('\n'));
    assert.deepEqual(remote.calls[0].args.slice(2), [String((64 << 20) + 4096), '512', 'x', '4096', 'c'.repeat(64), 'file']);
    assert.equal(await unstage(session, 1000), true);
  });
  const failures: [string, string[], RegExp, RegExp][] = [
    [
      "an upload whose hash is not the checked image's",
      [
        'stage_dir=/run/emergency.7',
        `@@emergency-error image checksum mismatch: the upload has sha256 ${'d'.repeat(64)}, not the ${'c'.repeat(64)} the image has; refused, nothing of it ran`,
        'stage_removed=/run/emergency.7',
      ],
      /image checksum mismatch: the upload has sha256 d{64}, not the c{64}/,
      /the file changed while it was sent.*Nothing of it ran/,
    ],
    [
      'a tarball that breaks off',
      ['stage_dir=/run/emergency.7', '@@emergency-error upload broke off or the image tarball is corrupt', 'stage_removed=/run/emergency.7'],
      /upload broke off/,
      /corrupted the upload/,
    ],
    ['no tmpfs', ['@@emergency-error cannot mount a tmpfs on /run/emergency.7'], /cannot mount a tmpfs/, /Nothing was changed/],
    ['an exit without a word', [], /the stage script exited with 1/, /Nothing was changed/],
  ];
  for (const [name, lines, message, fix] of failures) {
    it(`fails with the host's reason: ${name}`, async () => {
      const remote = new FakeRemote('root', [{ script: 'stage.sh', reply: { code: 1 }, lines }]);
      const session: Session = {};
      await assert.rejects(stage(remote, new RecordingUi(), image, place, session), (e: { exitCode: number; message: string; fix: string }) => {
        return e.exitCode === ExitCode.StageFailed && message.test(e.message) && fix.test(e.fix);
      });
      assert.equal(session.stage, undefined, 'nothing left to clean up');
    });
  }
});

describe('kexec', () => {
  const data = {
    networkScript: 'true\n',
    authorizedKeys: 'ssh-ed25519 AAAA op\n',
    env: { hostname: 'web1', boot_id: 'old-boot' },
    oldSystem: 'old root:  /dev/vda1 (ext4, rw)\n',
  };
  it('reports how it loaded and sends the restore data, not the host keys', async () => {
    const remote = new FakeRemote('root', [
      { script: 'inline', reply: ok('host_keys_packed=2\nkexec_method=kexec_file_load\nkexec_loaded=1\nkexec_triggered=1\n') },
    ]);
    const ui = new RecordingUi();
    await kexec(remote, ui, '/run/e/emergency-image', ['/etc/ssh/ssh_host_ed25519_key'], data);
    assert.ok(ui.lines.some((l) => /loaded with kexec_file_load, 2 host key\(s\)/.test(l)));
    const call = remote.calls[0];
    assert.deepEqual(call.args, ['/run/e/emergency-image', '/etc/ssh/ssh_host_ed25519_key'], 'only key paths travel');
    assert.match(String(call.input), /hostname=web1/);
    assert.match(String(call.input), /old root: {2}\/dev\/vda1 \(ext4, rw\)/, 'the banner text for the rescue');
  });
  it('turns a refused load into one error with what the kernel said', async () => {
    const remote = new FakeRemote('root', [
      {
        script: 'inline',
        reply: {
          code: 1,
          stdout:
            'host_keys_packed=1\nkexec_file_load_error=Operation not permitted\nkexec_load_error=Operation not permitted\n@@emergency-error the kernel refused to load the rescue system\n',
        },
      },
    ]);
    await assert.rejects(kexec(remote, new RecordingUi(), '/x', ['/k'], data), (e: { exitCode: number; message: string }) => {
      return (
        e.exitCode === ExitCode.StageFailed &&
        /kernel refused.*\(kexec_file_load: Operation not permitted; kexec_load: Operation not permitted — the running kernel does not allow it: locked down/.test(
          e.message,
        )
      );
    });
  });
  it('names an unexpected fact from the staged script', async () => {
    const remote = new FakeRemote('root', [{ script: 'inline', reply: ok('kexec_triggered=1\nkexec_mode=fast\n') }]);
    await assert.rejects(kexec(remote, new RecordingUi(), '/x', ['/k'], data), /unexpected fact "kexec_mode"/);
  });
  it('gives up at its deadline when the host does not answer, saying the host may still jump', async () => {
    // A host stuck in its kernel: the ssh command never returns (kexec-tools' own sync() on a dying disk did this).
    class StuckRemote extends FakeRemote {
      override run(): Promise<never> {
        this.roundTrips++;
        return new Promise(() => {});
      }
    }
    await assert.rejects(
      kexec(new StuckRemote('root', []), new RecordingUi(), '/x', ['/k'], data, 50),
      (e: { exitCode: number; message: string; fix: string }) => {
        assert.equal(e.exitCode, ExitCode.NotBack);
        assert.match(e.message, /the kexec step did not finish within 0\.05 s: kexec-run\.sh on fake-host is stuck/);
        assert.match(e.fix, /may still jump into the rescue system/);
        return true;
      },
    );
  });
});

describe('wait', () => {
  const rescue = { code: 0, stdout: 'new-boot\nconsole=ttyS0 emergency.rescue=1\n' };
  const cases: [string, { code?: number; stdout?: string; stderr?: string }[], number, string | RegExp][] = [
    [
      'the old system first, then the rescue',
      [{ code: 0, stdout: 'old-boot\nroot=/dev/sda1\n' }, { code: 255, stderr: 'Connection refused' }, rescue],
      1,
      'new-boot',
    ],
    ['root refused on the old system (sudo user) is not "gone"', [{ code: 255, stderr: 'root@h: Permission denied (publickey).' }, rescue], 1, 'new-boot'],
    [
      'a new boot without the rescue marker, too early for the fallback',
      [{ code: 0, stdout: 'other-boot\nroot=/dev/sda1\n' }],
      ExitCode.NotBack,
      /running its installed system, not the rescue: it rebooted for another reason \(a watchdog reset, a panic/,
    ],
    [
      'a changed host key',
      [{ code: 255, stderr: '@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@' }],
      ExitCode.HostKeyChanged,
      /different SSH host key/,
    ],
    ['nothing answers in time', [], ExitCode.NotBack, /did not answer within 1 s/],
  ];
  const report = 'format\t1\t-\tr\nstep\tnetwork\tfailed\tnetwork.sh reported 1 failed step(s)\ndone\t-\tfailed\t1 failed step(s)\n';
  const confirmed = `fallback_state=confirmed\nfallback_seconds=900\nfallback_confirmed_by=cli\nfallback_confirmed_after_s=9\n@@emergency-section restore-report\n${report}`;
  it('the probe that finds the rescue carries its confirmation and report: one ssh run, and a failed restore step warned about', async () => {
    const remote = new FakeRemote('root', []);
    remote.probeReplies = [{ code: 0, stdout: `${rescue.stdout}${confirmed}` }];
    const ui = new RecordingUi();
    const up = await waitForRescue(remote, ui, { oldBootId: 'old-boot', triggeredAt: Date.now(), timeoutSeconds: 5, fallbackReboot: 900 });
    assert.equal(remote.probes.length, 1, 'no second connection');
    assert.match(remote.probes[0], /fallback-reboot\.sh confirm cli/);
    assert.equal(up.answer?.fallback.fallback_state, 'confirmed');
    assert.equal(up.answer?.report?.result, 'failed');
    assert.ok(ui.lines.some((l) => /^warn restore: network failed: network\.sh reported 1/.test(l)));
  });
  it('a rescue whose probe answer says nothing more is confirmed in a second run, and warns about a failed restore step', async () => {
    const remote = new FakeRemote('root', []);
    remote.probeReplies = [rescue, { code: 0, stdout: confirmed }];
    const ui = new RecordingUi();
    await waitForRescue(remote, ui, { oldBootId: 'old-boot', triggeredAt: Date.now(), timeoutSeconds: 5, fallbackReboot: 900 });
    assert.doesNotMatch(remote.probes[1], /boot_id/, 'the second run is the confirmation alone');
    assert.match(remote.probes[1], /fallback-reboot\.sh confirm cli/, 'the confirm call follows the verified probe');
    assert.ok(
      ui.lines.some((l) => /^info fallback reboot confirmed .* \(9 s into its 15 min\)/.test(l)),
      ui.lines.join('\n'),
    );
    assert.ok(ui.lines.some((l) => /^warn restore: network failed: network\.sh reported 1/.test(l)));
    assert.ok(ui.lines.some((l) => /^warn the restore log is \/var\/log\/emergency-restore\.log/.test(l)));
  });
  const stillRunning =
    'fallback_state=confirmed\nfallback_seconds=900\nfallback_confirmed_by=cli\nfallback_confirmed_after_s=9\n@@emergency-section restore-running\n';
  it('a restore still running when the rescue is confirmed: its report is read in one more run, without confirming again', async () => {
    const remote = new FakeRemote('root', []);
    remote.probeReplies = [
      { code: 0, stdout: `${rescue.stdout}${stillRunning}` },
      { code: 0, stdout: `@@emergency-section restore-report\n${report}` },
    ];
    const ui = new RecordingUi();
    const up = await waitForRescue(remote, ui, { oldBootId: 'old-boot', triggeredAt: Date.now(), timeoutSeconds: 5, fallbackReboot: 900 });
    assert.equal(remote.probes.length, 2);
    assert.doesNotMatch(remote.probes[1], /confirm/, 'the confirmation is not repeated');
    assert.match(remote.probes[1], /emergency-restore\.report/);
    assert.equal(up.answer?.fallback.fallback_state, 'confirmed', 'the confirmation of the first run stays');
    assert.equal(up.answer?.report?.result, 'failed');
    assert.equal(up.answer?.restoreRunning, undefined);
    assert.ok(
      ui.lines.some((l) => /^info the restore is still running .* waiting up to 40 s/.test(l)),
      ui.lines.join('\n'),
    );
    assert.ok(ui.lines.some((l) => /^warn restore: network failed: network\.sh reported 1/.test(l)));
    // Only what the late report says is warned about: "still running" was no problem, just a reason to wait.
    assert.ok(!ui.lines.some((l) => /still running after/.test(l)), ui.lines.join('\n'));
  });
  it('a restore still running, and the later read fails: the rescue is up all the same, and the summary says the restore was running', async () => {
    const remote = new FakeRemote('root', []);
    remote.probeReplies = [
      { code: 0, stdout: `${rescue.stdout}${stillRunning}` },
      { code: 255, stderr: 'Connection reset by peer' },
    ];
    const ui = new RecordingUi();
    const up = await waitForRescue(remote, ui, { oldBootId: 'old-boot', triggeredAt: Date.now(), timeoutSeconds: 5, fallbackReboot: 900 });
    assert.equal(up.answer?.restoreRunning, true);
    assert.ok(
      ui.lines.some((l) => /^warn could not read the restore report after it finished: Connection reset by peer/.test(l)),
      ui.lines.join('\n'),
    );
    assert.ok(
      ui.lines.some((l) => /^warn the restore was still running after 6 s: .*see \/var\/log\/emergency-restore\.log/.test(l)),
      ui.lines.join('\n'),
    );
  });
  it('a sudo user: root refused, the installed system back after the fallback time → exit 7 naming the fallback', async () => {
    const remote = new FakeRemote('admin', []);
    remote.probeReplies = [
      { code: 255, stderr: 'root@h: Permission denied (publickey).' },
      { code: 0, stdout: 'installed-boot\nroot=/dev/sda1\n' },
    ];
    const wait = waitForRescue(remote, new RecordingUi(), { oldBootId: 'old-boot', triggeredAt: Date.now() - 70_000, timeoutSeconds: 100, fallbackReboot: 60 });
    await assert.rejects(
      wait,
      (e: { exitCode: number; message: string; fix: string }) =>
        e.exitCode === ExitCode.NotBack && /the fallback reboot \(1 min\) brought it back/.test(e.message) && /Log in as usual/.test(e.fix),
    );
  });
  for (const [name, probes, code, outcome] of cases) {
    it(name, async () => {
      const remote = new FakeRemote('root', []);
      remote.probeReplies = probes;
      const wait = waitForRescue(remote, new RecordingUi(), { oldBootId: 'old-boot', triggeredAt: Date.now(), timeoutSeconds: 1, fallbackReboot: 900 });
      if (typeof outcome === 'string') assert.equal((await wait).bootId, outcome);
      else await assert.rejects(wait, (e: { exitCode: number; message: string }) => e.exitCode === code && outcome.test(e.message));
    });
  }
});

describe('run', () => {
  const options: Options = {
    destination: 'fake-host',
    sshOptions: [],
    dryRun: true,
    dumpNetwork: false,
    yes: true,
    timeout: 5,
    connectTimeout: 5,
    shell: false,
    debug: false,
    flake: '.',
    fallbackReboot: 900,
    ignorePreflightErrors: [],
  };
  it('a dry run takes two round trips, lists every check and changes nothing', async () => {
    const remote = new FakeRemote('root', [{ script: 'preflight.sh', reply: ok(preflightOutput()) }]);
    const ui = new RecordingUi();
    await run(options, remote, ui, {}, image);
    assert.equal(remote.roundTrips, 2);
    assert.deepEqual(
      remote.calls.map((c) => c.script),
      ['preflight.sh'],
      'nothing but the read-only preflight ran',
    );
    assert.ok(remote.closed);
    const out = ui.lines.filter((l) => l.startsWith('out ')).join('\n');
    assert.match(out, /pass\s+memory/);
    assert.match(out, /pass\s+host-keys/);
  });
  it('refuses with every failed check named, and an ignorable one can be ignored', async () => {
    const tight = ok(preflightOutput({ mem_available_kb: '1000', container: 'lxc' }));
    await assert.rejects(
      run(options, new FakeRemote('root', [{ script: 'preflight.sh', reply: tight }]), new RecordingUi(), {}, image),
      (e: { reasons: { check: string }[] }) => {
        return e.reasons.map((r) => r.check).join(',') === 'container,memory';
      },
    );
    const ui = new RecordingUi();
    await run(
      { ...options, ignorePreflightErrors: ['memory', 'container'] },
      new FakeRemote('root', [{ script: 'preflight.sh', reply: tight }]),
      ui,
      {},
      image,
    );
    assert.ok(ui.lines.some((l) => /warn \[memory\] too little free memory.*ignored/.test(l)));
    assert.match(ui.lines.filter((l) => l.startsWith('out ')).join('\n'), /ignored\s+memory/);
  });
});
