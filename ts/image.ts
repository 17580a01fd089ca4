/**
 * The local side of the image contract (docs/image-layout.md): find, validate and size an image tarball
 * without unpacking it, and build one with Nix when none is given.
 */
import { createHash } from 'node:crypto';
import { stat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';
import { UsageError } from './errors.js';
import { listTar, readTarMember, type TarMember } from './tar.js';

export const IMAGE_DIR = 'emergency-image';
export const IMAGE_FORMAT = '1';
/** Files every image has (docs/image-layout.md), relative to emergency-image/. */
export const REQUIRED = ['kernel', 'initrd', 'cmdline', 'kexec-run.sh', 'kexec-trigger.sh', 'run-tool.sh', 'bin/busybox', 'bin/kexec', 'bin/ip', 'image.info', 'SHA256SUMS'];

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
  /** sha256 of SHA256SUMS: the host checks the manifest against it before trusting the manifest. */
  sumsSha256: string;
  /** Whether bin/ tools need lib/ld.so (Debian builder) or are static (Nix builder). */
  dynamicTools: boolean;
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
    tarBytes = st.size;
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`image ${path} cannot be read`, 'Pass the image tarball built by `nix build .#image` or `npm run test-image` with --image PATH.');
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
  const busybox = byName.get('bin/busybox')!;
  const busyboxData = await readTarMember(path, busybox);
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  return {
    path,
    tarBytes,
    arch: info.arch,
    name: info.name,
    cmdline,
    unpackedBytes: [...byName.values()].reduce((sum, m) => sum + m.size, 0),
    kernelBytes: byName.get('kernel')!.size,
    initrdBytes: byName.get('initrd')!.size,
    rescueUnpackedBytes: Number(info.rescue_unpacked_bytes),
    busybox: { offset: busybox.dataOffset, size: busybox.size, sha256: sha256(busyboxData) },
    sumsSha256: sha256(await readTarMember(path, byName.get('SHA256SUMS')!)),
    dynamicTools: byName.has('lib/ld.so'),
  };
}

/** Checks image.info and cmdline against the layout contract; `label` names the image in errors. */
export function checkImageInfo(label: string, infoText: string, cmdlineText: string): { info: Record<string, string>; cmdline: string } {
  const info = parseKeyValues(infoText);
  for (const key of ['format', 'arch', 'name', 'rescue_unpacked_bytes']) {
    if (!info[key]) throw new UsageError(`image ${label}: image.info lacks ${key}`, 'Rebuild the image with this version of emergency.');
  }
  if (info.format !== IMAGE_FORMAT) {
    throw new UsageError(`image ${label} has layout format ${info.format}, this emergency reads format ${IMAGE_FORMAT}`, 'Rebuild the image with this version of emergency.');
  }
  const cmdline = cmdlineText.trim();
  if (!cmdline.split(/\s+/).includes('emergency.rescue=1')) {
    throw new UsageError(`image ${label}: its cmdline lacks emergency.rescue=1`, 'Rebuild the image; without the marker the rescue system cannot be recognised after kexec.');
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

/** Builds the image for `arch` with Nix (`nix build FLAKE#packages.SYSTEM.image`) and returns its path. */
export async function buildImageWithNix(arch: string, flake: string): Promise<string> {
  const system = nixSystemFor(arch);
  if (!system) throw new UsageError(`no image can be built for architecture ${arch}`, 'emergency supports x86_64 and aarch64 hosts.');
  const attr = `${flake}#packages.${system}.image`;
  // A stock Nix install has flakes switched off; the flag is harmless where they are on.
  const built = await $({ nothrow: true, quiet: true, stdio: ['ignore', 'pipe', 'inherit'] })`nix --extra-experimental-features ${'nix-command flakes'} build ${attr} --no-link --print-out-paths`;
  if (built.exitCode !== 0) {
    throw new UsageError(
      `nix build ${attr} failed (exit ${built.exitCode})`,
      `Fix the build error above, or build the image elsewhere and pass it with --image PATH. Building for ${system} on another architecture needs a remote builder or binfmt emulation.`,
    );
  }
  return built.stdout.trim().split('\n').pop()!;
}
