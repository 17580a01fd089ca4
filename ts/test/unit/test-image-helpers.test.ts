import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { libraryClosure, UnresolvedLibraryError } from '../../test-image/closure.js';
import { unpackedBytes, writeCpio, type CpioEntry } from '../../test-image/cpio.js';
import { parsePrintUris } from '../../test-image/debs.js';
import { isElf, readDynamic } from '../../test-image/elf.js';
import { moduleKey } from '../../test-image/kmod.js';
import { driveArg, joinInitrd, netdevArg, qemuArgs } from '../lib/qemu.js';
import { dataCentreScenario, defaultScenario, renderGroups, renderSetup, renderShadow, renderSudoers, routeCommand } from '../lib/server-scenario.js';
import { knownHostsLines } from '../lib/ssh.js';

const dir = mkdtempSync(join(tmpdir(), 'emergency-test-image-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('elf', () => {
  it('reads the interpreter and DT_NEEDED of a dynamic program (node itself)', () => {
    const buf = readFileSync(process.execPath);
    assert.ok(isElf(buf));
    const dyn = readDynamic(buf);
    assert.match(dyn.interpreter ?? '', /ld-linux-x86-64\.so\.2$/);
    assert.ok(dyn.needed.includes('libc.so.6'), `needed: ${dyn.needed.join(' ')}`);
  });
  it('refuses what is not ELF', () => {
    assert.equal(isElf(Buffer.from('#!/bin/sh\n'.padEnd(80))), false);
    assert.throws(() => readDynamic(Buffer.alloc(80)), /not an ELF/);
  });
});

describe('libraryClosure', () => {
  // A fake tree holding node and the host's copies of the libraries it needs, found the way ld.so would.
  const root = join(dir, 'tree');
  const hostLibs = execFileSync('ldd', [process.execPath], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /=> (\/\S+)/.exec(l)?.[1])
    .filter((p): p is string => !!p);
  mkdirSync(join(root, 'usr/bin'), { recursive: true });
  mkdirSync(join(root, 'lib/x86_64-linux-gnu'), { recursive: true });
  mkdirSync(join(root, 'lib64'), { recursive: true });
  copyFileSync(process.execPath, join(root, 'usr/bin/node'));

  it('names the first soname no package provides', async () => {
    await assert.rejects(
      libraryClosure(root, ['/usr/bin/node']),
      (e: unknown) => e instanceof UnresolvedLibraryError && /needs \S*(ld-linux|lib)\S+, which none/.test(e.message),
    );
  });
  it('follows absolute symlinks inside the tree and returns every library once', async () => {
    for (const lib of hostLibs) copyFileSync(lib, join(root, 'lib/x86_64-linux-gnu', lib.split('/').pop()!));
    copyFileSync(readDynamic(readFileSync(process.execPath)).interpreter!, join(root, 'lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'));
    symlinkSync('/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', join(root, 'lib64/ld-linux-x86-64.so.2'));
    const { interpreter, libraries } = await libraryClosure(root, ['/usr/bin/node']);
    assert.equal(interpreter?.treePath, '/lib64/ld-linux-x86-64.so.2');
    assert.ok(interpreter?.realPath.startsWith(root), 'resolved inside the tree, not on the build machine');
    const names = libraries.map((l) => l.soname);
    assert.ok(names.includes('libc.so.6'));
    assert.equal(new Set(names).size, names.length);
  });
});

describe('writeCpio', () => {
  it('writes newc that GNU cpio lists and extracts byte for byte, modes included', () => {
    const entries: CpioEntry[] = [
      { path: 'etc', type: 'dir', mode: 0o755 },
      { path: 'etc/shadow', type: 'file', mode: 0o640, data: Buffer.from('root:*:1::::::\n') },
      { path: 'usr', type: 'dir', mode: 0o755 },
      { path: 'usr/sudo', type: 'file', mode: 0o4755, data: Buffer.alloc(1001, 9) },
      { path: 'sh', type: 'symlink', mode: 0o777, target: 'dash' },
    ];
    const archive = writeCpio(entries);
    assert.equal(archive.length % 4, 0);
    writeFileSync(join(dir, 'a.cpio'), archive);
    const listing = execFileSync('cpio', ['-itv', '-F', join(dir, 'a.cpio')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(listing, /-rwsr-xr-x .* usr\/sudo/);
    assert.match(listing, /sh -> dash/);
    const out = join(dir, 'x');
    mkdirSync(out);
    execFileSync('cpio', ['-id', '--no-absolute-filenames', '-F', join(dir, 'a.cpio')], { cwd: out, stdio: 'ignore' });
    assert.equal(readFileSync(join(out, 'etc/shadow'), 'utf8'), 'root:*:1::::::\n');
    assert.deepEqual(readFileSync(join(out, 'usr/sudo')), Buffer.alloc(1001, 9));
  });
  it('counts unpacked bytes in 4 KiB pages', () => {
    assert.equal(
      unpackedBytes([
        { path: 'a', type: 'file', mode: 0o644, data: Buffer.alloc(1) },
        { path: 'd', type: 'dir', mode: 0o755 },
      ]),
      4096,
    );
  });
});

describe('small pure helpers', () => {
  it('parsePrintUris reads apt-get --print-uris lines', () => {
    const line = `'http://x/pool/b/busybox.deb' busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb 928188 SHA256:${'a'.repeat(64)}`;
    assert.deepEqual(parsePrintUris(`${line}\n`), [{ file: 'busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb', sha256: 'a'.repeat(64) }]);
  });
  it('moduleKey treats - and _ alike and drops the suffix', () => {
    assert.equal(moduleKey('virtio-net.ko'), 'virtio_net');
  });
  it('joinInitrd pads each part to 4 bytes', () => {
    assert.deepEqual(joinInitrd([Buffer.from('abcde'), Buffer.from('f')]), Buffer.from('abcde\0\0\0f\0\0\0'));
  });
  it('every netdev is restrict=on and forwards ssh on 127.0.0.1 only', () => {
    assert.equal(netdevArg('n0', { mac: 'm', sshPort: 2222 }), 'user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22');
    assert.equal(netdevArg('n1', { mac: 'm' }), 'user,id=n1,restrict=on');
    assert.equal(
      netdevArg('n2', { mac: 'm', guestfwd: [{ addr: '10.0.2.100', port: 8080, cmd: 'node pipe.js 10.0.2.100 8081' }] }),
      'user,id=n2,restrict=on,guestfwd=tcp:10.0.2.100:8080-cmd:node pipe.js 10.0.2.100 8081',
      'guestfwd keeps restrict=on',
    );
    assert.throws(() => netdevArg('n3', { mac: 'm', guestfwd: [{ addr: 'a', port: 1, cmd: 'x,y' }] }), /comma/);
    const args = qemuArgs({ kernel: 'k', initrd: 'i', cmdline: 'c', memoryMiB: 256, nics: [{ mac: '52:54:00:00:00:01' }], workDir: '/w' }, '/w/log');
    assert.deepEqual(args.slice(0, 2), ['-accel', 'tcg']);
    assert.ok(args.includes('virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01'));
  });
  it('a test disk is raw and O_DIRECT on the host, write-limited when asked (a dying disk)', () => {
    assert.equal(driveArg({ file: '/w/disk', writeBytesPerSecond: 4096 }), 'file=/w/disk,format=raw,if=none,id=disk0,cache=none,throttling.bps-write=4096');
    assert.equal(driveArg({ file: '/w/disk' }), 'file=/w/disk,format=raw,if=none,id=disk0,cache=none');
    const base = { kernel: 'k', initrd: 'i', cmdline: 'c', memoryMiB: 256, nics: [], workDir: '/w' };
    assert.ok(!qemuArgs(base, '/w/log').includes('-drive'), 'no disk unless asked');
    const withDisk = qemuArgs({ ...base, disk: { file: '/w/disk', writeBytesPerSecond: 4096 } }, '/w/log');
    assert.deepEqual(withDisk.slice(withDisk.indexOf('-drive'), withDisk.indexOf('-drive') + 4), [
      '-drive',
      'file=/w/disk,format=raw,if=none,id=disk0,cache=none,throttling.bps-write=4096',
      '-device',
      'virtio-blk-pci,drive=disk0',
    ]);
  });
  it('a watchdog server gets an i6300esb whose expiry resets the machine; others get none', () => {
    const base = { kernel: 'k', initrd: 'i', cmdline: 'c', memoryMiB: 256, nics: [], workDir: '/w' };
    assert.ok(!qemuArgs(base, '/w/log').includes('i6300esb'));
    const dog = qemuArgs({ ...base, watchdog: true, allowReboot: true }, '/w/log');
    assert.deepEqual(dog.slice(dog.indexOf('i6300esb') - 1, dog.indexOf('i6300esb') + 3), ['-device', 'i6300esb', '-action', 'watchdog=reset']);
    assert.ok(!dog.includes('-no-reboot'), 'the reset restarts the VM instead of ending QEMU');
  });
  it('knownHostsLines names the forwarded port', () => {
    assert.equal(knownHostsLines(2222, ['ssh-ed25519 AAAA root@h']), '[127.0.0.1]:2222 ssh-ed25519 AAAA\n');
  });
});

describe('server scenario rendering', () => {
  const s = defaultScenario();
  it('uses -6 for routes with an IPv6 address, incl. a link-local default gateway', () => {
    assert.deepEqual(routeCommand(['default', 'via', 'fe80::2', 'dev', 'ens3']), ['ip', '-6', 'route', 'add', 'default', 'via', 'fe80::2', 'dev', 'ens3']);
    assert.deepEqual(routeCommand(['default', 'via', '10.0.2.2']), ['ip', 'route', 'add', 'default', 'via', '10.0.2.2']);
  });
  it('the default scenario: two NICs not named ethN, v4 + v6, link-local v6 gateway, two nameservers, a sudo user', () => {
    assert.equal(s.nics.length, 2);
    assert.ok(s.nics.every((n) => !/^eth\d/.test(n.name) && n.ipv4.length && n.ipv6.length));
    assert.ok(s.routes.some((r) => r[0] === 'default' && r[2].startsWith('fe80:')));
    assert.equal(s.nameservers.length, 2);
    assert.ok(s.users.some((u) => u.sudo.kind !== 'none'));
  });
  it('renders setup with IPv6 nodad, and fault options last', () => {
    const setup = renderSetup({ ...s, faults: { kexecDisabled: true, removeTools: ['ip'], readOnlyRoot: true } });
    assert.match(setup, /run ip -6 addr add fec0::15\/64 dev ens3 nodad/);
    assert.match(setup, /kexec_load_disabled/);
    const lines = setup.trim().split('\n');
    assert.equal(lines.at(-2), 'run mount -o remount,ro /');
    assert.ok(lines.findIndex((l) => l.includes('rm -f /usr/sbin/ip')) > lines.findIndex((l) => l.includes('route add')), 'tools go after the network is up');
  });
  it('renders noWritableTmpfsDirs as a background remount of /, /run and /dev/shm once sshd has its pid file', () => {
    const setup = renderSetup({ ...s, faults: { noWritableTmpfsDirs: true } });
    const lines = setup.trim().split('\n');
    const wait = lines.findIndex((l) => l.includes('[ -s /run/sshd.pid ]'));
    const remount = lines.findIndex((l) => l.includes('for m in / /run /dev/shm; do mount -o remount,ro "$m"'));
    assert.ok(wait > 0 && remount > wait, 'waits for sshd, then remounts');
    assert.match(lines.at(-2)!, /^\) .*&$/, 'in the background, as the last step');
    assert.doesNotMatch(renderSetup(s), /remount/, 'not without the fault');
  });
  it('renders bonds, VLANs and bridges: modules, links and members before any NIC is up, then addresses', () => {
    const lines = renderSetup(dataCentreScenario()).split('\n');
    const at = (line: string) => {
      const i = lines.indexOf(line);
      assert.ok(i >= 0, `setup has ${line}`);
      return i;
    };
    const bondModule = at('run modprobe bonding max_bonds=0');
    const bond = at('run ip link add name bond0 type bond mode active-backup miimon 100');
    const member = at('run ip link set dev eno2 master bond0');
    assert.ok(member < at('run ip link set dev bond0 type bond primary eno2'), 'the primary is set once it is a member');
    const vlan = at('run ip link add link bond0 name bond0.100 type vlan id 100');
    at('run ip link set dev enp5s0 master br0');
    const firstUp = lines.findIndex((l) => / up$/.test(l) && !l.includes(' lo '));
    assert.ok(bondModule < bond && bond < member && member < vlan && vlan < firstUp, 'modules, links, members, then links up');
    assert.ok(at('run ip link set dev bond0 up') < at('run ip link set dev bond0.100 up'), 'the bond comes up before its VLAN');
    assert.ok(at('run ip -6 addr add 2001:db8:100::5/64 dev bond0.100 nodad') < at('run ip -6 route add 2001:db8:200::/48 via 2001:db8:100::1 dev bond0.100'));
    assert.doesNotMatch(renderSetup(defaultScenario()), /modprobe|type bond/, 'a scenario without links loads nothing');
  });
  it('renders sudo rights per user and keeps groups separate', () => {
    const users = [
      { name: 'a', uid: 1000, groups: ['sudo'], sudo: { kind: 'nopasswd' as const } },
      { name: 'b', uid: 1001, groups: ['sudo', 'wheel'], sudo: { kind: 'password' as const, password: 'pw' } },
      { name: 'c', uid: 1002, groups: [], sudo: { kind: 'none' as const } },
    ];
    const t = { ...s, users };
    assert.match(renderSudoers(t), /^a ALL=\(ALL:ALL\) NOPASSWD: ALL$/m);
    assert.match(renderSudoers(t), /^b ALL=\(ALL:ALL\) ALL$/m);
    assert.doesNotMatch(renderSudoers(t), /^c /m);
    assert.match(renderGroups(t), /^sudo:x:27:a,b$/m);
    assert.match(renderGroups(t), /^wheel:x:\d+:b$/m);
    assert.match(renderShadow(t, new Map([['b', '$6$salt$hash']])), /^b:\$6\$salt\$hash:/m);
    assert.match(renderShadow(t, new Map()), /^a:\*:/m);
  });
});
