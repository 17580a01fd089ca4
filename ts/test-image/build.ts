/**
 * `npm run test-image`: builds the Nix-free test image (docs/test-image.md) from Debian packages in the layout
 * of docs/image-layout.md, at $EMERGENCY_CACHE_DIR/test-image/emergency-image-ARCH.tar (and its sidecar, `.tar.meta`),
 * and prints its path last. `-- --arch aarch64` builds it from Debian's arm64 packages instead (x86_64 is the default).
 * Rebuilds only when a package version or a project file that goes in changes.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { homedir } from 'node:os';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { ARCHES, archFromArgv, buildMachineArch, type Arch } from './arch.js';
import { writeCpio, entriesFromDir, unpackedBytes, type CpioEntry } from './cpio.js';
import { extractDebs, fetchDebs, kernelPackage, nativeDebArch, resolveDebs } from './debs.js';
import { realPathIn } from './closure.js';
import { driverManifest } from './drivers.js';
import { rescueCmdline } from './kernel-params.js';
import { kernelVersion } from './kmod.js';
import { LINK_KINDS } from '../network/link-kinds.js';
import { installBusybox, installModules, installPrograms, makeRootDirs, writeIn } from './stage.js';

const exec = promisify(execFile);

/** The repository root (this file runs from dist/test-image/). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where downloaded packages are kept, by file name (name_version_arch.deb). */
/**
 * Downloads and built images live outside the checkout (EMERGENCY_CACHE_DIR, default ~/.cache/emergency), so
 * a fresh clone — CI's — reuses them; every entry is keyed by package versions and input hashes.
 */
export const CACHE_DIR = process.env.EMERGENCY_CACHE_DIR || join(homedir(), '.cache', 'emergency');
export const DEB_CACHE = join(CACHE_DIR, 'debs');
const OUT_DIR = join(CACHE_DIR, 'test-image');
const IMAGE_NAME = 'Debian test image';

/**
 * Packages besides the kernel, on every architecture (plus its `extraLibraryPackages`, arch.ts). The libraries
 * are the DT_NEEDED closure of sshd, ip and kexec; the build fails naming any soname none of them provides
 * (closure.ts).
 */
const COMMON_PACKAGES = [
  'busybox-static',
  'dash',
  'openssh-server',
  'iproute2',
  'kexec-tools',
  // libraries of sshd, ip and kexec
  'libc6',
  'libcrypt1',
  'libwrap0',
  'libnsl2',
  'libtirpc3',
  'libaudit1',
  'libcap-ng0',
  'libpam0g',
  'libsystemd0',
  'libcap2',
  'libgcrypt20',
  'libgpg-error0',
  'liblz4-1',
  'liblzma5',
  'libzstd1',
  'libselinux1',
  'libpcre2-8-0',
  'libgssapi-krb5-2',
  'libkrb5-3',
  'libk5crypto3',
  'libkrb5support0',
  'libkeyutils1',
  'libcom-err2',
  'libssl3',
  'zlib1g',
  'libbpf1',
  'libelf1',
  'libmnl0',
  'libbsd0',
  'libmd0',
  // Debian builds kexec with Xen support on both architectures.
  'libxenmisc4.17',
  'libxentoollog1',
  'libxencall1',
  'libxenevtchn1',
  'libxenforeignmemory1',
  'libxengnttab1',
  'libxendevicemodel1',
  'libxentoolcore1',
];

/** Every package of the rescue image besides the kernel, for `arch`. */
export function rescuePackages(arch: Arch = 'x86_64'): string[] {
  return [...COMMON_PACKAGES, ...ARCHES[arch].extraLibraryPackages];
}

/** NIC drivers, and the module of every link kind network.sh may create (ts/network/link-kinds.ts). */
export const NIC_MODULES = ['virtio_pci', 'virtio_net', ...Object.values(LINK_KINDS).map((k) => k.module)];

/** Project files that go into the image: any change rebuilds it. */
const PROJECT_FILES = [
  'modules/kernel-params.json',
  'ts/network/link-kinds.ts',
  'scripts/kexec-run.sh',
  'scripts/kexec-trigger.sh',
  'scripts/run-tool.sh',
  'scripts/restore.sh',
  'scripts/fallback-reboot.sh',
  'scripts/image-sidecar.sh',
  'scripts/rescue-banner.sh',
  'scripts/watchdog.sh',
  'ts/test-image/rescue-init.sh',
  'ts/test-image/sshd_config',
];

/**
 * Which kernel the test image boots: the architecture's cloud kernel, or (x86_64) Debian's generic kernel with the
 * i6300esb watchdog driver, whose image.info names it in `watchdog_modules`, so a host arms that watchdog before the
 * jump (docs/watchdog.md). The generic image is `emergency-image-x86_64-generic.tar`.
 */
export type TestImageKernel = 'cloud' | 'generic';
const WATCHDOG_MODULES: Record<TestImageKernel, string[]> = { cloud: [], generic: ['i6300esb'] };

/** The builder's own compiled files, so a builder change also rebuilds. */
async function builderFiles(): Promise<string[]> {
  const dir = dirname(fileURLToPath(import.meta.url));
  return (await readdir(dir))
    .filter((f) => f.endsWith('.js'))
    .sort()
    .map((f) => join(dir, f));
}

/** Cache key: package files (name + version) and the bytes of every project file that goes in. */
export async function inputKey(debFiles: string[], files: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const f of [...debFiles].sort()) hash.update(`deb ${f}\n`);
  for (const f of files) hash.update(`file ${f}\n`).update(await readFile(f));
  return hash.digest('hex');
}

/**
 * Debian's generic x86_64 kernel: it has the hardware watchdog drivers (i6300esb) the cloud kernel lacks, for the
 * watchdog server and image (docs/watchdog.md).
 */
export const GENERIC_KERNEL_META = 'linux-image-amd64';

/** The packages of one build for `arch` as apt would download them (kernel first; `kernelMeta` overrides the arch's). */
export async function resolvePackages(extra: string[], arch: Arch = 'x86_64', kernelMeta = ARCHES[arch].kernelMeta) {
  const { debArch } = ARCHES[arch];
  const kernel = await kernelPackage(kernelMeta, debArch);
  return resolveDebs([kernel, ...rescuePackages(arch), ...extra], debArch);
}

/** Extracted Debian packages for one build, in a temporary directory under `.cache/`. */
export async function preparePackages(
  extra: string[],
  workDir: string,
  arch: Arch = 'x86_64',
  kernelMeta = ARCHES[arch].kernelMeta,
): Promise<{ root: string; debFiles: string[] }> {
  const debs = await resolvePackages(extra, arch, kernelMeta);
  const paths = await fetchDebs(debs, DEB_CACHE, ARCHES[arch].debArch);
  const root = join(workDir, 'extracted');
  await extractDebs(paths.values(), root);
  return { root, debFiles: debs.map((d) => d.file) };
}

/**
 * A static busybox the build machine runs (to list applets, run depmod, hash passwords): the image's own when
 * it is for the build machine's architecture, else Debian's busybox-static for the build machine, extracted
 * once into the cache.
 */
export async function buildMachineBusybox(arch: Arch, root: string): Promise<string> {
  if (arch === buildMachineArch()) return join(root, 'bin/busybox');
  const [deb] = await resolveDebs(['busybox-static'], nativeDebArch());
  const dir = join(CACHE_DIR, 'tools', deb.file.replace(/\.deb$/, ''));
  const busybox = join(dir, 'bin/busybox');
  if (!existsSync(busybox)) {
    const paths = await fetchDebs([deb], DEB_CACHE, nativeDebArch());
    const tmp = `${dir}.${process.pid}`;
    await extractDebs(paths.values(), tmp);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  }
  return busybox;
}

/**
 * Copies the kernel as kexec loads it. Debian's arm64 `vmlinuz` is a gzipped `Image`: the kernel's
 * kexec_file_load takes only a raw `Image` there, and kexec-tools would gunzip it for kexec_load only (for
 * kexec_file_load it writes the decompressed copy to a temporary file on the host). Decompressing here gives
 * one file both methods load as it is, with nothing to unpack on the host; NixOS's aarch64 kernel file is a
 * raw `Image` too. x86_64's bzImage decompresses itself, so it is copied unchanged.
 */
export async function installKernel(root: string, version: string, to: string): Promise<'bzImage' | 'Image' | 'Image (gunzipped vmlinuz)'> {
  const real = await realPathIn(root, `/boot/vmlinuz-${version}`);
  if (!real) throw new Error(`/boot/vmlinuz-${version} is not in the kernel package`);
  const data = await readFile(real);
  if (data[0] === 0x1f && data[1] === 0x8b) {
    const image = gunzipSync(data);
    // arm64 Image header: "ARM\x64" at offset 56.
    if (image.readUInt32LE(56) !== 0x644d5241) throw new Error(`${real} is gzip but not an arm64 Image inside`);
    await writeFile(to, image);
    return 'Image (gunzipped vmlinuz)';
  }
  await writeFile(to, data);
  return data.readUInt32LE(56) === 0x644d5241 ? 'Image' : 'bzImage';
}

/** The static rescue-side files that are not from a package. */
function rescueEtc(): Record<string, [string, number]> {
  return {
    'etc/passwd': [
      'root:x:0:0:root:/root:/bin/sh\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
      0o644,
    ],
    'etc/group': ['root:x:0:\nnogroup:x:65534:\n', 0o644],
    // `*`, not `!`: sshd treats `!` as a locked account and would refuse even key logins.
    'etc/shadow': ['root:*:19000:0:99999:7:::\nsshd:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n', 0o600],
    'etc/inittab': ['::askfirst:-/bin/sh\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/umount -a -r\n', 0o644],
    'etc/hosts': ['127.0.0.1 localhost\n::1 localhost\n', 0o644],
    // Loading bonding or dummy must not create a bond0 or dummy0 that was never on the old system; network.sh
    // makes its own.
    'etc/modprobe.d/emergency.conf': [
      Object.values(LINK_KINDS)
        .filter((k) => k.moduleOptions.length > 0)
        .map((k) => `options ${k.module} ${k.moduleOptions.join(' ')}\n`)
        .join(''),
      0o644,
    ],
    // A login shell (an interactive ssh or console login; dash reads /etc/profile) means a person is here: it
    // disarms the fallback reboot. `ssh root@host cmd` runs no login shell and has no terminal, so it does not.
    // It also greets the operator with the banner rescue-banner.sh wrote (docs/image-layout.md), then the fallback's
    // live state.
    'etc/profile': [
      'sh /usr/lib/emergency/rescue-banner.sh show\n[ -f /etc/emergency/fallback-reboot.sh ] && sh /etc/emergency/fallback-reboot.sh login\n',
      0o644,
    ],
  };
}

/** Compresses an initramfs cpio with zstd (the kernel's CONFIG_RD_ZSTD). */
export async function zstd(input: string, output: string): Promise<void> {
  await exec('zstd', ['-q', '-f', '-19', '-T0', input, '-o', output]);
}

async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/** Builds the rescue initrd into `out`; returns the bytes it unpacks to. */
async function buildRescueInitrd(
  root: string,
  work: string,
  out: string,
  arch: Arch,
  watchdogModules: string[],
): Promise<{ unpacked: number; cpioBytes: number; manifest: string }> {
  const stage = join(work, 'rescue');
  const version = await kernelVersion(root);
  // dash as /bin/sh: busybox's own shell would run its `ip` applet instead of iproute2's (rescue-init.sh).
  await installPrograms(root, stage, { '/usr/sbin/sshd': '/usr/sbin/sshd', '/bin/ip': '/usr/sbin/ip', '/bin/dash': '/bin/sh' }, [], ARCHES[arch].triplet);
  const busybox = join(root, 'bin/busybox');
  const hostBusybox = await buildMachineBusybox(arch, root);
  await installBusybox(stage, busybox, [], hostBusybox);
  const modules = await installModules(root, stage, version, [...NIC_MODULES, ...watchdogModules], hostBusybox);
  const init = (await readFile(join(REPO, 'ts/test-image/rescue-init.sh'), 'utf8'))
    .replaceAll('@name@', IMAGE_NAME)
    .replaceAll('@modules@', NIC_MODULES.join(' '))
    .replaceAll('@watchdog_modules@', watchdogModules.join(' '));
  if (/@[a-z_]+@/.test(init)) throw new Error('rescue-init.sh has a placeholder the builder does not fill');
  await writeIn(stage, 'init', init, 0o755);
  await writeIn(stage, 'usr/lib/emergency/restore.sh', await readFile(join(REPO, 'scripts/restore.sh')), 0o755);
  await writeIn(stage, 'etc/emergency/fallback-reboot.sh', await readFile(join(REPO, 'scripts/fallback-reboot.sh')), 0o755);
  await writeIn(stage, 'usr/lib/emergency/watchdog.sh', await readFile(join(REPO, 'scripts/watchdog.sh')), 0o755);
  await writeIn(stage, 'usr/lib/emergency/rescue-banner.sh', await readFile(join(REPO, 'scripts/rescue-banner.sh')), 0o755);
  await writeIn(stage, 'etc/ssh/sshd_config', await readFile(join(REPO, 'ts/test-image/sshd_config')), 0o644);
  for (const [path, [content, mode]] of Object.entries(rescueEtc())) await writeIn(stage, path, content, mode);
  await makeRootDirs(stage);
  const entries: CpioEntry[] = [
    ...(await entriesFromDir(stage)),
    // The kernel opens /dev/console for init before anything is mounted.
    { path: 'dev/console', type: 'char', major: 5, minor: 1, mode: 0o600 },
  ];
  const cpio = join(work, 'initrd.cpio');
  const data = writeCpio(entries);
  await writeFile(cpio, data);
  await zstd(cpio, out);
  // What this rescue tree can drive, from the very modules and firmware that went in (docs/image-layout.md).
  const manifest = await driverManifest(root, stage, version, modules);
  return { unpacked: unpackedBytes(entries), cpioBytes: data.length, manifest };
}

/** Builds (or finds cached) the test image for `arch`; returns the tarball's path. */
export async function buildTestImage(log: (line: string) => void = () => {}, arch: Arch = 'x86_64', kernel: TestImageKernel = 'cloud'): Promise<string> {
  if (kernel === 'generic' && arch !== 'x86_64') throw new Error(`the generic test image is x86_64 only, not ${arch}`);
  const name = `emergency-image-${arch}${kernel === 'generic' ? '-generic' : ''}`;
  const tarPath = join(OUT_DIR, `${name}.tar`);
  const keyPath = join(OUT_DIR, `${name}.key`);
  const kernelMeta = kernel === 'generic' ? GENERIC_KERNEL_META : ARCHES[arch].kernelMeta;
  const watchdogModules = WATCHDOG_MODULES[kernel];
  await mkdir(OUT_DIR, { recursive: true });
  const debs = await resolvePackages([], arch, kernelMeta);
  const key = await inputKey(
    debs.map((d) => d.file),
    [...PROJECT_FILES.map((f) => join(REPO, f)), ...(await builderFiles())],
  );
  if (existsSync(tarPath) && existsSync(keyPath) && (await readFile(keyPath, 'utf8')).trim() === key) {
    log(`test image is up to date (inputs ${key.slice(0, 12)})`);
    return tarPath;
  }

  const work = await mkdtemp(join(OUT_DIR, '.build-'));
  try {
    log(`building the ${arch} test image from ${debs.length} Debian packages`);
    const { root } = await preparePackages([], work, arch, kernelMeta);
    const version = await kernelVersion(root);
    const image = join(work, 'emergency-image');
    await mkdir(join(image, 'bin'), { recursive: true });
    const kernelKind = await installKernel(root, version, join(image, 'kernel'));
    const initrd = await buildRescueInitrd(root, work, join(image, 'initrd'), arch, watchdogModules);
    await writeFile(join(image, 'cmdline'), `${rescueCmdline(arch)}\n`);
    const kexecRun = (await readFile(join(REPO, 'scripts/kexec-run.sh'), 'utf8')).replaceAll('@arch@', arch);
    if (/@[a-z]+@/.test(kexecRun)) throw new Error(`scripts/kexec-run.sh has a placeholder the builder does not fill: ${/@[a-z]+@/.exec(kexecRun)![0]}`);
    await writeIn(image, 'kexec-run.sh', kexecRun, 0o755);
    for (const verbatim of ['kexec-trigger.sh', 'run-tool.sh', 'watchdog.sh'])
      await writeIn(image, verbatim, await readFile(join(REPO, 'scripts', verbatim)), 0o755);

    // Host-side tools: Debian's dynamic kexec and ip, run through the image's own ld.so and libraries.
    await copyFile(join(root, 'bin/busybox'), join(image, 'bin/busybox'));
    await chmod(join(image, 'bin/busybox'), 0o755);
    const tools = join(work, 'tools');
    const libs = await installPrograms(root, tools, { '/sbin/kexec': '/bin/kexec', '/bin/ip': '/bin/ip' }, [], ARCHES[arch].triplet);
    await copyFile(join(tools, 'bin/kexec'), join(image, 'bin/kexec'));
    await copyFile(join(tools, 'bin/ip'), join(image, 'bin/ip'));
    await mkdir(join(image, 'lib'));
    const interpreter = libs[0];
    await copyFile(interpreter.realPath, join(image, 'lib/ld.so'));
    // libc names the loader as DT_NEEDED too; the loader already running satisfies it, so no second copy.
    for (const lib of libs.slice(1)) if (lib.soname !== interpreter.soname) await copyFile(lib.realPath, join(image, 'lib', lib.soname));

    await writeFile(join(image, 'drivers.manifest'), initrd.manifest);
    const watchdogLine = watchdogModules.length ? `watchdog_modules=${watchdogModules.join(' ')}\n` : '';
    await writeFile(join(image, 'image.info'), `format=1\narch=${arch}\nname=${IMAGE_NAME}\nrescue_unpacked_bytes=${initrd.unpacked}\n${watchdogLine}`);
    const files = (await exec('find', ['.', '-type', 'f'], { cwd: image })).stdout
      .split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^\.\//, ''))
      .sort();
    const sums = await Promise.all(files.map(async (f) => `${await sha256File(join(image, f))}  ${f}\n`));
    await writeFile(join(image, 'SHA256SUMS'), sums.join(''));

    const tmpTar = join(work, 'image.tar');
    // Packed exactly as the Nix builder packs it (docs/image-layout.md, "The tarball").
    await exec('tar', [
      '--format=ustar',
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@1',
      '-cf',
      tmpTar,
      '-C',
      work,
      'emergency-image',
    ]);
    // The sidecar for --image URL (docs/image-layout.md), made by the same script as the Nix builder's.
    await exec('sh', [join(REPO, 'scripts/image-sidecar.sh'), tmpTar, `${tmpTar}.meta`]);
    await rename(`${tmpTar}.meta`, `${tarPath}.meta`);
    await rename(tmpTar, tarPath);
    await writeFile(keyPath, `${key}\n`);
    const tarBytes = (await stat(tarPath)).size;
    log(
      `kernel ${version} (${kernelKind}, ${(await stat(join(image, 'kernel'))).size} bytes); initrd ${(await stat(join(image, 'initrd'))).size} bytes zstd, ${initrd.cpioBytes} bytes cpio, ` +
        `rescue_unpacked_bytes=${initrd.unpacked}; tar ${tarBytes} bytes`,
    );
    return tarPath;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  buildTestImage((line) => console.log(line), archFromArgv(process.argv.slice(2))).then(
    (path) => {
      console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      console.log(path);
    },
    (e: Error) => {
      console.error(`test image build failed: ${e.message}`);
      process.exitCode = 1;
    },
  );
}
