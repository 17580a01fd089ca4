/**
 * Debian packages as build inputs: `apt-get download` into a cache keyed by the file name apt chooses
 * (`name_version_arch.deb`), so a rerun with the same candidate versions downloads nothing, then `dpkg -x`.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** A package as apt will download it. */
export interface Deb {
  name: string;
  /** The `.deb` file name, e.g. `busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb`: name, version and arch. */
  file: string;
  sha256: string;
}

/** Parses `apt-get download --print-uris` lines: `'URI' FILE SIZE SHA256:HEX`. */
export function parsePrintUris(text: string): { file: string; sha256: string }[] {
  const out: { file: string; sha256: string }[] = [];
  for (const line of text.split('\n')) {
    const m = /^'[^']*'\s+(\S+\.deb)\s+\d+\s+(?:SHA256:)?([0-9a-f]{64})/.exec(line.trim());
    if (m) out.push({ file: m[1], sha256: m[2] });
  }
  return out;
}

/**
 * The name apt is asked for: `pkg:DEBARCH` for a foreign architecture (after `dpkg --add-architecture`),
 * the plain name for the build machine's own, so its cache entries stay what they were.
 */
export function aptName(name: string, debArch?: string): string {
  const plain = name.replace(/:[a-z0-9]+$/, '');
  return debArch && debArch !== nativeDebArch() ? `${plain}:${debArch}` : plain;
}

/** dpkg's architecture of the build machine. */
export function nativeDebArch(): string {
  return process.arch === 'arm64' ? 'arm64' : 'amd64';
}

/** Asks apt which files the candidate versions are (for `debArch`, default the build machine's), without downloading. */
export async function resolveDebs(packages: string[], debArch?: string): Promise<Deb[]> {
  const names = packages.map((n) => n.replace(/:[a-z0-9]+$/, ''));
  let stdout: string;
  try {
    ({ stdout } = await exec('apt-get', ['download', '--print-uris', ...names.map((n) => aptName(n, debArch))], { maxBuffer: 16 << 20 }));
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const foreign = debArch && debArch !== nativeDebArch() ? ` and \`dpkg --add-architecture ${debArch}\`` : '';
    throw new Error(`apt-get cannot resolve the test image's packages (run${foreign} \`apt-get update\` first?): ${err.stderr || err.message}`);
  }
  const files = parsePrintUris(stdout);
  return names.map((name) => {
    const hit = files.find((f) => f.file.startsWith(`${name}_`) && (!debArch || f.file.endsWith(`_${debArch}.deb`) || f.file.endsWith('_all.deb')));
    if (!hit) throw new Error(`apt-get --print-uris listed no file for package ${name}`);
    return { name, ...hit };
  });
}

/** Makes every package present in `cacheDir`, downloading only the missing files; returns their paths. */
export async function fetchDebs(debs: Deb[], cacheDir: string, debArch?: string): Promise<Map<string, string>> {
  await mkdir(cacheDir, { recursive: true });
  const missing = debs.filter((d) => !existsSync(join(cacheDir, d.file)));
  if (missing.length) {
    // Download into a private directory and rename: other builds may share this cache at the same time.
    const tmp = await mkdtemp(join(cacheDir, '.download-'));
    try {
      await exec('apt-get', ['download', ...missing.map((d) => aptName(d.name, debArch))], { cwd: tmp, maxBuffer: 16 << 20 });
      for (const file of await readdir(tmp)) await rename(join(tmp, file), join(cacheDir, file));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  const out = new Map<string, string>();
  for (const d of debs) {
    const path = join(cacheDir, d.file);
    if (!existsSync(path)) throw new Error(`apt-get download did not produce ${d.file}`);
    out.set(d.name, path);
  }
  return out;
}

/** `dpkg -x` every package into one directory (a merged view of their files). */
export async function extractDebs(paths: Iterable<string>, into: string): Promise<void> {
  await mkdir(into, { recursive: true });
  for (const path of paths) await exec('dpkg', ['-x', path, into]);
}

/** The kernel package behind a meta package such as `linux-image-cloud-amd64` (without an `:arch` suffix). */
export async function kernelPackage(meta: string, debArch?: string): Promise<string> {
  let stdout: string;
  try {
    ({ stdout } = await exec('apt-cache', ['depends', aptName(meta, debArch)]));
  } catch {
    stdout = '';
  }
  const m = /Depends:\s+(linux-image-[^\s:]+)/.exec(stdout);
  if (!m) throw new Error(`apt-cache depends ${meta} names no linux-image package (run \`apt-get update\` first?)`);
  return m[1];
}
