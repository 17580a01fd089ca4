import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { modulesFor } from '../../drivers/manifest.js';
import { loadImage, parseKeyValues } from '../../image.js';
import { buildTestImage, REPO } from '../../test-image/build.js';
import { rescueCmdline } from '../../test-image/kernel-params.js';

// Builds the test image (downloads Debian packages on the first run, then cached) and checks it against
// docs/image-layout.md from the outside, as the orchestrator and the host would see it.
describe('test image layout (npm run test-image)', { timeout: 600_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-layout-'));
  const image = join(dir, 'emergency-image');
  let tar = '';
  before(async () => {
    tar = await buildTestImage();
    execFileSync('tar', ['-xf', tar, '-C', dir]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('holds one emergency-image/ directory with every file of the contract', () => {
    assert.deepEqual(readdirSync(dir), ['emergency-image']);
    for (const f of [
      'kernel',
      'initrd',
      'cmdline',
      'kexec-run.sh',
      'kexec-trigger.sh',
      'run-tool.sh',
      'watchdog.sh',
      'bin/busybox',
      'bin/kexec',
      'bin/ip',
      'lib/ld.so',
      'image.info',
      'drivers.manifest',
      'SHA256SUMS',
    ]) {
      assert.ok(existsSync(join(image, f)), `emergency-image/${f} is missing`);
    }
  });

  it('SHA256SUMS covers every other file and verifies with the image’s own busybox', () => {
    const listed = readFileSync(join(image, 'SHA256SUMS'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[1])
      .sort();
    const actual = execFileSync('find', ['.', '-type', 'f', '!', '-name', 'SHA256SUMS'], { cwd: image, encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((f) => f.slice(2))
      .sort();
    assert.deepEqual(listed, actual);
    execFileSync(join(image, 'bin/busybox'), ['sha256sum', '-c', 'SHA256SUMS'], { cwd: image, stdio: 'pipe' });
  });

  it('kexec-run.sh has every @placeholder@ filled and passes shellcheck', () => {
    const script = readFileSync(join(image, 'kexec-run.sh'), 'utf8');
    assert.doesNotMatch(script, /@[a-z_]+@/, 'a placeholder is left in kexec-run.sh');
    assert.match(script, /image_arch='x86_64'/);
    assert.ok(statSync(join(image, 'kexec-run.sh')).mode & 0o100, 'kexec-run.sh is executable');
    execFileSync('shellcheck', [join(image, 'kexec-run.sh')], { stdio: 'pipe' });
  });

  it('kexec-trigger.sh, run-tool.sh and watchdog.sh are the project’s files, executable and shellcheck-clean', () => {
    for (const f of ['kexec-trigger.sh', 'run-tool.sh', 'watchdog.sh']) {
      assert.deepEqual(readFileSync(join(image, f)), readFileSync(join(REPO, 'scripts', f)), `${f} must be the project’s file, not a fork`);
      assert.ok(statSync(join(image, f)).mode & 0o100, `${f} is executable`);
      execFileSync('shellcheck', ['-s', 'sh', join(image, f)], { stdio: 'pipe' });
    }
  });

  it('the tar is packed as the contract says: ustar, root-owned, mtime 1, sorted', () => {
    const listing = execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', tar], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } })
      .trim()
      .split('\n');
    for (const line of listing) assert.match(line, /^\S+ 0\/0 +\d+ 1970-01-01 00:00:01 emergency-image\//, line);
    const names = listing.map((l) => l.replace(/^.* emergency-image\//, 'emergency-image/'));
    assert.deepEqual(names, [...names].sort(), 'members are sorted by name');
    const header = readFileSync(tar).subarray(0, 512);
    assert.equal(header.subarray(257, 263).toString('latin1'), 'ustar\0', 'POSIX ustar, not GNU tar format');
  });

  it('image.info and cmdline say what the orchestrator needs', async () => {
    const info = parseKeyValues(readFileSync(join(image, 'image.info'), 'utf8'));
    assert.equal(info.format, '1');
    assert.equal(info.arch, 'x86_64');
    assert.ok(info.name);
    assert.ok(Number(info.rescue_unpacked_bytes) > 1 << 20, 'rescue_unpacked_bytes is measured');
    assert.ok(readFileSync(join(image, 'cmdline'), 'utf8').trim().split(/\s+/).includes('emergency.rescue=1'));
    // The parameters both builders share (modules/kernel-params.json), exactly: kernel-params.test.ts holds the Nix side to them.
    assert.equal(readFileSync(join(image, 'cmdline'), 'utf8'), `${rescueCmdline('x86_64')}\n`);
    const loaded = await loadImage(tar);
    assert.equal(loaded.dynamicTools, true);
    assert.equal(loaded.rescueUnpackedBytes, Number(info.rescue_unpacked_bytes));
  });

  it('drivers.manifest says what the rescue kernel drives: its virtio, bonding and VLAN modules and its built-ins', async () => {
    const loaded = await loadImage(tar);
    const m = loaded.drivers!;
    assert.ok(m, 'the image carries drivers.manifest');
    assert.match(m.kernel, /^6\.\d+\.\d+-\d+-cloud-amd64$/);
    for (const mod of ['virtio_net', 'virtio_pci', 'bonding', '8021q', 'bridge']) assert.equal(m.modules.get(mod)?.place, 'loadable', `${mod} is shipped`);
    assert.ok(
      [...m.modules.values()].some((x) => x.place === 'builtin'),
      'the built-in modules are listed',
    );
    assert.deepEqual(modulesFor(m, 'virtio:d00000001v00001AF4'), ['virtio_net']);
    assert.deepEqual(modulesFor(m, 'pci:v00008086d0000100Esv00008086sd0000001Ebc02sc00i00'), [], 'no e1000');
    // Debian's cloud kernel is signed for Secure Boot (the lockdown check compares these names with the host's keys).
    assert.equal(loaded.kernelSignature?.signed, true);
    assert.ok(loaded.kernelSignature?.names.includes('Debian Secure Boot CA'), loaded.kernelSignature?.names.join(', '));
  });

  it('kexec and ip run through run-tool.sh, with the image’s own ld.so and libraries, under dash and busybox ash', () => {
    const shells = [['dash'], ['busybox', 'sh']].filter((shell) => spawnSync(shell[0], [...shell.slice(1), '-c', 'true']).status === 0);
    assert.ok(shells.length > 0, 'neither dash nor busybox is installed');
    for (const shell of shells) {
      const run = (tool: string, arg: string) => execFileSync(shell[0], [...shell.slice(1), join(image, 'run-tool.sh'), tool, arg], { encoding: 'utf8' });
      assert.match(run('kexec', '--version'), /kexec-tools/);
      assert.match(run('ip', '-V'), /iproute2/);
      // As docs/image-layout.md writes it: `sh run-tool.sh TOOL ARG...` in the image directory.
      assert.match(execFileSync(shell[0], [...shell.slice(1), 'run-tool.sh', 'ip', '-V'], { cwd: image, encoding: 'utf8' }), /iproute2/);
    }
    const run = (tool: string, arg: string) =>
      execFileSync(join(image, 'lib/ld.so'), ['--library-path', join(image, 'lib'), join(image, 'bin', tool), arg], { encoding: 'utf8' });
    assert.match(run('kexec', '--version'), /kexec-tools/);
    assert.match(run('ip', '-V'), /iproute2/);
  });

  it('the initrd is zstd and carries restore.sh verbatim, an init that passes shellcheck, sshd, iproute2 and dash', () => {
    const initrd = readFileSync(join(image, 'initrd'));
    assert.equal(initrd.readUInt32LE(0), 0xfd2fb528, 'initrd is a zstd frame');
    const rd = join(dir, 'rd');
    execFileSync('sh', ['-c', `mkdir -p "$1" && cd "$1" && zstd -dc "$2" | cpio -id --quiet`, 'sh', rd, join(image, 'initrd')]);
    assert.deepEqual(
      readFileSync(join(rd, 'usr/lib/emergency/restore.sh')),
      readFileSync(join(REPO, 'scripts/restore.sh')),
      'restore.sh must be the project’s file, not a fork',
    );
    execFileSync('shellcheck', [join(rd, 'init')], { stdio: 'pipe' });
    assert.deepEqual(
      readFileSync(join(rd, 'etc/emergency/fallback-reboot.sh')),
      readFileSync(join(REPO, 'scripts/fallback-reboot.sh')),
      'the fallback script must be the project’s file',
    );
    assert.match(readFileSync(join(rd, 'etc/profile'), 'utf8'), /sh \/etc\/emergency\/fallback-reboot\.sh login/, 'a root login shell disarms the fallback');
    assert.match(readFileSync(join(rd, 'init'), 'utf8'), /fallback-reboot\.sh run .*&/, '/init arms the fallback in the background');
    for (const f of ['usr/sbin/sshd', 'usr/sbin/ip', 'bin/sh', 'bin/busybox', 'etc/ssh/sshd_config', 'dev/console'])
      assert.ok(existsSync(join(rd, f)), `initrd lacks /${f}`);
    assert.equal(readdirSync(join(rd, 'etc/ssh')).filter((f) => f.startsWith('ssh_host_')).length, 0, 'the image must not carry host keys of its own');
    assert.match(readFileSync(join(rd, 'lib/modules', readdirSync(join(rd, 'lib/modules'))[0], 'modules.dep'), 'utf8'), /virtio_net\.ko:/);
  });

  it('a second build is a cache hit and prints the same path', async () => {
    const started = Date.now();
    assert.equal(await buildTestImage(), tar);
    assert.ok(Date.now() - started < 30_000, 'a cached build must not rebuild');
  });
});
