/**
 * Step 5: a fresh tmpfs on the host, the image streamed into it (busybox first, then the tar through it:
 * no copy of the tarball ever sits in the host's RAM), checksums verified there before anything runs.
 * The host-side keeper holds the tmpfs only while our ssh session lives (scripts/stage.sh).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { StageError } from '../errors.js';
import type { Operation } from '../operation.js';
import { script } from '../scripts.js';
import { parseKeyValues } from '../image.js';

/** Busybox bytes, then the whole tarball, counting what went out. */
function uploadStream(path: string, busybox: { offset: number; size: number }, onBytes: (n: number) => void): Readable {
  return Readable.from(
    (async function* () {
      let sent = 0;
      for (const stream of [
        createReadStream(path, { start: busybox.offset, end: busybox.offset + busybox.size - 1, highWaterMark: 1 << 20 }),
        createReadStream(path, { highWaterMark: 1 << 20 }),
      ]) {
        for await (const chunk of stream) {
          sent += (chunk as Buffer).length;
          onBytes(sent);
          yield chunk as Buffer;
        }
      }
    })(),
  );
}

export async function stage(op: Operation): Promise<void> {
  const image = op.state.image!;
  const target = op.state.verdict!.stage!;
  const total = image.busybox.size + image.tarBytes;
  const progress = op.ui.progress('upload', total);
  op.roundTrips++;
  const keeper = op.remote.start([
    script('stage.sh', target.parent, target.mode, String(target.tmpfsBytes), String(image.busybox.size), image.busybox.sha256, String(image.tarBytes), image.sumsSha256),
  ]);
  // Set before the upload finishes, so an interrupt at any point closes the keeper and cleans the host.
  op.state.stage = { keeper, dir: '', imageDir: '' };
  const lines: string[] = [];
  const staged = new Promise<void>((resolve) =>
    keeper.onLine((line) => {
      lines.push(line);
      if (line === 'staged=1') resolve();
    }),
  );
  const upload = uploadStream(image.path, image.busybox, progress);
  upload.pipe(keeper.stdin, { end: false });
  const outcome = await Promise.race([staged.then(() => 'staged' as const), keeper.done.then(() => 'exited' as const)]);
  if (outcome === 'exited') {
    upload.destroy();
    op.state.stage = undefined;
    const result = await keeper.done;
    const facts = parseKeyValues(result.stdout);
    throw new StageError(
      `staging the image on the host failed: ${facts.stage_error ?? `the stage script exited with ${result.code}`}`,
      facts.stage_error?.includes('corrupt')
        ? 'The image or the connection corrupted the upload. Check the image (sha256sum -c SHA256SUMS inside it) and run again; the host was cleaned up.'
        : 'Nothing was changed on the host: the staging tmpfs was removed. Fix the cause above and run again.',
      result.stderr,
    );
  }
  const facts = parseKeyValues(lines.join('\n'));
  op.state.stage = { keeper, dir: facts.stage_dir, imageDir: facts.image_dir };
  op.ui.info(`staged in a tmpfs at ${facts.stage_dir}; checksums verified on the host`);
}

/**
 * After kexec was triggered: ending the keeper is the acknowledgement that releases the trigger on the host
 * (scripts/kexec-run.sh). Its own exit status may never arrive (the kernel is replaced), so do not wait for it.
 */
export function releaseStage(op: Operation): void {
  const current = op.state.stage;
  if (!current) return;
  op.state.stage = undefined;
  current.keeper.stdin.end();
  setTimeout(() => current.keeper.kill(), 15000).unref();
}

/** Ends the stage: the keeper sees EOF and unmounts the tmpfs. Waits (bounded) for it to report. */
export async function unstage(op: Operation, timeoutMs = 15000): Promise<boolean> {
  const current = op.state.stage;
  if (!current) return true;
  op.state.stage = undefined;
  current.keeper.stdin.end();
  const finished = await Promise.race([current.keeper.done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
  if (!finished) current.keeper.kill();
  return finished;
}
