/** The per-architecture table and what reads it: argument parsing, apt names, QEMU arguments, the kernel file, printk lines. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { ARCHES, archFromArgv, parseArch } from '../../test-image/arch.js';
import { installKernel, rescuePackages } from '../../test-image/build.js';
import { rescueCmdline } from '../../test-image/kernel-params.js';
import { aptName } from '../../test-image/debs.js';
import { parsePrintkLines, printkTime } from '../bench-kexec.js';
import { qemuArgs } from '../lib/qemu.js';

const dir = mkdtempSync(join(tmpdir(), 'emergency-arch-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('architecture table', () => {
  for (const [argv, want] of [
    [[], 'x86_64'],
    [['--arch', 'aarch64'], 'aarch64'],
    [['--arch=aarch64'], 'aarch64'],
    [['--runs', '3', '--arch', 'x86_64'], 'x86_64'],
  ] as const) {
    it(`${JSON.stringify(argv)} → ${want}`, () => assert.equal(archFromArgv([...argv]), want));
  }
  it('an unknown architecture is refused naming the valid ones', () => {
    assert.throws(() => parseArch('riscv64'), /unknown architecture riscv64: use one of x86_64, aarch64/);
  });
  it('apt is asked for pkg:arm64 on an amd64 build machine, plain names for its own architecture', () => {
    assert.equal(aptName('busybox-static', 'arm64'), process.arch === 'arm64' ? 'busybox-static' : 'busybox-static:arm64');
    assert.equal(
      aptName('linux-image-6.1.0-57-cloud-arm64:arm64', 'arm64'),
      process.arch === 'arm64' ? 'linux-image-6.1.0-57-cloud-arm64' : 'linux-image-6.1.0-57-cloud-arm64:arm64',
    );
    assert.equal(aptName('dash', undefined), 'dash');
  });
  it('the rescue cmdline ends on the architecture’s serial console, so it becomes /dev/console', () => {
    assert.match(rescueCmdline('x86_64'), /^console=tty0 console=ttyS0,115200 emergency\.rescue=1 /);
    assert.match(rescueCmdline('aarch64'), /^console=tty0 console=ttyAMA0,115200 emergency\.rescue=1 /);
  });
  it('both architectures need the same packages (kexec links Xen on both)', () => {
    assert.deepEqual(rescuePackages('aarch64'), rescuePackages('x86_64'));
  });
  it('QEMU for aarch64: the virt board, a translation buffer small enough to drop the old kernel’s code, cheap pointer authentication, the same virtio NICs', () => {
    const args = qemuArgs(
      { kernel: 'k', initrd: 'i', cmdline: 'c', memoryMiB: 256, nics: [{ mac: '52:54:00:00:00:01' }], workDir: '/w', arch: 'aarch64' },
      '/w/log',
    );
    assert.deepEqual(args.slice(0, 6), ['-M', 'virt', '-accel', 'tcg,tb-size=64', '-cpu', 'max,pauth-impdef=on']);
    assert.ok(args.includes('virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01'));
    assert.equal(ARCHES.aarch64.qemu.binary, 'qemu-system-aarch64');
  });
});

describe('installKernel: the kernel file as kexec loads it', () => {
  // An arm64 Image header: "ARM\x64" at offset 56.
  const image = Buffer.alloc(4096, 7);
  image.writeUInt32LE(0x644d5241, 56);
  const root = join(dir, 'root');
  mkdirSync(join(root, 'boot'), { recursive: true });
  it('a gzipped arm64 vmlinuz becomes the raw Image', async () => {
    writeFileSync(join(root, 'boot/vmlinuz-1'), gzipSync(image));
    assert.equal(await installKernel(root, '1', join(dir, 'k1')), 'Image (gunzipped vmlinuz)');
    assert.deepEqual(readFileSync(join(dir, 'k1')), image);
  });
  it('a raw Image and a bzImage are copied unchanged', async () => {
    writeFileSync(join(root, 'boot/vmlinuz-2'), image);
    assert.equal(await installKernel(root, '2', join(dir, 'k2')), 'Image');
    const bz = Buffer.alloc(4096, 1);
    writeFileSync(join(root, 'boot/vmlinuz-3'), bz);
    assert.equal(await installKernel(root, '3', join(dir, 'k3')), 'bzImage');
    assert.deepEqual(readFileSync(join(dir, 'k3')), bz);
  });
  it('gzip that is no arm64 Image inside is refused', async () => {
    writeFileSync(join(root, 'boot/vmlinuz-4'), gzipSync(Buffer.alloc(4096)));
    await assert.rejects(installKernel(root, '4', join(dir, 'k4')), /gzip but not an arm64 Image/);
  });
});

describe('printk lines (bench-kexec)', () => {
  const lines = parsePrintkLines(
    '[    0.000000] Booting Linux on physical CPU 0x0\n[    1.250001] Run /init as init process\nnoise\n[   12.5] random: crng init done\n',
  );
  it('parses timestamps and finds the first match', () => {
    assert.equal(lines.length, 3);
    assert.equal(printkTime(lines, /Run \/init/), 1.250001);
    assert.equal(printkTime(lines, /crng init done/), 12.5);
    assert.equal(printkTime(lines, /never/), undefined);
  });
});
