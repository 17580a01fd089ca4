/**
 * Fills a staging directory that becomes an initramfs: programs with their libraries, busybox with its applet
 * links, kernel modules with a modules.dep. Shared by the rescue image (build.ts) and the QEMU test server
 * (ts/test/lib/server-image.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { libraryClosure, realPathIn, type ResolvedLibrary } from './closure.js';
import { moduleClosure } from './kmod.js';

const exec = promisify(execFile);

/** Directories on PATH in both initramfs trees, most specific first (full tools shadow busybox applets). */
export const PATH_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Copies a file from the extracted tree (following symlinks) to `to` in the stage, keeping its mode. */
export async function copyIn(extracted: string, from: string, stage: string, to = from): Promise<void> {
  const real = await realPathIn(extracted, from);
  if (!real) throw new Error(`${from} is not in the extracted packages`);
  await mkdir(dirname(join(stage, to)), { recursive: true });
  await copyFile(real, join(stage, to));
}

/** Writes a file into the stage, creating its directory. */
export async function writeIn(stage: string, to: string, content: string | Buffer, mode = 0o644): Promise<void> {
  await mkdir(dirname(join(stage, to)), { recursive: true });
  await writeFile(join(stage, to), content);
  await chmod(join(stage, to), mode);
}

/** The directories every root file system of ours has (the rescue's and the test server's), with their modes. */
const ROOT_DIRS = [
  ['root', 0o700],
  ['tmp', 0o1777],
  ['proc', 0o755],
  ['sys', 0o755],
  ['dev', 0o755],
  ['run', 0o755],
  ['var/log', 0o755],
  ['mnt', 0o755],
] as const;

/** Creates ROOT_DIRS and `extra` (all 0755) under `stage`, each with its mode whatever the umask. */
export async function makeRootDirs(stage: string, extra: readonly string[] = []): Promise<void> {
  for (const [dir, mode] of [...ROOT_DIRS, ...extra.map((d) => [d, 0o755] as const)]) {
    await mkdir(join(stage, dir), { recursive: true });
    await chmod(join(stage, dir), mode);
  }
}

/**
 * Installs programs (tree path → stage path) and every library they need, at the paths ld.so searches.
 * Returns the ELF interpreter first, then the libraries, e.g. for copying them to an image's flat lib/.
 */
export async function installPrograms(
  extracted: string,
  stage: string,
  programs: Record<string, string>,
  extraDirs: string[] = [],
  triplet?: string,
): Promise<ResolvedLibrary[]> {
  for (const [from, to] of Object.entries(programs)) await copyIn(extracted, from, stage, to);
  const { interpreter, libraries } = await libraryClosure(extracted, Object.keys(programs), extraDirs, triplet);
  if (!interpreter) throw new Error(`${Object.keys(programs).join(', ')}: no ELF interpreter, expected dynamic Debian programs`);
  const all = [interpreter, ...libraries];
  for (const lib of all) {
    if (existsSync(join(stage, lib.treePath))) continue;
    await mkdir(dirname(join(stage, lib.treePath)), { recursive: true });
    await copyFile(lib.realPath, join(stage, lib.treePath));
  }
  return all;
}

/** Lists busybox's applets with their install paths (`/bin/sh`, `/sbin/ip`, …), by running the static binary. */
export async function busyboxApplets(busybox: string): Promise<string[]> {
  const { stdout } = await exec(busybox, ['--list-full']);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((p) => `/${p}`);
}

/**
 * Installs busybox at /bin/busybox and links each applet unless a program of that name already exists in
 * any PATH directory (so `ip` stays iproute2's), or it is in `skip`. The applets are listed by `lister`, a
 * busybox the build machine can run: the same Debian version for the build machine's architecture when the
 * image is for another (the applet set is Debian's configuration, the same on every architecture).
 */
export async function installBusybox(stage: string, busybox: string, skip: string[] = [], lister = busybox): Promise<void> {
  await mkdir(join(stage, 'bin'), { recursive: true });
  await copyFile(busybox, join(stage, 'bin/busybox'));
  await chmod(join(stage, 'bin/busybox'), 0o755);
  for (const applet of await busyboxApplets(lister)) {
    const name = posix.basename(applet);
    if (name === 'busybox' || skip.includes(name)) continue;
    if (PATH_DIRS.some((dir) => existsSync(join(stage, dir, name)))) continue;
    await mkdir(join(stage, posix.dirname(applet)), { recursive: true });
    await symlink('/bin/busybox', join(stage, applet));
  }
}

/** Copies `wanted` modules and their dependencies, then makes modules.dep with busybox depmod (a build-machine busybox). */
export async function installModules(extracted: string, stage: string, version: string, wanted: string[], busybox: string): Promise<string[]> {
  const modules = await moduleClosure(extracted, version, wanted);
  const from = join(extracted, 'lib/modules', version);
  const to = join(stage, 'lib/modules', version);
  for (const rel of [...modules, 'modules.builtin', 'modules.order']) {
    await mkdir(dirname(join(to, rel)), { recursive: true });
    await copyFile(join(from, rel), join(to, rel));
  }
  await exec(busybox, ['depmod', '-b', stage, version]);
  const dep = await readFile(join(to, 'modules.dep'), 'utf8');
  if (!dep.includes('virtio_net')) throw new Error('busybox depmod wrote a modules.dep without virtio_net');
  return modules;
}
