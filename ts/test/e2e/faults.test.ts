/**
 * The fault matrix, end to end (needs QEMU): every way a rescue can be refused, interrupted or made
 * harder, against QEMU test servers through the real CLI. Each refusal or interruption asserts the documented
 * exit code and that the host is exactly as it was found (mounts, staging places, kexec state, boot, network).
 * docs/fault-matrix.md is the same matrix as a table.
 *
 * The matrix is the table FAULTS below, one row per fault: the server it runs on, the CLI's arguments and how it
 * is run, the exit code and the messages expected, and what must be true of the host afterwards. Rows that share
 * a server run on one boot of it, in table order (on the default server the refusals first and the rescue last,
 * because a rescue replaces the system). A new fault is one row; a new kind of server is one ServerSpec.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { modulesFor } from '../../drivers/manifest.js';
import { ExitCode } from '../../errors.js';
import type { HeldConnection } from '../../held-connection.js';
import { loadImage } from '../../image.js';
import { SshRemote } from '../../ssh.js';
import { waitForRescue } from '../../steps/wait.js';
import { listTar } from '../../tar.js';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, sshTargetArgs, startCli, targetArgs, type CliResult } from '../lib/cli.js';
import { RecordingUi } from '../lib/fake-remote.js';
import { hostSnapshot, waitForNoStage } from '../lib/host-snapshot.js';
import { networkDifferences, parseNetworkState, READ_NETWORK } from '../lib/network-state.js';
import { findInProcessTree, runCliInPty } from '../lib/pty.js';
import { freePort } from '../lib/qemu.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';
import type { ServerScenario } from '../lib/server-scenario.js';
import { knownHostsLines, makeKey } from '../lib/ssh.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';

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

/** Flips 16 bytes in the middle of the initrd of the tarball at `path`, in place: still a valid tarball. */
async function flipInitrdBytes(path: string): Promise<void> {
  const initrd = (await listTar(path)).find((m) => m.path.endsWith('/initrd'))!;
  const fd = openSync(path, 'r+');
  const at = initrd.dataOffset + Math.floor(initrd.size / 2);
  const bytes = Buffer.alloc(16);
  readSync(fd, bytes, 0, 16, at);
  for (let i = 0; i < bytes.length; i++) bytes[i] ^= 0xff;
  writeSync(fd, bytes, 0, 16, at);
  closeSync(fd);
}

/** A copy of the image with bytes of its initrd flipped: a valid tarball whose checksums no longer match. */
async function corruptImage(image: string, dir: string): Promise<string> {
  const copy = join(dir, 'corrupt.tar');
  copyFileSync(image, copy);
  await flipInitrdBytes(copy);
  return copy;
}

/**
 * Runs the CLI on a copy of the image and flips bytes of that copy's initrd as soon as the CLI says it connected:
 * after it checked the file, before it streams it (stage comes after preflight). What reaches the host is then not
 * the image whose hash the CLI sends: the host's check of the stream as it arrives must refuse it.
 */
async function changeImageAfterCheck(ctx: FaultContext, args: string[]): Promise<CliResult> {
  const cli = startCli(args);
  let flipped: Promise<void> | undefined;
  cli.onStderrLine((line) => {
    if (!flipped && /^✓ connect /.test(line)) flipped = flipInitrdBytes(join(ctx.work, 'changing.tar'));
  });
  const result = await cli.done;
  assert.ok(flipped, `the CLI connected: ${result.stderr}`);
  await flipped;
  return result;
}

/**
 * Runs on the host as root until the tarball is arriving (our tmpfs is mounted and the tar has begun to go into
 * it: written whole to image.tar, or unpacked into emergency-image/ as it comes, scripts/stage.sh), then prints
 * where: the moment to interrupt an upload half-way.
 */
const WAIT_FOR_UPLOADING = `i=0
while [ "$i" -lt 1200 ]; do
  for mp in $(awk '$1 == "emergency-stage" { print $2 }' /proc/mounts); do
    if [ -s "$mp/image.tar" ] || [ -d "$mp/emergency-image" ]; then echo "uploading $mp"; exit 0; fi
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

/** A QEMU test server that rows run on: booted once for all of them. */
interface ServerSpec {
  /** The describe's title. */
  title: string;
  scenario: () => ServerScenario;
  /** Users who log in and try sudo once before any row, so sshd's and sudo's own bookkeeping exists before a snapshot. */
  warmUp?: string[];
  timeoutMs: number;
}

/** What a row's functions get: the image, the booted server and a private directory for files. */
interface FaultContext {
  image: string;
  server: TestServer;
  work: string;
  /** TMPDIR for CLI runs whose ssh ControlMaster is checked afterwards. */
  cliTmp: string;
  /** A local port nothing listens on. */
  closedPort: number;
}

/** One fault of the matrix (docs/fault-matrix.md has the same rows as a table). */
interface FaultRow {
  /** The test's name: fault → outcome. */
  name: string;
  /** The server it runs on; none for a fault that needs no server. */
  on?: ServerSpec;
  /** Checks that the fault is in place, before the run. */
  precondition?: (ctx: FaultContext) => Promise<void>;
  /** The CLI's arguments; default `--yes --image IMAGE`, as admin on the server. */
  args?: (ctx: FaultContext) => string[];
  /** How the CLI runs; default runCli. Terminal runs put what the terminal showed in `stderr`. */
  run?: (ctx: FaultContext, args: string[]) => Promise<CliResult>;
  /** The expected exit code. */
  exit: number;
  /** Patterns the CLI's stderr must match. */
  says?: RegExp[];
  /** Patterns it must not match. */
  saysNot?: RegExp[];
  /**
   * unchanged: a host snapshot before and after are equal and no stage is left (the run happens in between);
   * rescued: a new boot runs the rescue system and every address, route and nameserver is back by MAC;
   * unchecked: the row's `check` says what holds.
   */
  host: 'unchanged' | 'rescued' | 'unchecked';
  /** More assertions after the run and the host check. */
  check?: (ctx: FaultContext, result: CliResult) => Promise<void>;
}

const PASSWORD = randomBytes(12).toString('hex');
const NOSUDO_PASSWORD = randomBytes(12).toString('hex');
/** Rescues take longer than refusals: the CLI waits for the rescue system, under TCG. */
const RESCUE_TIMEOUT = { args: ['--timeout', '240'], ms: 400_000 };

const withFaults =
  (faults: ServerScenario['faults'], change: (s: ServerScenario) => void = () => {}) =>
  () => {
    const scenario = defaultScenario();
    scenario.faults = faults;
    change(scenario);
    return scenario;
  };

const DEFAULT_SERVER: ServerSpec = {
  title: 'fault matrix on the default server: refusals, interrupts, then a rescue through password sudo (needs QEMU)',
  scenario: () => {
    const scenario = defaultScenario();
    scenario.users.push(
      { name: 'pw', uid: 1001, groups: ['sudo'], sudo: { kind: 'password', password: PASSWORD } },
      { name: 'nosudo', uid: 1002, groups: [], sudo: { kind: 'none' }, password: NOSUDO_PASSWORD },
    );
    return scenario;
  },
  warmUp: ['admin', 'pw', 'nosudo'],
  timeoutMs: 600_000,
};
const KEXEC_DISABLED_LOW_MEMORY: ServerSpec = {
  title: 'fault matrix: kexec disabled and too little memory on one server (needs QEMU)',
  scenario: withFaults({ kexecDisabled: true }, (s) => (s.memoryMiB = 200)),
  warmUp: ['admin'],
  timeoutMs: 300_000,
};
const READ_ONLY_ROOT: ServerSpec = {
  title: 'fault matrix: read-only root, no /nix, no writable /tmp — rescue succeeds (needs QEMU)',
  scenario: withFaults({ readOnlyRoot: true }),
  timeoutMs: 400_000,
};
const NO_WRITABLE_TMPFS_DIRS: ServerSpec = {
  title: 'fault matrix: nothing writable for a tmpfs dir — stages over an existing directory (needs QEMU)',
  scenario: withFaults({ noWritableTmpfsDirs: true }),
  timeoutMs: 400_000,
};
const NO_TOOLS: ServerSpec = {
  title: 'fault matrix: no iproute2, tar, cpio or gzip on the host — rescue succeeds (needs QEMU)',
  scenario: withFaults({ removeTools: ['ip', 'tar', 'cpio', 'gzip'] }),
  timeoutMs: 400_000,
};

/** Write throttle of the dying disk: 4 KiB/s, so a sync() of the backlog below would take hours. */
const DYING_DISK_BPS = 4096;
/**
 * A disk that takes writes at 4 KiB/s (QEMU write throttling; O_DIRECT on the build machine, so its page cache
 * does not absorb them). The row's precondition puts 64 MiB under writeback on it.
 */
const DYING_DISK: ServerSpec = {
  title: 'fault matrix: a dying disk, 64 MiB under writeback at 4 KiB/s — the jump does not wait for it (needs QEMU)',
  scenario: () => ({ ...defaultScenario(), disk: { sizeMiB: 128, writeBytesPerSecond: DYING_DISK_BPS } }),
  warmUp: ['admin'],
  timeoutMs: 400_000,
};
/** Dirty plus Writeback in /proc/meminfo, in KiB: what a sync() would wait for. */
const UNWRITTEN_KIB = `awk '$1 == "Dirty:" || $1 == "Writeback:" { sum += $2 } END { print sum }' /proc/meminfo`;
/** 64 MiB into the raw disk's page cache, in the background: nearly all of it still waits for the disk at the kexec. */
const DIRTY_THE_DISK = 'dd if=/dev/zero of=/dev/vda bs=1M count=64 </dev/null >/dev/null 2>&1 &';

/** The operator's address (where slirp forwards ssh) sits on a macvlan over ens3, which the planner cannot re-create. */
const OPERATOR_ON_MACVLAN: ServerSpec = {
  title: "fault matrix: the operator's address is on a macvlan the plan cannot restore (needs QEMU)",
  scenario: () => {
    const s = defaultScenario();
    s.nics[0].ipv4 = [];
    s.nics[0].ipv6 = [];
    s.routes = s.routes.filter((r) => !r.includes('ens3'));
    s.extraSetup = [
      ['modprobe', 'macvlan'],
      ['ip', 'link', 'add', 'link', 'ens3', 'name', 'mv0', 'type', 'macvlan', 'mode', 'bridge'],
      ['ip', 'link', 'set', 'dev', 'mv0', 'up'],
      ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'mv0'],
      ['ip', 'route', 'add', 'default', 'via', '10.0.2.2', 'dev', 'mv0'],
    ];
    return s;
  },
  warmUp: ['admin'],
  timeoutMs: 400_000,
};
/**
 * The ssh NIC is a vmxnet3: Debian's cloud kernel drives it (the server loads vmxnet3), the test image does not
 * ship the module, so the rescue kernel could not. The other NIC stays virtio.
 */
const SSH_NIC_WITHOUT_IMAGE_DRIVER: ServerSpec = {
  title: 'fault matrix: the ssh NIC is a vmxnet3, whose driver the image does not ship (needs QEMU)',
  scenario: () => {
    const s = defaultScenario();
    s.nics[0].model = 'vmxnet3';
    return s;
  },
  warmUp: ['admin'],
  timeoutMs: 300_000,
};
/** The vmxnet3 NIC's facts as the host reports them, and that the image's manifest has no driver for it. */
async function assertSshNicUndriven(ctx: FaultContext): Promise<void> {
  const r = await ctx.server.ssh('root', 'cat /sys/class/net/ens3/device/modalias; basename "$(readlink /sys/class/net/ens3/device/driver)"');
  const [modalias, driver] = r.stdout.trim().split('\n');
  assert.match(modalias, /^pci:v000015ADd000007B0/, `ens3 is QEMU's vmxnet3: ${r.stdout}${r.stderr}`);
  assert.equal(driver, 'vmxnet3', 'the host drives ens3 with vmxnet3');
  const manifest = (await loadImage(ctx.image)).drivers;
  assert.ok(manifest, 'the image carries drivers.manifest');
  assert.equal(manifest.modules.has('vmxnet3'), false, 'the image does not ship vmxnet3');
  assert.deepEqual(modulesFor(manifest, modalias), [], "no module of the image's manifest matches the NIC's modalias");
}

/** What nic-driver says about that NIC: its name, vendor:device, MAC, the host's driver, the modalias, its role. */
const VMXNET3_FINDING =
  /\[nic-driver\] NIC ens3 \(15ad:07b0, MAC 52:54:00:12:34:01, vmxnet3, a loadable module on the host\) has no driver in the image's kernel 6\.\d+\.\d+-\d+-cloud-amd64: no modalias pattern matches pci:v000015ADd000007B0\S*; it carries 10\.0\.2\.15\/24, fec0::15\/64/;

/** Booted with lockdown=integrity; busybox init mounts no securityfs. */
const LOCKDOWN: ServerSpec = {
  title: 'fault matrix: lockdown=integrity without securityfs (needs QEMU)',
  scenario: () => {
    const s = defaultScenario();
    s.kernelArgs = ['lockdown=integrity'];
    return s;
  },
  warmUp: ['admin'],
  timeoutMs: 400_000,
};

/** A run on a pty that types `secret` at `prompt`; its terminal text becomes `stderr`, and it answered once. */
async function onTerminal(args: string[], opts: Parameters<typeof runCliInPty>[1]): Promise<CliResult> {
  const result = await runCliInPty(args, opts);
  assert.equal(result.answered, 1, `the prompt was answered once:\n${result.stdout}`);
  return { ...result, stderr: result.stdout };
}

/** Starts the CLI, waits until the host is unpacking the tar into our tmpfs, then signals the CLI. */
async function interruptUpload(ctx: FaultContext, args: string[], signal: NodeJS.Signals, group: boolean): Promise<CliResult> {
  const watch = ctx.server.ssh('root', WAIT_FOR_UPLOADING, { timeoutMs: 90_000 });
  const cli = startCli(args, { env: { ...process.env, TMPDIR: ctx.cliTmp } });
  const seen = await watch;
  if (!/^uploading \/run\/emergency\.\d+$/m.test(seen.stdout)) {
    // Left running, this --yes CLI would go on to rescue the server under the rows that follow.
    cli.signal('SIGKILL', { group: true });
    await cli.done;
  }
  assert.match(seen.stdout, /^uploading \/run\/emergency\.\d+$/m, `the upload began: ${seen.stdout}${seen.stderr}`);
  cli.signal(signal, { group });
  return cli.done;
}

// Ctrl-C at a terminal signals the whole process group (the CLI and its ssh clients); `kill -INT PID` only the
// CLI, whose own handler must then end the keeper's stdin. Both must leave the host clean before the CLI exits
// (the `unchanged` check looks right after the exit).
const sigintRow = (group: boolean): FaultRow => ({
  name: `${group ? 'Ctrl-C (SIGINT to the process group)' : 'SIGINT to the CLI alone'} during the upload → exit 130, the staging tmpfs is gone at once`,
  on: DEFAULT_SERVER,
  run: (ctx, args) => interruptUpload(ctx, args, 'SIGINT', group),
  exit: ExitCode.Interrupted,
  says: [/interrupted: removing the staged image/],
  saysNot: [/✓ stage/],
  host: 'unchanged',
  check: async (ctx) => assert.equal(closeLeftoverMasters(ctx.cliTmp), 0, 'the CLI closed its ssh connection'),
});

/** A rescue that must succeed on a server whose fault makes it harder. */
const rescueRow = (name: string, on: ServerSpec, says: RegExp[], precondition?: FaultRow['precondition']): FaultRow => ({
  name,
  on,
  precondition,
  args: (ctx) => ['--yes', ...RESCUE_TIMEOUT.args, '--image', ctx.image, ...targetArgs(ctx.server, 'admin')],
  run: (_, args) => runCli(args, { timeoutMs: RESCUE_TIMEOUT.ms }),
  exit: ExitCode.Ok,
  says,
  host: 'rescued',
});

/** The fault matrix. */
const FAULTS: FaultRow[] = [
  {
    name: 'unreachable host: nothing listens on the port → exit 3, says it cannot reach sshd',
    args: (ctx) => {
      writeFileSync(join(ctx.work, 'known_hosts'), '');
      return ['--yes', '--image', ctx.image, ...sshTargetArgs(ctx.closedPort, 'root', join(ctx.work, 'stranger'), join(ctx.work, 'known_hosts'))];
    },
    exit: ExitCode.Connection,
    says: [/cannot reach sshd on root@127\.0\.0\.1/, /fix: /],
    host: 'unchecked',
  },

  {
    name: 'wrong key: ssh refuses the login → exit 3, host unchanged',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', ctx.image, ...sshTargetArgs(ctx.server.port, 'admin', join(ctx.work, 'stranger'), ctx.server.knownHostsFile)],
    exit: ExitCode.Connection,
    says: [/admin@127\.0\.0\.1 refused the login/, /fix: Check the user/],
    host: 'unchanged',
  },
  {
    name: 'unknown user: ssh refuses the login → exit 3, host unchanged',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', ctx.image, ...sshTargetArgs(ctx.server.port, 'ghost', ctx.server.keys.admin, ctx.server.knownHostsFile)],
    exit: ExitCode.Connection,
    says: [/ghost@127\.0\.0\.1 refused the login/, /fix: Check the user/],
    host: 'unchanged',
  },
  {
    name: 'host key not in known_hosts → exit 3, never accepted',
    on: DEFAULT_SERVER,
    args: (ctx) => {
      writeFileSync(join(ctx.work, 'known_hosts.empty'), '');
      return ['--yes', '--image', ctx.image, ...sshTargetArgs(ctx.server.port, 'admin', ctx.server.keys.admin, join(ctx.work, 'known_hosts.empty'))];
    },
    exit: ExitCode.Connection,
    says: [/host key of admin@127\.0\.0\.1 is not in your known_hosts/],
    host: 'unchanged',
  },
  {
    name: 'host presents a different host key than known_hosts holds → exit 8 with an explanation, host unchanged',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', ctx.image, ...sshTargetArgs(ctx.server.port, 'admin', ctx.server.keys.admin, otherHostKnownHosts(ctx))],
    exit: ExitCode.HostKeyChanged,
    says: [/answered with a different SSH host key/, /Do not log in/],
    host: 'unchanged',
  },
  {
    // No terminal (own session, as under cron): sudo -n wants a password and nobody can type it.
    name: 'user without sudo rights, no terminal → exit 4 before anything changes',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', ctx.image, ...targetArgs(ctx.server, 'nosudo')],
    run: (_, args) => startCli(args).done,
    exit: ExitCode.Refused,
    says: [/nosudo cannot become root on nosudo@127\.0\.0\.1 without a password/],
    host: 'unchanged',
  },
  {
    // At a terminal: the right login password is typed, and sudo still says no.
    name: 'user without sudo rights, at a terminal → exit 4 before anything changes, the password never shown',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', ctx.image, ...targetArgs(ctx.server, 'nosudo')],
    run: (_, args) => onTerminal(args, { prompt: /password for nosudo@/, secret: NOSUDO_PASSWORD }),
    exit: ExitCode.Refused,
    says: [/nosudo cannot become root on nosudo@127\.0\.0\.1: no sudo or doas rights/],
    host: 'unchanged',
    check: async (_, result) =>
      assert.ok(!result.stdout.includes(NOSUDO_PASSWORD) && !result.stderr.includes(NOSUDO_PASSWORD), 'the password is not echoed or printed'),
  },
  {
    name: 'corrupted image: refused by its own SHA256SUMS before anything is sent → exit 2, host unchanged',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', join(ctx.work, 'corrupt.tar'), ...targetArgs(ctx.server, 'admin')],
    run: async (ctx, args) => {
      await corruptImage(ctx.image, ctx.work);
      return runCli(args);
    },
    exit: ExitCode.Usage,
    says: [/is corrupt: initrd does not match its SHA256SUMS/, /nothing was sent to the host/],
    saysNot: [/✓ connect/],
    host: 'unchanged',
  },
  {
    name: 'the image changes after it was checked (bytes flipped while the CLI connects): the host refuses the stream by its hash → exit 5, host unchanged',
    on: DEFAULT_SERVER,
    args: (ctx) => {
      copyFileSync(ctx.image, join(ctx.work, 'changing.tar'));
      return ['--yes', '--image', join(ctx.work, 'changing.tar'), ...targetArgs(ctx.server, 'admin')];
    },
    run: changeImageAfterCheck,
    exit: ExitCode.StageFailed,
    says: [
      /image checksum mismatch: the upload has sha256 [0-9a-f]{64}, not the [0-9a-f]{64} the image has; refused, nothing of it ran/,
      /the file changed while it was sent/,
    ],
    saysNot: [/✓ stage/],
    host: 'unchanged',
  },
  {
    name: 'declined at the confirmation (n typed on a terminal) → exit 6 after staging, the staged image removed, host unchanged',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--image', ctx.image, ...targetArgs(ctx.server, 'admin')],
    run: (_, args) => onTerminal(args, { prompt: /\[y\/N\]/, secret: 'n', visible: true }),
    exit: ExitCode.Declined,
    // The question comes after staging, right before the point of no return, and shows what will be restored.
    says: [/✓ stage/, /found by MAC 52:54:00:12:34:01/, /declined: nothing was changed on the host/],
    host: 'unchanged',
  },
  sigintRow(true),
  sigintRow(false),
  {
    name: 'connection killed mid-upload (SIGKILL of the CLI) → the host-side keeper removes the tmpfs',
    on: DEFAULT_SERVER,
    run: async (ctx, args) => {
      const result = await interruptUpload(ctx, args, 'SIGKILL', false);
      // Nobody on our side cleans up now: the keeper sees its stdin end and unmounts by itself.
      assert.equal(await waitForNoStage(ctx.server, 30_000), '', 'the keeper removed the tmpfs and the stage dir');
      return result;
    },
    exit: 128 + 9,
    saysNot: [/✓ stage/],
    host: 'unchanged',
    check: async (ctx) => {
      // A killed CLI cannot close its ControlMaster (ControlPersist): its detached watchdog does, within seconds.
      const deadline = Date.now() + 10_000;
      const masters = () => readdirSync(ctx.cliTmp).filter((d) => d.startsWith('emergency-ssh-'));
      while (masters().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      assert.deepEqual(masters(), [], 'the watchdog closed the ControlMaster and removed its directory');
    },
  },
  {
    name: 'rerun after the kill: rescue through a sudo user whose password is typed on a terminal; it never shows in output, argv or environment',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', ...RESCUE_TIMEOUT.args, '--image', ctx.image, ...targetArgs(ctx.server, 'pw')],
    run: async (_, args) => {
      const leaks = new Set<string>();
      let scan: NodeJS.Timeout | undefined;
      const result = await onTerminal(args, {
        prompt: /\[sudo\] password for pw@/,
        secret: PASSWORD,
        timeoutMs: RESCUE_TIMEOUT.ms,
        onStart: (pid) => {
          scan = setInterval(() => findInProcessTree(pid, PASSWORD).forEach((h) => leaks.add(h)), 100);
        },
      });
      clearInterval(scan);
      assert.deepEqual([...leaks], [], 'the password is in no argv or environment of the CLI or its children');
      return result;
    },
    exit: ExitCode.Ok,
    says: ['connect', 'preflight', 'stage', 'kexec', 'wait'].map((step) => new RegExp(`✓ ${step} `)),
    saysNot: [/PRIVATE KEY/],
    host: 'rescued',
    check: async (_, result) => assert.ok(!result.stdout.includes(PASSWORD) && !result.stderr.includes(PASSWORD), 'the password appears in no output'),
  },
  {
    name: 'the rescued host with a changed host key: connect refuses (exit 8), and so does the wait step',
    on: DEFAULT_SERVER,
    args: (ctx) => ['--yes', '--image', ctx.image, ...sshTargetArgs(ctx.server.port, 'root', ctx.server.keys.root, otherHostKnownHosts(ctx))],
    exit: ExitCode.HostKeyChanged,
    says: [/different SSH host key than before the rescue/],
    host: 'unchecked',
    check: async (ctx) => {
      // The wait step polls with its own fresh connections: it must stop at the changed key, not wait it out.
      const other = otherHostKnownHosts(ctx);
      const remote = new ProbeSpy({
        destination: '127.0.0.1',
        port: ctx.server.port,
        identity: ctx.server.keys.root,
        configFile: '/dev/null',
        options: ['IdentitiesOnly=yes', 'BatchMode=yes', `UserKnownHostsFile=${other}`, 'GlobalKnownHostsFile=/dev/null'],
      });
      const started = Date.now();
      await assert.rejects(
        waitForRescue(remote, new RecordingUi(), { oldBootId: 'the-old-boot', triggeredAt: Date.now(), timeoutSeconds: 60, fallbackReboot: 'off' }),
        (e: { exitCode: number; message: string }) => e.exitCode === ExitCode.HostKeyChanged && /different SSH host key/.test(e.message),
      );
      assert.ok(Date.now() - started < 30_000, 'refused at the first answer, not after the timeout');
      assert.deepEqual(remote.handedOver, [true], 'the probe ran over the banner check connection and refused there');
      // Behind the operator's own ProxyCommand there is no banner check to hand over: the probe alone, as strict.
      const tcpPipe = fileURLToPath(new URL('../lib/tcp-pipe.js', import.meta.url));
      const proxied = new ProbeSpy({
        destination: '127.0.0.1',
        port: ctx.server.port,
        identity: ctx.server.keys.root,
        configFile: '/dev/null',
        options: [
          'IdentitiesOnly=yes',
          'BatchMode=yes',
          `UserKnownHostsFile=${other}`,
          'GlobalKnownHostsFile=/dev/null',
          `ProxyCommand=${process.execPath} ${tcpPipe} %h %p`,
        ],
      });
      await assert.rejects(
        waitForRescue(proxied, new RecordingUi(), { oldBootId: 'the-old-boot', triggeredAt: Date.now(), timeoutSeconds: 60, fallbackReboot: 'off' }),
        (e: { exitCode: number; message: string }) => e.exitCode === ExitCode.HostKeyChanged && /different SSH host key/.test(e.message),
      );
      assert.deepEqual(proxied.handedOver, [false]);
    },
  },

  {
    name: 'refuses with exit 4 and reports both problems in one run, with the memory arithmetic; host unchanged',
    on: KEXEC_DISABLED_LOW_MEMORY,
    exit: ExitCode.Refused,
    says: [
      /refused, nothing was changed on the host \(\d+ problems\)/,
      /kexec is disabled on this kernel \(kernel\.kexec_load_disabled=1\)/,
      /the host has \d+ MiB of RAM, the rescue system needs \d+ MiB|too little free memory: \d+ MiB available, \d+ MiB needed/,
      /before kexec: staged files \d+ MiB \+ kexec segments|rescue system needs \d+ MiB/,
    ],
    saysNot: [/» stage/],
    host: 'unchanged',
  },

  rescueRow(
    'stages in a tmpfs under /run and rescues; the network comes back by MAC',
    READ_ONLY_ROOT,
    [/staged in a tmpfs at \/run\/emergency\.\d+/],
    async (ctx) => {
      const facts = await ctx.server.ssh(
        'root',
        'awk \'$2 == "/" { print $4 }\' /proc/mounts; test -e /nix && echo has-nix; touch /tmp/probe 2>/dev/null && echo tmp-writable; true',
      );
      assert.match(facts.stdout, /^ro[,\n]/, 'the root filesystem is read-only');
      assert.doesNotMatch(facts.stdout, /has-nix|tmp-writable/, 'no /nix, no writable /tmp');
    },
  ),

  rescueRow(
    'nothing writable for a tmpfs dir (/run, /dev/shm, /tmp read-only): stages over /mnt and rescues (needs QEMU)',
    NO_WRITABLE_TMPFS_DIRS,
    [/staged in a tmpfs at \/mnt;/],
    async (ctx) => {
      // The remount runs in the background once sshd is up: wait for it (a new login each time, as root).
      const PROBE =
        "for m in / /run /dev/shm; do awk -v m=$m '$2 == m { print m, $4 }' /proc/mounts; done; " +
        'for d in /run /dev/shm /tmp /var/tmp; do mkdir $d/probe.$$ 2>/dev/null && { rmdir $d/probe.$$; echo writable $d; }; done; test -d /mnt && echo mnt-dir; true';
      let facts = '';
      for (let i = 0; i < 40; i++) {
        facts = (await ctx.server.ssh('root', PROBE)).stdout;
        if (/^\/run ro[,\n]/m.test(facts)) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      for (const m of ['/', '/run', '/dev/shm']) assert.match(facts, new RegExp(`^${m} ro[,\\n]`, 'm'), `${m} is read-only: ${facts}`);
      assert.doesNotMatch(facts, /writable/, `no writable /run, /dev/shm, /tmp or /var/tmp: ${facts}`);
      assert.match(facts, /^mnt-dir$/m, '/mnt exists');
      const sudo = await ctx.server.ssh('admin', 'sudo -n id -u');
      assert.equal(sudo.stdout.trim(), '0', `a new login still gets sudo: ${sudo.stderr}`);
    },
  ),

  rescueRow(
    "captures the network with the image's ip after staging, and restores it by MAC",
    NO_TOOLS,
    [/captured with the image's ip after staging/, /✓ capture \(image ip\) /],
    async (ctx) => {
      const tools = await ctx.server.ssh('admin', 'for t in ip tar cpio gzip; do command -v "$t" && echo "has $t"; done; true');
      assert.doesNotMatch(tools.stdout, /has /, `the tools are gone: ${tools.stdout}`);
    },
  ),
  {
    ...rescueRow(
      '64 MiB under writeback on a disk writing 4 KiB/s: the one sync before the jump gives up after 10 s, and the host is rescued',
      DYING_DISK,
      [/kexec triggered/, /rescue system answers [\d.]+ s after kexec/],
      async (ctx) => {
        assert.equal((await ctx.server.ssh('root', DIRTY_THE_DISK)).code, 0);
        // dd puts it in the page cache within seconds; at 4 KiB/s almost none of it reaches the disk.
        let unwrittenKiB = 0;
        for (let i = 0; i < 120 && unwrittenKiB < 48 * 1024; i++) {
          await new Promise((r) => setTimeout(r, 500));
          unwrittenKiB = Number((await ctx.server.ssh('root', UNWRITTEN_KIB)).stdout.trim());
        }
        assert.ok(unwrittenKiB >= 48 * 1024, `only ${unwrittenKiB} KiB wait for the disk; the row needs a writeback backlog`);
        console.log(
          `# dying disk: ${unwrittenKiB} KiB under writeback before the CLI (${((unwrittenKiB * 1024) / DYING_DISK_BPS / 3600).toFixed(1)} h at 4 KiB/s)`,
        );
      },
    ),
    check: async (ctx, result) => {
      // The trigger's sync hit its deadline and the jump went ahead; kexec-tools' own syncs were off (--no-sync).
      assert.match(ctx.server.serialLog(), /emergency: sync did not finish within 10 s \(a slow or dying disk\); jumping without it/);
      const answered = /rescue system answers ([\d.]+) s after kexec/.exec(result.stderr);
      console.log(`# dying disk: kexec trigger → rescue answering ${answered?.[1]} s (the sync deadline is 10 s of it)`);
    },
  },
  {
    name: "the operator's address is on a macvlan: refused with exit 4 (operator-path) naming the address, the interface and why; host unchanged",
    on: OPERATOR_ON_MACVLAN,
    exit: ExitCode.Refused,
    says: [
      /\[operator-path\] your ssh connection arrived on 10\.0\.2\.15 \(mv0\), and the rescue system would not have that address \(interface mv0: macvlan interfaces cannot be re-created from a capture;/,
      /\[operator-path\] the host reaches you by 10\.0\.2\.2 dev mv0, and the rescue system would not have mv0/,
    ],
    saysNot: [/» stage/],
    host: 'unchanged',
  },
  {
    name: "the ssh NIC's driver (vmxnet3) is not in the image: refused with exit 4 (nic-driver) naming the NIC, its vendor:device, MAC and driver; host unchanged",
    on: SSH_NIC_WITHOUT_IMAGE_DRIVER,
    precondition: assertSshNicUndriven,
    exit: ExitCode.Refused,
    says: [
      /refused, nothing was changed on the host \(1 problem\)/,
      VMXNET3_FINDING,
      /fix: Add the driver to the NixOS image and rebuild it: emergency\.drivers\.modulePackages/,
      /--ignore-preflight-errors nic-driver turns this into a warning/,
    ],
    saysNot: [/» stage/],
    host: 'unchanged',
  },
  {
    name: 'the same with --ignore-preflight-errors nic-driver --dry-run: preflight passes with the warning, exit 0, nothing staged; host unchanged',
    on: SSH_NIC_WITHOUT_IMAGE_DRIVER,
    args: (ctx) => ['--dry-run', '--ignore-preflight-errors', 'nic-driver', '--image', ctx.image, ...targetArgs(ctx.server, 'admin')],
    exit: ExitCode.Ok,
    says: [
      new RegExp(`warning: ${VMXNET3_FINDING.source} \\(ignored: --ignore-preflight-errors nic-driver\\)`),
      /✓ checks /,
      /dry run: nothing was changed on admin@127\.0\.0\.1/,
    ],
    saysNot: [/» stage/, /refused/],
    host: 'unchanged',
    check: async (_, result) => {
      // The dry run's check list shows the check as ignored, with the NIC table.
      assert.match(result.stdout, /^\s*ignored\s+nic-driver\s/m, result.stdout);
      assert.match(result.stdout, /ens3\s+15ad:07b0\s+vmxnet3, a loadable module on the host\s+image: none\s+\(the restored network needs it\)/, result.stdout);
    },
  },
  {
    name: 'lockdown=integrity without securityfs: refused in preflight with exit 4, naming the source and the signer; nothing staged, host unchanged',
    on: LOCKDOWN,
    precondition: async (ctx) => {
      const r = await ctx.server.ssh('root', 'grep -c securityfs /proc/mounts; test -e /sys/kernel/security/lockdown && echo readable || echo absent');
      assert.deepEqual(r.stdout.trim().split('\n'), ['0', 'absent'], 'securityfs is not mounted');
    },
    exit: ExitCode.Refused,
    says: [
      /\[lockdown\] the kernel is locked down \(integrity, from lockdown=integrity on the kernel command line\): it loads only kernels signed by a key it trusts, and the image's kernel is signed by Debian Secure Boot Signer \d+ - linux \/ Debian Secure Boot CA while the host trusts Build time autogenerated kernel key/,
    ],
    saysNot: [/» stage/],
    host: 'unchanged',
  },
  {
    name: 'lockdown ignored: the kernel refuses both loads at the kexec step, exit 5 with one readable line; host unchanged',
    on: LOCKDOWN,
    args: (ctx) => ['--yes', '--ignore-preflight-errors', 'lockdown', '--image', ctx.image, ...targetArgs(ctx.server, 'admin')],
    exit: ExitCode.StageFailed,
    says: [/kexec_file_load: Operation not permitted; kexec_load: Operation not permitted — the running kernel does not allow it: locked down/],
    saysNot: [/segment\[0\]/],
    host: 'unchanged',
  },
];

/** An SshRemote that records, for each probe, whether it ran over a banner check's connection (a relay took it). */
class ProbeSpy extends SshRemote {
  readonly handedOver: boolean[] = [];
  override async probe(user: string, command: string, timeout: number, held?: HeldConnection) {
    const result = await super.probe(user, command, timeout, held);
    this.handedOver.push(held?.handedOver ?? false);
    return result;
  }
}

/** known_hosts claiming other host keys for the server: what a host with a changed key looks like. */
function otherHostKnownHosts(ctx: FaultContext): string {
  const path = join(ctx.work, 'known_hosts.other');
  const keys = ['other_ed25519', 'other_ecdsa'].map((k) => readFileSync(join(ctx.work, `${k}.pub`), 'utf8').trim());
  writeFileSync(path, knownHostsLines(ctx.server.port, keys));
  return path;
}

/** Runs one row: precondition, the run between host checks, the exit code and messages, the row's own check. */
async function runRow(row: FaultRow, ctx: FaultContext): Promise<void> {
  await row.precondition?.(ctx);
  const args = row.args?.(ctx) ?? ['--yes', '--image', ctx.image, ...targetArgs(ctx.server, 'admin')];
  const server = row.on ? ctx.server : undefined;
  // The exit code and messages first: when they are wrong, they say more than a changed host would.
  const run = async () => {
    const result = await (row.run ?? ((_, a) => runCli(a)))(ctx, args);
    assert.equal(result.code, row.exit, why(result, server));
    for (const pattern of row.says ?? []) assert.match(result.stderr, pattern, why(result, server));
    for (const pattern of row.saysNot ?? []) assert.doesNotMatch(result.stderr, pattern, why(result, server));
    return result;
  };
  let result: CliResult;
  if (row.host === 'unchanged') {
    const before = await hostSnapshot(ctx.server);
    result = await run();
    assert.equal(await waitForNoStage(ctx.server, 1), '', 'no tmpfs, stage dir or keeper is left');
    assert.equal(await hostSnapshot(ctx.server), before, 'mounts, staging places, kexec state, boot and network are exactly as before');
  } else if (row.host === 'rescued') {
    const oldBoot = (await ctx.server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    result = await run();
    await assertRescued(ctx.server, oldBoot, result);
    const state = await ctx.server.ssh('root', READ_NETWORK);
    assert.deepEqual(networkDifferences(ctx.server.expected, parseNetworkState(state.stdout)), [], 'every address, route and nameserver is back');
  } else {
    result = await run();
  }
  await row.check?.(ctx, result);
}

/** The rows' servers in table order, each with its rows; server-less rows first. */
const groups = new Map<ServerSpec | undefined, FaultRow[]>();
for (const row of FAULTS) groups.set(row.on, [...(groups.get(row.on) ?? []), row]);

for (const [spec, rows] of groups) {
  describe(spec?.title ?? 'fault matrix without a server', { skip: spec ? skip : false, timeout: spec?.timeoutMs ?? 600_000 }, () => {
    const ctx = { image: '', work: '', cliTmp: '', closedPort: 0 } as FaultContext;
    let server: TestServer | undefined;
    before(async () => {
      ctx.image = await buildTestImage();
      ctx.work = mkdtempSync(join(tmpdir(), 'emergency-faults-'));
      ctx.cliTmp = join(ctx.work, 'cli-tmp');
      mkdirSync(ctx.cliTmp);
      await makeKey(join(ctx.work, 'stranger'), 'ed25519', 'stranger@test');
      await makeKey(join(ctx.work, 'other_ed25519'), 'ed25519', 'other');
      await makeKey(join(ctx.work, 'other_ecdsa'), 'ecdsa', 'other');
      ctx.closedPort = await freePort();
      if (!spec) return;
      server = await startServer(spec.scenario(), { timeoutMs: 240_000 });
      ctx.server = server;
      for (const user of spec.warmUp ?? []) await server.ssh(user, 'sudo -n true');
    });
    after(async () => {
      if (ctx.cliTmp && existsSync(ctx.cliTmp)) closeLeftoverMasters(ctx.cliTmp);
      await server?.stop();
      if (ctx.work) rmSync(ctx.work, { recursive: true, force: true });
    });
    for (const row of rows) it(row.name, () => runRow(row, ctx));
  });
}
