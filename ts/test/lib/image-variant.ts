/**
 * A copy of a built image with extra kernel parameters on its command line (test switches such as
 * `emergency.test.hang=early`), its SHA256SUMS made again so the host's check passes: a valid image that behaves
 * differently after the jump.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Writes the variant next to the other files in `dir` and returns its path. */
export async function imageWithParams(image: string, params: string[], dir: string): Promise<string> {
  const work = await mkdtemp(join(dir, 'image-variant-'));
  try {
    await exec('tar', ['-xf', image, '-C', work]);
    const root = join(work, 'emergency-image');
    const cmdline = (await readFile(join(root, 'cmdline'), 'utf8')).trim();
    await writeFile(join(root, 'cmdline'), `${cmdline} ${params.join(' ')}\n`);
    const sums = (await readFile(join(root, 'SHA256SUMS'), 'utf8')).trim().split('\n');
    const again = await Promise.all(
      sums.map(async (line) => {
        const file = line.split(/\s+/)[1];
        return `${createHash('sha256')
          .update(await readFile(join(root, file)))
          .digest('hex')}  ${file}\n`;
      }),
    );
    await writeFile(join(root, 'SHA256SUMS'), again.join(''));
    const out = `${work}.tar`;
    // Packed as the builders pack it (docs/image-layout.md, "The tarball").
    await exec('tar', ['--format=ustar', '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1', '-cf', out, '-C', work, 'emergency-image']);
    return out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
