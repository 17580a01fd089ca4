/**
 * Step 5: a fresh tmpfs on the host, the image streamed into it (busybox first, then the tar through it:
 * no copy of the tarball ever sits in the host's RAM), hashed there as it arrives and checked before anything runs.
 * The host-side keeper holds the tmpfs only while our ssh session lives (scripts/stage.sh).
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { parseStaged, parseStageFacts, type StagedImage } from '../boundary/stage.js';
import type { HostFetch, StreamPlan } from '../image-fetch.js';
import { describeHostFetch, hostFetchArgs } from '../image-source.js';
import { StageError } from '../errors.js';
import type { Image } from '../image.js';
import type { Session } from '../operation.js';
import type { StagePlace } from '../preflight/checks.js';
import type { Remote, RemoteProcess } from '../remote.js';
import { script } from '../scripts.js';
import { parseScriptOutput } from '../sections.js';
import type { Ui } from '../ui.js';

/** A staged image and the keeper process that holds it. */
export interface Stage extends StagedImage {
  keeper: RemoteProcess;
}

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

/**
 * Stages `image` at `place`; registers the keeper in `session` at once, so an interrupt at any point cleans up.
 * With `hostFetch` (a URL image the host can reach) the host downloads and verifies the tarball itself and
 * nothing is streamed (scripts/stage.sh, url mode); else `stream` says how the host checks the stream.
 */
export async function stage(
  remote: Remote,
  ui: Ui,
  image: Image,
  place: StagePlace,
  session: Session,
  hostFetch?: HostFetch,
  stream: StreamPlan = { via: 'pipe' },
): Promise<Stage> {
  const viaFile = !hostFetch && stream.via === 'file' ? stream : undefined;
  const total = hostFetch ? image.tarBytes : image.busybox.size + image.tarBytes;
  const progress = ui.progress(hostFetch ? 'host download' : 'upload', total);
  const keeper = remote.start([
    script(
      'stage.sh',
      place.parent,
      place.mode,
      String(hostFetch ? hostFetch.tmpfsBytes : viaFile ? viaFile.tmpfsBytes : place.tmpfsBytes),
      String(image.busybox.size),
      hostFetch ? '-' : image.busybox.sha256,
      String(image.tarBytes),
      image.tarSha256,
      ...(hostFetch ? hostFetchArgs(image, hostFetch) : viaFile ? ['file'] : []),
    ),
  ]);
  session.stage = { keeper, dir: '', imageDir: '' };
  const lines: string[] = [];
  const staged = new Promise<void>((resolve) =>
    keeper.onLine((line) => {
      lines.push(line);
      if (line === 'staged=1') resolve();
      if (hostFetch && line.startsWith('fetched=')) progress(Number(line.slice('fetched='.length)));
    }),
  );
  // With the host fetching, nothing is streamed: stdin stays open only to hold the stage.
  const upload = hostFetch ? undefined : uploadStream(image.path, image.busybox, progress);
  upload?.pipe(keeper.stdin, { end: false });
  const outcome = await Promise.race([staged.then(() => 'staged' as const), keeper.done.then(() => 'exited' as const)]);
  if (outcome === 'exited') {
    upload?.destroy();
    session.stage = undefined;
    const result = await keeper.done;
    const said = parseScriptOutput(result.stdout).errors.join('; ');
    throw new StageError(
      `staging the image on the host failed: ${said || `the stage script exited with ${result.code}`}`,
      said.includes('hash mismatch')
        ? 'The file at the URL is not the image you pinned: check the URL and the hash against where the image is published. Nothing of it ran; the staging tmpfs was removed.'
        : said.includes('checksum mismatch: the upload')
          ? 'What reached the host is not the image checked here before connecting: the file changed while it was sent (rebuilt or copied over?), or the upload was damaged on the way. ' +
            'Nothing of it ran; the staging tmpfs was removed. Run again once the image file is final.'
          : said.includes('corrupt')
            ? 'The image or the connection corrupted the upload. Check the image (sha256sum -c SHA256SUMS inside it) and run again; the host was cleaned up.'
            : 'Nothing was changed on the host: the staging tmpfs was removed. Fix the cause above and run again.',
      result.stderr,
    );
  }
  const output = parseScriptOutput(lines.join('\n'));
  const where = parseStaged(output);
  const current: Stage = { keeper, ...where };
  session.stage = current;
  if (hostFetch) ui.info(describeHostFetch(image, parseStageFacts(output).fetch_cs));
  const verified = hostFetch
    ? 'verified on the host with its own tools'
    : viaFile
      ? 'the tarball hashed on the host before it was unpacked'
      : 'the tarball hashed on the host as it arrived';
  ui.info(`staged in a tmpfs at ${where.dir}; ${verified}`);
  return current;
}

/**
 * After kexec was triggered: ending the keeper is the acknowledgement that releases the trigger on the host
 * (scripts/kexec-run.sh). Its own exit status may never arrive (the kernel is replaced), so do not wait for it.
 */
export function releaseStage(session: Session): void {
  const current = session.stage;
  if (!current) return;
  session.stage = undefined;
  current.keeper.stdin.end();
  setTimeout(() => current.keeper.kill(), 15000).unref();
}

/** Ends the stage: the keeper sees EOF and unmounts the tmpfs. Waits (bounded) for it to report. */
export async function unstage(session: Session, timeoutMs = 15000): Promise<boolean> {
  const current = session.stage;
  if (!current) return true;
  session.stage = undefined;
  current.keeper.stdin.end();
  const finished = await Promise.race([current.keeper.done.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
  if (!finished) current.keeper.kill();
  return finished;
}
