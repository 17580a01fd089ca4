/**
 * The fault matrix, end to end (needs QEMU): every way a rescue can be refused, interrupted or made
 * harder, against QEMU test servers through the real CLI. Each refusal or interruption asserts the documented
 * exit code and that the host is exactly as it was found (mounts, staging places, kexec state, boot, network).
 * docs/fault-matrix.md is the same matrix as a table.
 *
 * One `describe` per server; on the shared default server the refusals run first and the rescue last.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync, closeSync, readSync, writeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { ExitCode } from '../../errors.js';
import { SshRemote } from '../../ssh.js';
import { waitForRescue } from '../../steps/wait.js';
import { listTar } from '../../tar.js';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, startCli, targetArgs, type CliResult } from '../lib/cli.js';
import { RecordingUi } from '../lib/fake-remote.js';
import { hostSnapshot, waitForNoStage } from '../lib/host-snapshot.js';
import { networkDifferences, parseNetworkState, READ_NETWORK } from '../lib/network-state.js';
import { findInProcessTree, runCliInPty } from '../lib/pty.js';
import { freePort } from '../lib/qemu.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';
import { knownHostsLines, makeKey, type KeyPair } from '../lib/ssh.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';

/** The CLI's ssh arguments for a test server with a chosen user, key and known_hosts (targetArgs' shape). */
function sshTarget(port: number, user: string, identity: string, knownHostsFile: string): string[] {
  return ['-p', String(port), '-i', identity, '-F', '/dev/null', '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHostsFile}`, '-o', 'GlobalKnownHostsFile=/dev/null', `${user}@127.0.0.1`];
}

/** The failure as a message for assertions: the CLI's stderr and the host's console tail. */
function why(result: CliResult, server?: TestServer): string {
  return `exit ${result.code}\n--- stderr ---\n${result.stderr}${server ? `\n--- serial (last 20 lines) ---\n${server.serialLog().split('\n').slice(-20).join('\n')}` : ''}`;
}

/** Asserts a rescue finished and the host now runs the rescue system (new boot, marker file). */
async function assertRescued(server: TestServer, oldBoot: string, result: CliResult): Promise<void> {
  assert.equal(result.code, ExitCode.Ok, `rescue failed: ${why(result, server)}`);
  const rescue = await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id; test -e /etc/emergency-rescue && echo rescue-marker');
  assert.equal(rescue.code, 0, rescue.stderr);
  const [bootId, marker] = rescue.stdout.trim().split('\n');
  assert.notEqual(bootId, oldBoot, 'a new kernel runs');
  assert.equal(marker, 'rescue-marker', 'the rescue system runs');
}

/** A copy of the image with bytes of its initrd flipped: a valid tarball whose checksums no longer match. */
async function corruptImage(image: string, dir: string): Promise<string> {
  const copy = join(dir, 'corrupt.tar');
  copyFileSync(image, copy);
  const initrd = (await listTar(copy)).find((m) => m.path.endsWith('/initrd'))!;
  const fd = openSync(copy, 'r+');
  const at = initrd.dataOffset + Math.floor(initrd.size / 2);
  const bytes = Buffer.alloc(16);
  readSync(fd, bytes, 0, 16, at);
  for (let i = 0; i < bytes.length; i++) bytes[i] ^= 0xff;
  writeSync(fd, bytes, 0, 16, at);
  closeSync(fd);
  return copy;
}

/**
 * Runs on the host as root until a stage is being extracted (our tmpfs is mounted and the tar has begun to
 * unpack into it), then prints where: the moment to interrupt an upload half-way.
 */
const WAIT_FOR_EXTRACTING = `i=0
while [ "$i" -lt 1200 ]; do
  for mp in $(awk '$1 == "emergency-stage" { print $2 }' /proc/mounts); do
    if [ -d "$mp/emergency-image" ]; then echo "extracting $mp"; exit 0; fi
  done
  usleep 50000
  i=$((i + 1))
done
echo timeout
exit 1`;

/** Closes a ControlMaster the CLI left behind when it was killed (found by its socket in the CLI's TMPDIR). */
function closeLeftoverMasters(cliTmp: string): number {
  let closed = 0;
  for (const dir of readdirSync(cliTmp).filter((d) => d.startsWith('emergency-ssh-'))) {
    const socket = join(cliTmp, dir, 'ctl');
    if (!existsSync(socket)) continue;
    try {
      execFileSync('ssh', ['-S', socket, '-O', 'exit', 'leftover'], { stdio: 'ignore', timeout: 10_000 });
      closed++;
    } catch {
      // the master had gone already
    }
  }
  return closed;
}

describe('fault matrix without a server', () => {
  it('unreachable host: nothing listens on the port → exit 3, says it cannot reach sshd', async () => {
    const work = mkdtempSync(join(tmpdir(), 'emergency-faults-'));
    try {
      const key = await makeKey(join(work, 'id'), 'ed25519', 'nobody@test');
      writeFileSync(join(work, 'known_hosts'), '');
      const image = await buildTestImage();
      const result = await runCli(['--yes', '--image', image, ...sshTarget(await freePort(), 'root', key.path, join(work, 'known_hosts'))]);
      assert.equal(result.code, ExitCode.Connection, why(result));
      assert.match(result.stderr, /cannot reach sshd on root@127\.0\.0\.1/);
      assert.match(result.stderr, /fix: /, 'the refusal says what to do');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe('fault matrix on the default server: refusals, interrupts, then a rescue through password sudo (needs QEMU)', { skip, timeout: 600_000 }, () => {
  const password = randomBytes(12).toString('hex');
  const nosudoPassword = randomBytes(12).toString('hex');
  let image: string;
  let server: TestServer;
  let work: string;
  let cliTmp: string;
  let strangerKey: KeyPair;
  let otherHostKeys: KeyPair[];

  before(async () => {
    image = await buildTestImage();
    work = mkdtempSync(join(tmpdir(), 'emergency-faults-'));
    cliTmp = join(work, 'cli-tmp');
    execFileSync('mkdir', [cliTmp]);
    strangerKey = await makeKey(join(work, 'stranger'), 'ed25519', 'stranger@test');
    otherHostKeys = [await makeKey(join(work, 'other_ed25519'), 'ed25519', 'other'), await makeKey(join(work, 'other_ecdsa'), 'ecdsa', 'other')];
    const scenario = defaultScenario();
    scenario.users.push(
      { name: 'pw', uid: 1001, groups: ['sudo'], sudo: { kind: 'password', password } },
      { name: 'nosudo', uid: 1002, groups: [], sudo: { kind: 'none' }, password: nosudoPassword },
    );
    server = await startServer(scenario);
    // First logins and sudo attempts, so that sshd's and sudo's own bookkeeping exists before any snapshot.
    for (const user of ['admin', 'pw', 'nosudo']) await server.ssh(user, 'sudo -n true');
  });
  after(async () => {
    if (cliTmp && existsSync(cliTmp)) closeLeftoverMasters(cliTmp);
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Runs `fn` (a refused run) between two snapshots of the host and asserts they are equal. */
  async function unchanged(fn: () => Promise<void>): Promise<void> {
    const before = await hostSnapshot(server);
    await fn();
    assert.equal(await waitForNoStage(server, 1), '', 'no tmpfs, stage dir or keeper is left');
    assert.equal(await hostSnapshot(server), before, 'mounts, staging places, kexec state, boot and network are exactly as before');
  }

  it('wrong key or unknown user: ssh refuses the login → exit 3, host unchanged', async () => {
    await unchanged(async () => {
      for (const [user, key] of [['admin', strangerKey.path], ['ghost', server.keys.admin]]) {
        const result = await runCli(['--yes', '--image', image, ...sshTarget(server.port, user, key, server.knownHostsFile)]);
        assert.equal(result.code, ExitCode.Connection, why(result));
        assert.match(result.stderr, new RegExp(`${user}@127\\.0\\.0\\.1 refused the login`));
        assert.match(result.stderr, /fix: Check the user/);
      }
    });
  });

  it('host key not in known_hosts → exit 3, never accepted', async () => {
    const empty = join(work, 'known_hosts.empty');
    writeFileSync(empty, '');
    await unchanged(async () => {
      const result = await runCli(['--yes', '--image', image, ...sshTarget(server.port, 'admin', server.keys.admin, empty)]);
      assert.equal(result.code, ExitCode.Connection, why(result));
      assert.match(result.stderr, /host key of admin@127\.0\.0\.1 is not in your known_hosts/);
    });
  });

  it('host presents a different host key than known_hosts holds → exit 8 with an explanation, host unchanged', async () => {
    const other = join(work, 'known_hosts.other');
    writeFileSync(other, knownHostsLines(server.port, otherHostKeys.map((k) => k.publicKey)));
    await unchanged(async () => {
      const result = await runCli(['--yes', '--image', image, ...sshTarget(server.port, 'admin', server.keys.admin, other)]);
      assert.equal(result.code, ExitCode.HostKeyChanged, why(result));
      assert.match(result.stderr, /answered with a different SSH host key/);
      assert.match(result.stderr, /Do not log in/);
    });
  });

  it('user without sudo rights → exit 4 before anything changes, with and without a terminal', async () => {
    await unchanged(async () => {
      // No terminal (own session, as under cron): sudo -n wants a password and nobody can type it.
      const headless = await startCli(['--yes', '--image', image, ...targetArgs(server, 'nosudo')]).done;
      assert.equal(headless.code, ExitCode.Refused, why(headless));
      assert.match(headless.stderr, /nosudo cannot become root on nosudo@127\.0\.0\.1 without a password/);
      // At a terminal: the right login password is typed, and sudo still says no.
      const typed = await runCliInPty(['--yes', '--image', image, ...targetArgs(server, 'nosudo')], { prompt: /password for nosudo@/, secret: nosudoPassword });
      assert.equal(typed.answered, 1, `the password prompt was answered once:\n${typed.stdout}`);
      assert.equal(typed.code, ExitCode.Refused, why({ ...typed, stderr: typed.stdout }));
      assert.match(typed.stdout, /nosudo cannot become root on nosudo@127\.0\.0\.1: no sudo or doas rights/);
      assert.ok(!typed.stdout.includes(nosudoPassword) && !typed.stderr.includes(nosudoPassword), 'the password is not echoed or printed');
    });
  });

  it('corrupted image: the host refuses it by its checksums → exit 5, host unchanged', async () => {
    const corrupt = await corruptImage(image, work);
    await unchanged(async () => {
      const result = await runCli(['--yes', '--image', corrupt, ...targetArgs(server, 'admin')]);
      assert.equal(result.code, ExitCode.StageFailed, why(result, server));
      assert.match(result.stderr, /image checksums do not match: the upload was corrupted/);
      assert.doesNotMatch(result.stderr, /✓ stage/);
    });
  });

  it('declined at the confirmation (n typed on a terminal) → exit 6 after staging, the staged image removed, host unchanged', async () => {
    await unchanged(async () => {
      const declined = await runCliInPty(['--image', image, ...targetArgs(server, 'admin')], { prompt: /\[y\/N\]/, secret: 'n', visible: true });
      assert.equal(declined.answered, 1, `the question was asked once:\n${declined.stdout}`);
      assert.equal(declined.code, ExitCode.Declined, why({ ...declined, stderr: declined.stdout }));
      assert.match(declined.stdout, /✓ stage/, 'the question comes after staging, right before the point of no return');
      assert.match(declined.stdout, /found by MAC 52:54:00:12:34:01/, 'the question shows what will be restored');
      assert.match(declined.stdout, /declined: nothing was changed on the host/);
    });
  });

  // Ctrl-C at a terminal signals the whole process group (the CLI and its ssh clients); `kill -INT PID` only the
  // CLI, whose own handler must then end the keeper's stdin. Both must leave the host clean before the CLI exits.
  for (const group of [true, false]) {
    it(`${group ? 'Ctrl-C (SIGINT to the process group)' : 'SIGINT to the CLI alone'} during the upload → exit 130, the staging tmpfs is gone at once`, async () => {
      await unchanged(async () => {
        const watch = server.ssh('root', WAIT_FOR_EXTRACTING, { timeoutMs: 90_000 });
        const cli = startCli(['--yes', '--image', image, ...targetArgs(server, 'admin')], { env: { ...process.env, TMPDIR: cliTmp } });
        const seen = await watch;
        assert.match(seen.stdout, /^extracting \/run\/emergency\.\d+$/m, `the upload began: ${seen.stdout}${seen.stderr}`);
        cli.signal('SIGINT', { group });
        const result = await cli.done;
        assert.equal(result.code, ExitCode.Interrupted, why(result, server));
        assert.doesNotMatch(result.stderr, /✓ stage/, 'interrupted during the stage step');
        assert.match(result.stderr, /interrupted: removing the staged image/);
        // "130: the staged image was removed" holds when the CLI exits, not some time later.
        assert.equal(await waitForNoStage(server, 1), '', 'no tmpfs, stage dir or keeper is left when the CLI has exited');
      });
      assert.equal(closeLeftoverMasters(cliTmp), 0, 'the CLI closed its ssh connection');
    });
  }

  it('connection killed mid-upload (SIGKILL of the CLI) → the host-side keeper removes the tmpfs', async () => {
    await unchanged(async () => {
      const watch = server.ssh('root', WAIT_FOR_EXTRACTING, { timeoutMs: 90_000 });
      const cli = startCli(['--yes', '--image', image, ...targetArgs(server, 'admin')], { env: { ...process.env, TMPDIR: cliTmp } });
      const seen = await watch;
      assert.match(seen.stdout, /^extracting \/run\/emergency\.\d+$/m, `the upload began: ${seen.stdout}${seen.stderr}`);
      cli.signal('SIGKILL');
      const result = await cli.done;
      assert.equal(result.code, 128 + 9, 'the CLI was killed');
      assert.doesNotMatch(result.stderr, /✓ stage/, 'killed during the stage step');
      // Nobody on our side cleans up now: the keeper sees its stdin end and unmounts by itself.
      assert.equal(await waitForNoStage(server, 30_000), '', 'the keeper removed the tmpfs and the stage dir');
    });
    // A killed CLI cannot close its ControlMaster (ControlPersist): its detached watchdog does, within seconds.
    const deadline = Date.now() + 10_000;
    const masters = () => readdirSync(cliTmp).filter((d) => d.startsWith('emergency-ssh-'));
    while (masters().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(masters(), [], 'the watchdog closed the ControlMaster and removed its directory');
  });

  it('rerun after the kill: rescue through a sudo user whose password is typed on a terminal; it never shows in output, argv or environment', async () => {
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const leaks = new Set<string>();
    let scan: NodeJS.Timeout | undefined;
    const result = await runCliInPty(['--yes', '--timeout', '240', '--image', image, ...targetArgs(server, 'pw')], {
      prompt: /\[sudo\] password for pw@/,
      secret: password,
      timeoutMs: 400_000,
      onStart: (pid) => {
        scan = setInterval(() => findInProcessTree(pid, password).forEach((h) => leaks.add(h)), 100);
      },
    });
    clearInterval(scan);
    assert.equal(result.answered, 1, 'asked for the password once');
    await assertRescued(server, oldBoot, { ...result, stderr: result.stdout });
    for (const step of ['connect', 'preflight', 'stage', 'kexec', 'wait']) assert.match(result.stdout, new RegExp(`✓ ${step} `));
    assert.ok(!result.stdout.includes(password) && !result.stderr.includes(password), 'the password appears in no output');
    assert.doesNotMatch(result.stdout, /PRIVATE KEY/, 'no private host key material reaches the terminal');
    assert.deepEqual([...leaks], [], 'the password is in no argv or environment of the CLI or its children');
  });

  it('the rescued host with a changed host key: connect refuses (exit 8), and so does the wait step', async () => {
    const other = join(work, 'known_hosts.other');
    writeFileSync(other, knownHostsLines(server.port, otherHostKeys.map((k) => k.publicKey)));
    const result = await runCli(['--yes', '--image', image, ...sshTarget(server.port, 'root', server.keys.root, other)]);
    assert.equal(result.code, ExitCode.HostKeyChanged, why(result));
    assert.match(result.stderr, /different SSH host key than before the rescue/);
    // The wait step polls with its own fresh connections: it must stop at the changed key, not wait it out.
    const remote = new SshRemote({ destination: '127.0.0.1', port: server.port, identity: server.keys.root, configFile: '/dev/null', options: ['IdentitiesOnly=yes', 'BatchMode=yes', `UserKnownHostsFile=${other}`, 'GlobalKnownHostsFile=/dev/null'] });
    const started = Date.now();
    await assert.rejects(waitForRescue(remote, new RecordingUi(), { oldBootId: 'the-old-boot', triggeredAt: Date.now(), timeoutSeconds: 60 }), (e: { exitCode: number; message: string }) => e.exitCode === ExitCode.HostKeyChanged && /different SSH host key/.test(e.message));
    assert.ok(Date.now() - started < 30_000, 'refused at the first answer, not after the timeout');
  });
});

describe('fault matrix: kexec disabled and too little memory on one server (needs QEMU)', { skip, timeout: 300_000 }, () => {
  let server: TestServer;
  let image: string;
  before(async () => {
    image = await buildTestImage();
    const scenario = defaultScenario();
    scenario.memoryMiB = 200;
    scenario.faults = { kexecDisabled: true };
    server = await startServer(scenario);
    await server.ssh('admin', 'sudo -n true');
  });
  after(async () => server?.stop());

  it('refuses with exit 4 and reports both problems in one run, with the memory arithmetic; host unchanged', async () => {
    const before = await hostSnapshot(server);
    const result = await runCli(['--yes', '--image', image, ...targetArgs(server, 'admin')]);
    assert.equal(result.code, ExitCode.Refused, why(result, server));
    assert.match(result.stderr, /refused, nothing was changed on the host \(\d+ problems\)/);
    assert.match(result.stderr, /kexec is disabled on this kernel \(kernel\.kexec_load_disabled=1\)/);
    assert.match(result.stderr, /the host has \d+ MiB of RAM, the rescue system needs \d+ MiB|too little free memory: \d+ MiB available, \d+ MiB needed/);
    assert.match(result.stderr, /before kexec: staged files \d+ MiB \+ kexec segments|rescue system needs \d+ MiB/);
    assert.doesNotMatch(result.stderr, /» stage/, 'refused before staging');
    assert.equal(await hostSnapshot(server), before, 'mounts, staging places, kexec state, boot and network are exactly as before');
  });
});

describe('fault matrix: read-only root, no /nix, no writable /tmp — rescue succeeds (needs QEMU)', { skip, timeout: 400_000 }, () => {
  let server: TestServer;
  let image: string;
  before(async () => {
    image = await buildTestImage();
    const scenario = defaultScenario();
    scenario.faults = { readOnlyRoot: true };
    server = await startServer(scenario);
  });
  after(async () => server?.stop());

  it('stages in a tmpfs under /run and rescues; the network comes back by MAC', async () => {
    const facts = await server.ssh('root', "awk '$2 == \"/\" { print $4 }' /proc/mounts; test -e /nix && echo has-nix; touch /tmp/probe 2>/dev/null && echo tmp-writable; true");
    assert.match(facts.stdout, /^ro[,\n]/, 'the root filesystem is read-only');
    assert.doesNotMatch(facts.stdout, /has-nix|tmp-writable/, 'no /nix, no writable /tmp');
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const result = await runCli(['--yes', '--timeout', '240', '--image', image, ...targetArgs(server, 'admin')], { timeoutMs: 400_000 });
    await assertRescued(server, oldBoot, result);
    assert.match(result.stderr, /staged in a tmpfs at \/run\/emergency\.\d+/);
    const state = await server.ssh('root', READ_NETWORK);
    assert.deepEqual(networkDifferences(server.expected, parseNetworkState(state.stdout)), [], 'every address, route and nameserver is back');
  });
});

describe('fault matrix: nothing writable for a tmpfs dir — stages over an existing directory (needs QEMU)', { skip, timeout: 400_000 }, () => {
  let server: TestServer;
  let image: string;
  before(async () => {
    image = await buildTestImage();
    const scenario = defaultScenario();
    scenario.faults = { noWritableTmpfsDirs: true };
    server = await startServer(scenario);
  });
  after(async () => server?.stop());

  it('nothing writable for a tmpfs dir (/run, /dev/shm, /tmp read-only): stages over /mnt and rescues (needs QEMU)', async () => {
    // The remount runs in the background once sshd is up: wait for it (a new login each time, as root).
    const PROBE = "for m in / /run /dev/shm; do awk -v m=$m '$2 == m { print m, $4 }' /proc/mounts; done; " +
      'for d in /run /dev/shm /tmp /var/tmp; do mkdir $d/probe.$$ 2>/dev/null && { rmdir $d/probe.$$; echo writable $d; }; done; test -d /mnt && echo mnt-dir; true';
    let facts = '';
    for (let i = 0; i < 40; i++) {
      facts = (await server.ssh('root', PROBE)).stdout;
      if (/^\/run ro[,\n]/m.test(facts)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    for (const m of ['/', '/run', '/dev/shm']) assert.match(facts, new RegExp(`^${m} ro[,\\n]`, 'm'), `${m} is read-only: ${facts}`);
    assert.doesNotMatch(facts, /writable/, `no writable /run, /dev/shm, /tmp or /var/tmp: ${facts}`);
    assert.match(facts, /^mnt-dir$/m, '/mnt exists');
    const sudo = await server.ssh('admin', 'sudo -n id -u');
    assert.equal(sudo.stdout.trim(), '0', `a new login still gets sudo: ${sudo.stderr}`);
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const result = await runCli(['--yes', '--timeout', '240', '--image', image, ...targetArgs(server, 'admin')], { timeoutMs: 400_000 });
    await assertRescued(server, oldBoot, result);
    assert.match(result.stderr, /staged in a tmpfs at \/mnt;/);
    const state = await server.ssh('root', READ_NETWORK);
    assert.deepEqual(networkDifferences(server.expected, parseNetworkState(state.stdout)), [], 'every address, route and nameserver is back');
  });
});

describe('fault matrix: no iproute2, tar, cpio or gzip on the host — rescue succeeds (needs QEMU)', { skip, timeout: 400_000 }, () => {
  let server: TestServer;
  let image: string;
  before(async () => {
    image = await buildTestImage();
    const scenario = defaultScenario();
    scenario.faults = { removeTools: ['ip', 'tar', 'cpio', 'gzip'] };
    server = await startServer(scenario);
  });
  after(async () => server?.stop());

  it("captures the network with the image's ip after staging, and restores it by MAC", async () => {
    const tools = await server.ssh('admin', 'for t in ip tar cpio gzip; do command -v "$t" && echo "has $t"; done; true');
    assert.doesNotMatch(tools.stdout, /has /, `the tools are gone: ${tools.stdout}`);
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const result = await runCli(['--yes', '--timeout', '240', '--image', image, ...targetArgs(server, 'admin')], { timeoutMs: 400_000 });
    await assertRescued(server, oldBoot, result);
    assert.match(result.stderr, /captured with the image's ip after staging/);
    assert.match(result.stderr, /✓ capture \(image ip\) /);
    const state = await server.ssh('root', READ_NETWORK);
    assert.deepEqual(networkDifferences(server.expected, parseNetworkState(state.stdout)), [], 'every address, route and nameserver is back');
  });
});
