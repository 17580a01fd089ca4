/**
 * `--image URL`: the image source as the command line gives it (an http(s) or file URL needs a pinned sha256),
 * the sidecar read and checked against that pin (docs/image-layout.md, "The sidecar"), and the tarball
 * downloaded by this machine when the host cannot fetch it itself. The parsers and checks are pure; the two
 * fetch functions do the I/O.
 */
import { MANIFEST_FILE, parseManifest } from './drivers/manifest.js';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { StageError, UsageError } from './errors.js';
import { checkImageInfo, IMAGE_DIR, imageBasics, parseKeyValues, REQUIRED, type Image } from './image.js';
import { tarFiles } from './tar.js';

/** Where the image comes from: a file on this machine (optionally pinned) or an http(s) URL (always pinned). */
export type ImageSource = { kind: 'path'; path: string; sha256?: string } | { kind: 'url'; url: string; sha256: string };

const SHA256 = /^[0-9a-f]{64}$/;
/** How to get the hash, for every error that asks for one. */
export const HASH_FIX =
  'Pin the image: pass --image-sha256 HEX or append #sha256=HEX to the URL, with the sha256 published next to the image ' +
  '(its release notes or SHA256SUMS) or computed where you built it: sha256sum emergency-image-x86_64.tar. ' +
  'A downloaded image is never used unpinned.';

/** Parses --image (and --image-sha256) into a source; refuses an unpinned URL. Pure. */
export function parseImageSource(image: string, sha256Option?: string): ImageSource {
  const optionHash = sha256Option === undefined ? undefined : normaliseHash(sha256Option, '--image-sha256');
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(image)?.[1]?.toLowerCase();
  if (!scheme || !/^[a-z][a-z0-9+.-]*:\/\//i.test(image)) return { kind: 'path', path: image, sha256: optionHash };
  if (!['http', 'https', 'file'].includes(scheme)) {
    throw new UsageError(`--image ${image}: ${scheme}:// is not supported`, 'Use an http://, https:// or file:// URL, or a path to the image tarball.');
  }
  let parsed: URL;
  try {
    parsed = new URL(image);
  } catch {
    throw new UsageError(`--image ${image} is not a valid URL`, 'Check the URL (quote it in the shell if it holds & or #).');
  }
  let fragmentHash: string | undefined;
  if (parsed.hash) {
    const m = /^#sha256=(.*)$/i.exec(parsed.hash);
    if (!m) throw new UsageError(`--image ${image}: the URL's fragment ${parsed.hash} is not #sha256=HEX`, HASH_FIX);
    fragmentHash = normaliseHash(m[1], "the URL's #sha256=");
    parsed.hash = '';
  }
  if (fragmentHash && optionHash && fragmentHash !== optionHash) {
    throw new UsageError(`--image-sha256 ${optionHash} and the URL's #sha256=${fragmentHash} disagree`, 'Give the hash once, or twice the same.');
  }
  const sha256 = fragmentHash ?? optionHash;
  if (!sha256) throw new UsageError(`--image ${parsed.href} has no pinned sha256, so it cannot be trusted`, HASH_FIX);
  if (scheme === 'file') return { kind: 'path', path: fileURLToPath(parsed), sha256 };
  return { kind: 'url', url: parsed.href, sha256 };
}

function normaliseHash(hash: string, where: string): string {
  const h = hash.trim().toLowerCase();
  if (!SHA256.test(h)) throw new UsageError(`${where} ${hash} is not a sha256 (64 hex digits)`, HASH_FIX);
  return h;
}

/** The sidecar's URL: the tarball's path plus `.meta`. */
export function sidecarUrl(url: string): string {
  const u = new URL(url);
  u.pathname += '.meta';
  return u.href;
}

/**
 * The Image an image's sidecar describes, checked against the pinned hash: the sidecar must name the pinned
 * tarball, every copied file must match SHA256SUMS and its listed size, and the layout's files must be there.
 * What it cannot prove (the sizes), the host's checks bound (docs/image-layout.md). Pure.
 */
export function imageFromSidecar(sidecar: Buffer, source: { url: string; sha256: string }): Image {
  const label = source.url;
  const bad = (what: string) =>
    new UsageError(
      `the sidecar of ${label} (${sidecarUrl(source.url)}) ${what}`,
      'Publish the .tar.meta that the image builder wrote next to this tarball (docs/image-layout.md).',
    );
  let files: Map<string, Buffer>;
  try {
    files = tarFiles(sidecar);
  } catch (e) {
    throw bad(`is not a valid sidecar: ${(e as Error).message}`);
  }
  const text = (name: string) => files.get(name)?.toString('utf8');
  const meta = parseKeyValues(text('meta.info') ?? '');
  if (meta.format !== '1') throw bad(`has sidecar format ${meta.format ?? '(none)'}, this emergency reads format 1`);
  if (meta.tar_sha256 !== source.sha256) {
    throw new UsageError(
      `the sidecar of ${label} describes a tarball with sha256 ${meta.tar_sha256 ?? '(none)'}, not the pinned ${source.sha256}`,
      'Either the pinned hash or the URL is wrong (or the sidecar was replaced): check both against where the image is published. Nothing was done on the host.',
    );
  }
  const tarBytes = Number(meta.tar_bytes);
  if (!Number.isSafeInteger(tarBytes) || tarBytes <= 0) throw bad('gives no tar_bytes');

  const members = new Map<string, { offset: number; size: number }>();
  for (const line of (text('members') ?? '').split('\n').filter(Boolean)) {
    const m = /^(\d+) (\d+) (\S+)$/.exec(line);
    if (!m) throw bad(`has a malformed members line: ${line}`);
    const [offset, size] = [Number(m[1]), Number(m[2])];
    if (offset % 512 !== 0 || offset + size > tarBytes) throw bad(`places ${m[3]} outside the tarball`);
    members.set(m[3], { offset, size });
  }
  const missing = REQUIRED.filter((f) => !members.has(f));
  if (missing.length) throw bad(`lists no ${missing.join(', ')}`);

  const sumsText = text(`${IMAGE_DIR}/SHA256SUMS`);
  if (sumsText === undefined) throw bad('holds no copy of SHA256SUMS');
  const sums = new Map<string, string>();
  for (const line of sumsText.split('\n').filter(Boolean)) {
    const m = /^([0-9a-f]{64})\s+\*?(.+)$/.exec(line);
    if (m) sums.set(m[2], m[1]);
  }
  const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  for (const [path, data] of files) {
    if (!path.startsWith(`${IMAGE_DIR}/`)) continue;
    const rel = path.slice(IMAGE_DIR.length + 1);
    if (members.get(rel)?.size !== data.length) throw bad(`copies ${rel} with ${data.length} bytes, but lists it with ${members.get(rel)?.size ?? 'no'} size`);
    if (rel !== 'SHA256SUMS' && sums.get(rel) !== sha256(data)) throw bad(`copies ${rel}, which does not match its SHA256SUMS line`);
  }
  const busyboxSha256 = sums.get('bin/busybox');
  if (!busyboxSha256) throw bad('has a SHA256SUMS without bin/busybox');
  const copy = (name: string) => {
    const t = text(`${IMAGE_DIR}/${name}`);
    if (t === undefined) throw bad(`holds no copy of ${name}`);
    return t;
  };
  const { info, cmdline } = checkImageInfo(label, copy('image.info'), copy('cmdline'));
  const member = (name: string) => {
    const m = members.get(name);
    if (!m) throw bad(`lists no ${name}`);
    return m;
  };
  const busybox = member('bin/busybox');
  const sumsMember = member('SHA256SUMS');
  return {
    path: '',
    ...imageBasics(tarBytes, new Map([...members].map(([name, m]) => [name, m.size])), info, cmdline),
    busybox: { offset: busybox.offset, size: busybox.size, sha256: busyboxSha256 },
    tarSha256: source.sha256,
    sumsSha256: sha256(files.get(`${IMAGE_DIR}/SHA256SUMS`) ?? Buffer.alloc(0)),
    url: { url: source.url, sha256: source.sha256, busyboxOffset: busybox.offset, sumsOffset: sumsMember.offset, sumsBytes: sumsMember.size },
    // Checked against SHA256SUMS above like every copied file. The kernel is not in the sidecar, so its signers are
    // unknown: the lockdown check treats the kernel as unsigned (it refuses under lockdown, never passes wrongly).
    drivers: files.has(`${IMAGE_DIR}/${MANIFEST_FILE}`) ? parseManifest(copy(MANIFEST_FILE)) : undefined,
  };
}

/** What the server sees fetching the sidecar or the tarball from this machine. */
const USER_AGENT = 'emergency (image fetch)';

/** The largest sidecar read: it holds small files only. */
const SIDECAR_LIMIT = 4 << 20;

/** Fetches the sidecar of an image URL and checks it (imageFromSidecar). */
export async function loadImageUrl(source: { url: string; sha256: string }): Promise<Image> {
  const where = sidecarUrl(source.url);
  let data: Buffer;
  try {
    const response = await fetch(where, { signal: AbortSignal.timeout(30_000), headers: { 'user-agent': USER_AGENT } });
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    if (Number(response.headers.get('content-length') ?? 0) > SIDECAR_LIMIT) throw new Error('larger than a sidecar can be');
    data = Buffer.from(await response.arrayBuffer());
    if (data.length > SIDECAR_LIMIT) throw new Error('larger than a sidecar can be');
  } catch (e) {
    throw new UsageError(
      `cannot read the image's sidecar ${where}: ${(e as Error).message}`,
      'Publish the .tar.meta file the image builder writes next to the tarball (nix build .#image or npm run test-image make it), or download the tarball and pass its path.',
    );
  }
  return imageFromSidecar(data, source);
}

/** A tarball this machine downloaded and verified, in a temporary directory; remove() deletes it. */
export interface DownloadedImage {
  path: string;
  bytes: number;
  ms: number;
  remove(): Promise<void>;
}

/**
 * The temporary file of a download from its first byte on, so that whoever ends the run (an error, a hash
 * mismatch, Ctrl-C, SIGTERM) can remove it. remove() stops the transfer first, so nothing is written after it.
 */
export interface DownloadInProgress {
  url: string;
  path: string;
  /** Bytes received so far, of `total`. */
  received(): number;
  total: number;
  /** Whether all of it arrived and matched the pin (only then is it ever used). */
  verified(): boolean;
  remove(): Promise<void>;
}

/**
 * Downloads the tarball to a temporary file, hashing as it streams; refuses it unless it is exactly
 * `tarBytes` long and matches the pinned hash. Reports bytes received to `onBytes`, and the temporary file to
 * `onStart` before the first byte is written (the SIGINT handler removes it from there).
 */
export async function downloadImage(
  url: { url: string; sha256: string },
  tarBytes: number,
  onBytes: (n: number) => void,
  onStart: (download: DownloadInProgress) => void = () => {},
): Promise<DownloadedImage> {
  // Synchronous: no moment in which the directory exists and nobody knows it.
  const dir = mkdtempSync(join(tmpdir(), 'emergency-image-'));
  const path = join(dir, 'emergency-image.tar');
  const abort = new AbortController();
  let transfer: Promise<unknown> = Promise.resolve();
  let removing: Promise<void> | undefined;
  let verified = false;
  const remove = () => {
    removing ??= (async () => {
      verified = false;
      abort.abort();
      await transfer.catch(() => {});
      await rm(dir, { recursive: true, force: true });
    })();
    return removing;
  };
  const started = Date.now();
  const hash = createHash('sha256');
  let received = 0;
  onStart({ url: url.url, path, received: () => received, total: tarBytes, verified: () => verified, remove });
  try {
    const response = await fetch(url.url, { headers: { 'user-agent': USER_AGENT }, signal: abort.signal });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        if (received > tarBytes) return done(new Error(`the server sent more than the image's ${tarBytes} bytes`));
        hash.update(chunk);
        onBytes(received);
        done(null, chunk);
      },
    });
    transfer = pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), count, createWriteStream(path), { signal: abort.signal });
    await transfer;
  } catch (e) {
    await remove();
    throw new StageError(
      `this machine could not download ${url.url}: ${(e as Error).message} (after ${received} of ${tarBytes} bytes); the partial download was removed`,
      'Check the URL and your connection, or download the image yourself and pass its path. Nothing was done on the host.',
    );
  }
  if (received < tarBytes) {
    await remove();
    throw new StageError(
      `the download of ${url.url} ended after ${received} of ${tarBytes} bytes; refused and removed, nothing of it was used`,
      'The server closed the connection early: try again, or download the image yourself and pass its path. Nothing was done on the host.',
    );
  }
  const got = hash.digest('hex');
  if (got !== url.sha256) {
    await remove();
    throw new StageError(
      `image hash mismatch: the download of ${url.url} (${received} bytes) has sha256 ${got}, not the pinned ${url.sha256}; refused and removed, nothing of it was used`,
      'The published file differs from the one you pinned: check the hash against where the image is published. Nothing was done on the host.',
    );
  }
  verified = true;
  return { path, bytes: received, ms: Date.now() - started, remove };
}
