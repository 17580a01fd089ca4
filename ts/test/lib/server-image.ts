/**
 * The QEMU test server's base initramfs, built (and cached) from Debian packages like the test image:
 * the Debian cloud kernel (virtio, bonding, 8021q and bridge modules; macvlan and vmxnet3, which the image lacks), OpenSSH sshd, sudo with pam_unix, iproute2, dash
 * as /bin/sh and busybox for the rest.
 * Everything scenario-specific (users, keys, network) comes in a second cpio (server.ts).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { entriesFromDir, writeCpio, type CpioEntry } from '../../test-image/cpio.js';
import { ARCHES, type Arch } from '../../test-image/arch.js';
import {
  CACHE_DIR,
  REPO,
  GENERIC_KERNEL_META,
  buildMachineBusybox,
  installKernel,
  preparePackages,
  resolvePackages,
  zstd,
  NIC_MODULES,
} from '../../test-image/build.js';
import { kernelVersion } from '../../test-image/kmod.js';
import { installBusybox, installModules, installPrograms, makeRootDirs, writeIn } from '../../test-image/stage.js';

/** Packages the server has beyond the test image's. */
export const SERVER_PACKAGES = ['sudo', 'libpam-modules'];
/**
 * Modules the server has and the test image does not: macvlan, an interface kind the planner cannot re-create,
 * vmxnet3, a NIC driver the rescue kernel lacks (server-init.sh loads it), and virtio_blk, for a scenario's disk.
 */
export const SERVER_ONLY_MODULES = ['macvlan', 'vmxnet3', 'virtio_blk'];
/**
 * Which kernel the server boots: the architecture's cloud kernel, or (x86_64) Debian's generic kernel, which has the
 * i6300esb watchdog driver the cloud kernel lacks (the watchdog server, docs/watchdog.md).
 */
export type ServerKernel = 'cloud' | 'generic';
/** Modules only the generic server has. */
const GENERIC_ONLY_MODULES = ['i6300esb'];
const SERVER_INIT = join(REPO, 'ts/test/lib/server-init.sh');
const CACHE = join(CACHE_DIR, 'test-server');

/** A built base: boot it with `kernel` and `initrd` (+ a scenario cpio appended). */
export interface ServerBase {
  kernel: string;
  initrd: string;
  /** Static busybox for the build machine's own use (mkpasswd for password hashes), of the build machine's architecture. */
  busybox: string;
  kernelVersion: string;
  arch: Arch;
}

const PAM_SUDO = `# sudo on the test server: passwords from /etc/shadow, nothing else.
auth required pam_unix.so
account required pam_unix.so
session required pam_unix.so
`;

const INITTAB = `::respawn:/usr/sbin/sshd -D -e
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

async function key(debFiles: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const f of [...debFiles].sort()) hash.update(`deb ${f}\n`);
  const libDir = dirname(fileURLToPath(import.meta.url));
  const imageDir = join(libDir, '../../test-image');
  const files = [SERVER_INIT, join(libDir, 'server-image.js'), ...(await readdir(imageDir)).filter((f) => f.endsWith('.js')).map((f) => join(imageDir, f))];
  for (const f of files.sort()) hash.update(`file ${f}\n`).update(await readFile(f));
  return hash.digest('hex').slice(0, 16);
}

/** Builds the server base for `arch` once per set of inputs; later calls return the cached files. */
export async function buildServerBase(log: (line: string) => void = () => {}, arch: Arch = 'x86_64', kernel: ServerKernel = 'cloud'): Promise<ServerBase> {
  if (kernel === 'generic' && arch !== 'x86_64') throw new Error(`the generic server kernel is x86_64 only, not ${arch}`);
  const kernelMeta = kernel === 'generic' ? GENERIC_KERNEL_META : ARCHES[arch].kernelMeta;
  const extraModules = kernel === 'generic' ? GENERIC_ONLY_MODULES : [];
  const debs = await resolvePackages(SERVER_PACKAGES, arch, kernelMeta);
  // The .deb file names carry the architecture, so each architecture has its own key.
  const dir = join(CACHE, await key(debs.map((d) => d.file)));
  const base: ServerBase = { kernel: join(dir, 'kernel'), initrd: join(dir, 'initrd'), busybox: join(dir, 'busybox'), kernelVersion: '', arch };
  if (existsSync(join(dir, 'version'))) return { ...base, kernelVersion: (await readFile(join(dir, 'version'), 'utf8')).trim() };

  await mkdir(CACHE, { recursive: true });
  const work = await mkdtemp(join(CACHE, '.build-'));
  try {
    log(`building the ${arch} test server (${kernel} kernel) from Debian packages`);
    const { root } = await preparePackages(SERVER_PACKAGES, work, arch, kernelMeta);
    const { triplet } = ARCHES[arch];
    const version = await kernelVersion(root);
    const stage = join(work, 'stage');
    await installPrograms(
      root,
      stage,
      {
        '/bin/dash': '/bin/dash',
        '/usr/sbin/sshd': '/usr/sbin/sshd',
        '/bin/ip': '/bin/ip',
        '/usr/bin/sudo': '/usr/bin/sudo',
        '/usr/libexec/sudo/sudoers.so': '/usr/libexec/sudo/sudoers.so',
        [`/lib/${triplet}/security/pam_unix.so`]: `/lib/${triplet}/security/pam_unix.so`,
      },
      ['/usr/libexec/sudo'],
      triplet,
    );
    await chmod(join(stage, 'usr/bin/sudo'), 0o4755);
    await symlink('dash', join(stage, 'bin/sh'));
    // Where Debian's iproute2 puts it: /bin/ip (on every user's PATH) and /sbin/ip.
    await mkdir(join(stage, 'sbin'), { recursive: true });
    await symlink('/bin/ip', join(stage, 'sbin/ip'));
    const hostBusybox = await buildMachineBusybox(arch, root);
    await installBusybox(stage, join(root, 'bin/busybox'), [], hostBusybox);
    // The rescue image's set: virtio, plus what a scenario's bonds, VLANs and bridges need (loaded by its setup);
    // and SERVER_ONLY_MODULES.
    await installModules(root, stage, version, [...NIC_MODULES, ...SERVER_ONLY_MODULES, ...extraModules], hostBusybox);
    await writeIn(stage, 'init', await readFile(SERVER_INIT), 0o755);
    await writeIn(stage, 'etc/inittab', INITTAB);
    await writeIn(stage, 'etc/pam.d/sudo', PAM_SUDO);
    await writeIn(stage, 'etc/nsswitch.conf', 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n');
    await makeRootDirs(stage, ['home', 'etc/sudoers.d']);
    await symlink('/run', join(stage, 'var/run'));
    const entries: CpioEntry[] = [...(await entriesFromDir(stage)), { path: 'dev/console', type: 'char', major: 5, minor: 1, mode: 0o600 }];
    await writeFile(join(work, 'initrd.cpio'), writeCpio(entries));
    const out = join(work, 'out');
    await mkdir(out);
    await zstd(join(work, 'initrd.cpio'), join(out, 'initrd'));
    await installKernel(root, version, join(out, 'kernel'));
    await copyFile(hostBusybox, join(out, 'busybox'));
    await writeFile(join(out, 'version'), `${version}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(out, dir);
    return { ...base, kernelVersion: version };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
