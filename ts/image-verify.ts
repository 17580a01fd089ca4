/**
 * The local image checked where it is, before anything is sent: one sequential read of the tarball gives the
 * sha256 of the whole file (what the host checks the stream against as it arrives, scripts/stage.sh) and of every
 * member (checked here against the image's SHA256SUMS). A corrupt image is refused before connecting, and the host
 * reads nothing twice (docs/image-layout.md, "On the host").
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { TarMember } from './tar.js';

/** sha256 of the whole tarball and of each regular file in it, by member path. */
export async function hashImageTar(path: string, members: readonly TarMember[]): Promise<{ tarSha256: string; files: Map<string, string> }> {
  const whole = createHash('sha256');
  const files = members.filter((m) => m.type === 'file').sort((a, b) => a.dataOffset - b.dataOffset);
  const hashes = files.map(() => createHash('sha256'));
  let position = 0;
  // Members before `next` lie wholly before the current chunk; the rest are visited until one starts past it.
  let next = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    whole.update(chunk);
    const end = position + chunk.length;
    for (let i = next; i < files.length && files[i].dataOffset < end; i++) {
      const from = Math.max(files[i].dataOffset, position);
      const to = Math.min(files[i].dataOffset + files[i].size, end);
      if (to > from) hashes[i].update(chunk.subarray(from - position, to - position));
      if (i === next && files[i].dataOffset + files[i].size <= end) next++;
    }
    position = end;
  }
  return { tarSha256: whole.digest('hex'), files: new Map(files.map((f, i) => [f.path, hashes[i].digest('hex')])) };
}

/**
 * What is wrong between `sums` (SHA256SUMS text, paths relative to the image directory) and `actual` (sha256 by
 * tar path, under `prefix/`): listed files whose hash differs or that are missing, and files of the tar the
 * manifest does not list (the manifest itself aside). Sorted; empty when the image is whole. Pure.
 */
export function sumsMismatches(sums: string, actual: ReadonlyMap<string, string>, prefix: string, manifest = 'SHA256SUMS'): string[] {
  const listed = new Map<string, string>();
  for (const line of sums.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m) listed.set(m[2], m[1]);
  }
  const bad: string[] = [];
  for (const [file, sum] of listed) if (actual.get(`${prefix}/${file}`) !== sum) bad.push(file);
  for (const path of actual.keys()) {
    if (!path.startsWith(`${prefix}/`)) continue;
    const file = path.slice(prefix.length + 1);
    if (file !== manifest && !listed.has(file)) bad.push(`${file} (not in ${manifest})`);
  }
  return bad.sort();
}
