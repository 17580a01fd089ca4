/**
 * What is checked before anything connects: the image (a readable file of this layout, or a URL with its pin) or, without one, that
 * Nix is there to build it. The command line itself is checked by parseArgs (args.ts). A failure here exits 2 with
 * cause and fix; the host is never contacted.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { UsageError } from './errors.js';
import { type Image, nixOnPath, noNixError } from './image.js';
import { loadImageSource } from './image-source.js';
import type { Options } from './operation.js';

/** The loaded image when --image was given; undefined when Nix will build it after preflight. */
export async function validateInputs(
  options: Pick<Options, 'image' | 'imageSha256' | 'json'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Image | undefined> {
  if (options.json) {
    const dir = dirname(resolve(options.json));
    try {
      await access(dir, constants.W_OK);
    } catch {
      throw new UsageError(`--json ${options.json}: the directory ${dir} does not exist or is not writable`, 'Give a file in a directory you can write to.');
    }
  }
  // A file (its hash checked when pinned), or a URL's sidecar checked against the pinned hash (ts/image-url.ts).
  if (options.image) return loadImageSource(options.image, options.imageSha256);
  if (!nixOnPath(env.PATH)) throw noNixError();
  return undefined;
}
