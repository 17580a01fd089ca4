/**
 * A small synthetic image in the layout (docs/image-layout.md) for the script tests that stage without QEMU: the
 * given files plus this machine's busybox as bin/busybox, their SHA256SUMS, packed the way both builders pack
 * (ustar, root-owned, sorted, fixed mtime). Also the shells the scripts must run under, and a PATH of busybox
 * applets only (a host without GNU tools).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const which = (name: string) => spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
/** Every host and rescue script runs under both. */
export const SHELLS: [string, string[]][] = [
  ['dash', [which('dash')]],
  ['busybox ash', [which('busybox'), 'ash']],
];

/** Writes DIR/emergency-image/ with `content` + bin/busybox + SHA256SUMS and packs it into `tarPath`. */
export function writeFakeImage(dir: string, tarPath: string, busybox: string, content: Record<string, string | Buffer>): void {
  const image = join(dir, 'emergency-image');
  for (const [path, data] of Object.entries(content)) {
    mkdirSync(dirname(join(image, path)), { recursive: true });
    writeFileSync(join(image, path), data);
  }
  mkdirSync(join(image, 'bin'), { recursive: true });
  copyFileSync(busybox, join(image, 'bin/busybox'));
  const names = [...Object.keys(content), 'bin/busybox'].sort();
  writeFileSync(join(image, 'SHA256SUMS'), names.map((p) => `${sha256(readFileSync(join(image, p)))}  ${p}\n`).join(''));
  const ustar = ['--format=ustar', '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--mtime=@1'];
  execFileSync('tar', [...ustar, '-cf', tarPath, '-C', dir, 'emergency-image']);
}

/** DIR/bbin holding a symlink to busybox for each of its applets (and, with `withSelf`, `busybox`): a PATH of nothing else. */
export function busyboxOnlyPath(dir: string, busybox: string, withSelf = false): string {
  const bin = join(dir, 'bbin');
  mkdirSync(bin);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const applet of new Set([...applets, ...(withSelf ? ['busybox'] : [])])) symlinkSync(busybox, join(bin, applet));
  return bin;
}
