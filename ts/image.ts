/**
 * The local side of the image contract (docs/image-layout.md): find, validate and size an image tarball
 * without unpacking it, and build one with Nix when none is given.
 */
import { createHash } from 'node:crypto';
import { accessSync, constants, statSync } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';
import { kernelSignature, type KernelSignature } from './drivers/kernel-signature.js';
import { MANIFEST_FILE, parseManifest, type DriverManifest } from './drivers/manifest.js';
import { UsageError } from './errors.js';
import { hashImageTar, sumsMismatches } from './image-verify.js';
import { listTar, readTarMember, type TarMember } from './tar.js';

export const IMAGE_DIR = 'emergency-image';
export const IMAGE_FORMAT = '1';
/** Files every image has (docs/image-layout.md), relative to emergency-image/. */
export const REQUIRED = [
  'kernel',
  'initrd',
  'cmdline',
  'kexec-run.sh',
  'kexec-trigger.sh',
  'run-tool.sh',
  'bin/busybox',
  'bin/kexec',
  'bin/ip',
  'image.info',
  'SHA256SUMS',
];

/** What the orchestrator knows about a local image before sending it. */
export interface Image {
  path: string;
  tarBytes: number;
  arch: string;
  name: string;
  cmdline: string;
  /** Sum of the sizes of every file in the image: what the staging tmpfs must hold. */
  unpackedBytes: number;
  kernelBytes: number;
  initrdBytes: number;
  rescueUnpackedBytes: number;
  /** bin/busybox, sent ahead of the tar so the host needs no tar of its own. */
  busybox: { offset: number; size: number; sha256: string };
  /**
   * sha256 of the whole tarball: what stage.sh checks the upload against as it arrives (or, for --image URL, the
   * pinned hash the host checks its download against) before anything from it runs.
   */
  tarSha256: string;
  /** sha256 of SHA256SUMS: ties a URL image's sidecar to the tarball the host fetched (docs/image-layout.md). */
  sumsSha256: string;
  /** Whether bin/ tools need lib/ld.so (Debian builder) or are static (Nix builder). */
  dynamicTools: boolean;
  /** drivers.manifest: what the rescue kernel can drive; absent in images from older builders. */
  drivers?: DriverManifest;
  /** Who signed the rescue kernel (matters only on a locked-down host). */
  kernelSignature?: KernelSignature;
  /** Set for --image URL: where the tarball is and what its sidecar said (ts/image-url.ts); `path` is empty then. */
  url?: ImageUrl;
}

/** An image known from its sidecar: the tarball is fetched later, by the host or by this machine. */
export interface ImageUrl {
  url: string;
  /** The pinned sha256 of the tarball, from the command line (never from the sidecar). */
  sha256: string;
  /** Where bin/busybox and SHA256SUMS sit in the tarball, for the host to copy them out after verifying it. */
  busyboxOffset: number;
  sumsOffset: number;
  sumsBytes: number;
}

/** Parses `key=value` lines. */
export function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

/** Reads and checks an image tarball against the layout contract. */
export async function loadImage(path: string): Promise<Image> {
  let tarBytes: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) return loadImage(await findTarIn(path));
    // stat needs no read permission: ask for it now, so an unreadable file is not called a broken tarball.
    await access(path, constants.R_OK);
    tarBytes = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : ((e as Error).message ?? String(e));
    throw new UsageError(
      `image ${path} cannot be read: ${why}`,
      'Pass the image tarball built by `nix build .#image` or `npm run test-image` with --image PATH.',
    );
  }
  let members: TarMember[];
  try {
    members = await listTar(path);
  } catch (e) {
    throw new UsageError(`image ${path} is not a valid tarball: ${(e as Error).message}`, 'Rebuild the image; a truncated download or copy cannot be used.');
  }
  const byName = new Map(members.filter((m) => m.type === 'file').map((m) => [m.path.replace(new RegExp(`^${IMAGE_DIR}/`), ''), m]));
  const missing = REQUIRED.filter((f) => !byName.has(f));
  if (missing.length || !members.some((m) => m.path.startsWith(`${IMAGE_DIR}/`))) {
    throw new UsageError(
      `image ${path} does not follow the image layout: missing ${missing.map((m) => `${IMAGE_DIR}/${m}`).join(', ')}`,
      'Use an image built by this version of emergency (docs/image-layout.md).',
    );
  }
  const text = async (name: string) => (await readTarMember(path, byName.get(name)!)).toString('utf8');
  const { info, cmdline } = checkImageInfo(path, await text('image.info'), await text('cmdline'));
  let drivers: DriverManifest | undefined;
  if (byName.has(MANIFEST_FILE)) {
    try {
      drivers = parseManifest(await text(MANIFEST_FILE));
    } catch (e) {
      throw new UsageError(`image ${path}: ${(e as Error).message}`, 'Rebuild the image with this version of emergency.');
    }
  }
  // One read of the whole file: every member against SHA256SUMS here, and the tarball's hash for the host.
  const hashes = await hashImageTar(path, members);
  const corrupt = sumsMismatches(await text('SHA256SUMS'), hashes.files, IMAGE_DIR);
  if (corrupt.length) {
    throw new UsageError(
      `image ${path} is corrupt: ${corrupt.join(', ')} ${corrupt.length === 1 ? 'does' : 'do'} not match its SHA256SUMS`,
      'Rebuild the image or copy it again (a truncated or damaged copy cannot be used); nothing was sent to the host.',
    );
  }
  const member = (name: string) => {
    const m = byName.get(name);
    if (!m) throw new Error(`image ${path} has no ${name} after the layout check`);
    return m;
  };
  const busybox = member('bin/busybox');
  const busyboxData = await readTarMember(path, busybox);
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  return {
    path,
    ...imageBasics(tarBytes, new Map([...byName].map(([name, m]) => [name, m.size])), info, cmdline),
    busybox: { offset: busybox.dataOffset, size: busybox.size, sha256: sha256(busyboxData) },
    tarSha256: hashes.tarSha256,
    sumsSha256: sha256(await readTarMember(path, member('SHA256SUMS'))),
    drivers,
    kernelSignature: kernelSignature(await readTarMember(path, member('kernel'))),
  };
}

/**
 * What every Image knows from its members' sizes (by path inside emergency-image/) and image.info, whether it was
 * read from the tarball (loadImage) or from a URL image's sidecar (imageFromSidecar). The REQUIRED files are there:
 * both callers checked the layout first.
 */
export function imageBasics(tarBytes: number, sizes: ReadonlyMap<string, number>, info: Record<string, string>, cmdline: string) {
  const size = (name: string) => sizes.get(name) ?? 0;
  return {
    tarBytes,
    arch: info.arch,
    name: info.name,
    cmdline,
    unpackedBytes: [...sizes.values()].reduce((sum, s) => sum + s, 0),
    kernelBytes: size('kernel'),
    initrdBytes: size('initrd'),
    rescueUnpackedBytes: Number(info.rescue_unpacked_bytes),
    dynamicTools: sizes.has('lib/ld.so'),
  };
}

/** Checks image.info and cmdline against the layout contract; `label` names the image in errors. */
export function checkImageInfo(label: string, infoText: string, cmdlineText: string): { info: Record<string, string>; cmdline: string } {
  const info = parseKeyValues(infoText);
  for (const key of ['format', 'arch', 'name', 'rescue_unpacked_bytes']) {
    if (!info[key]) throw new UsageError(`image ${label}: image.info lacks ${key}`, 'Rebuild the image with this version of emergency.');
  }
  if (info.format !== IMAGE_FORMAT) {
    throw new UsageError(
      `image ${label} has layout format ${info.format}, this emergency reads format ${IMAGE_FORMAT}`,
      'Rebuild the image with this version of emergency.',
    );
  }
  const cmdline = cmdlineText.trim();
  if (!cmdline.split(/\s+/).includes('emergency.rescue=1')) {
    throw new UsageError(
      `image ${label}: its cmdline lacks emergency.rescue=1`,
      'Rebuild the image; without the marker the rescue system cannot be recognised after kexec.',
    );
  }
  return { info, cmdline };
}

async function findTarIn(dir: string): Promise<string> {
  const tars = (await readdir(dir)).filter((f) => f.endsWith('.tar'));
  if (tars.length !== 1) {
    throw new UsageError(`${dir} holds ${tars.length} .tar files, expected exactly one image`, 'Pass the image tarball itself with --image.');
  }
  return join(dir, tars[0]);
}

/** Maps `uname -m` to the Nix system that builds an image for it. */
export function nixSystemFor(arch: string): string | undefined {
  return { x86_64: 'x86_64-linux', aarch64: 'aarch64-linux' }[arch];
}

/**
 * The `nix build` command line for `attr`, in a form every Nix with flakes understands: `--json --no-link` (Nix 2.4+)
 * rather than `--print-out-paths` (2.14+; Debian 12's nix-bin is 2.8), and flakes switched on for this call, since a
 * stock install has them off (the flag is harmless where they are on).
 */
export function nixBuildArgs(attr: string): string[] {
  return ['--extra-experimental-features', 'nix-command flakes', 'build', '--json', '--no-link', attr];
}

/** The store path of `nix build --json`'s first result (`[{"drvPath": …, "outputs": {"out": PATH}}]`). */
export function parseNixBuildJson(stdout: string): string | undefined {
  try {
    const results = JSON.parse(stdout) as { outputs?: Record<string, string> }[];
    const outputs = Array.isArray(results) ? results[0]?.outputs : undefined;
    const path = outputs?.out ?? Object.values(outputs ?? {})[0];
    return typeof path === 'string' && path.startsWith('/') ? path : undefined;
  } catch {
    return undefined;
  }
}

/** Whether an executable `nix` is on `path` (a PATH value). */
export function nixOnPath(path: string | undefined, isExecutable: (file: string) => boolean = executable): boolean {
  return (path ?? '').split(':').some((dir) => dir !== '' && isExecutable(join(dir, 'nix')));
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The error for a missing Nix, before anything connects: the two ways out. */
export function noNixError(): UsageError {
  return new UsageError(
    'no --image was given, and `nix` (which builds the image for the host) is not installed here',
    'Either install Nix (https://nixos.org/download, or `apt install nix-bin` on Debian/Ubuntu) and run again, or pass an image built elsewhere: ' +
      '`--image PATH` with the tarball of `nix build .#image` (or `npm run test-image`).',
  );
}

/** Builds the image for `arch` with Nix (`nix build FLAKE#packages.SYSTEM.image`) and returns its path. */
export async function buildImageWithNix(arch: string, flake: string, nix = 'nix'): Promise<string> {
  const system = nixSystemFor(arch);
  if (!system) throw new UsageError(`no image can be built for architecture ${arch}`, 'emergency supports x86_64 and aarch64 hosts.');
  const attr = `${flake}#packages.${system}.image`;
  const built = await $({ nothrow: true, quiet: true, stdio: ['ignore', 'pipe', 'pipe'] })`${nix} ${nixBuildArgs(attr)}`;
  if (built.exitCode !== 0) {
    // Nix's own last lines say why (missing attribute, build failure, flakes unknown to a Nix older than 2.4).
    const said = built.stderr
      .trim()
      .split('\n')
      .filter((l) => !/^warning:/.test(l))
      .slice(-5)
      .join('\n');
    throw new UsageError(
      `nix build ${attr} failed (exit ${built.exitCode}): the flake ${flake} did not build an image for ${system}${said ? `\n  nix said: ${said.replace(/\n/g, '\n    ')}` : ''}`,
      `Fix the build error (--flake or EMERGENCY_FLAKE names the flake; it must provide packages.${system}.image), or build the image elsewhere and pass it with --image PATH. ` +
        `Building for ${system} on another architecture needs a remote builder or binfmt emulation.`,
    );
  }
  const path = parseNixBuildJson(built.stdout);
  if (!path) {
    throw new UsageError(
      `nix build ${attr} printed no store path (${built.stdout.trim().slice(0, 200) || 'nothing'})`,
      'Build the image with `nix build` yourself and pass it with --image PATH.',
    );
  }
  return path;
}
