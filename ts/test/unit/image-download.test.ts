/**
 * This machine's download of a URL image (downloadImage) on every way it can end, against a real local HTTP
 * server: verified (kept until removed), stopped half-way by remove() (what the signal handler calls), cut off
 * by the server, refused for its hash. Each time the temporary directory must be gone, except after a verified
 * download. And the words the CLI prints when a signal stops it (ts/interrupt.ts), as a table.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../errors.js';
import { downloadImage, type DownloadInProgress } from '../../image-url.js';
import { interruptFinished, interruptStarted, type InterruptState } from '../../interrupt.js';
import { startFileServer, type FileServer } from '../lib/http-files.js';

const SIZE = 2 << 20;

describe('downloadImage: the temporary file on every exit path', () => {
  let work: string;
  let cliTmp: string;
  let files: FileServer;
  let pin: string;
  let savedTmp: string | undefined;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'emergency-download-test-'));
    cliTmp = join(work, 'tmp');
    const tar = join(work, 'i.tar');
    const data = randomBytes(SIZE);
    writeFileSync(tar, data);
    pin = createHash('sha256').update(data).digest('hex');
    files = await startFileServer('127.0.0.1', 0, {
      '/i.tar': tar,
      '/slow.tar': { file: tar, bytesPerSecond: 256 * 1024 },
      '/cut.tar': { file: tar, cutAfter: SIZE / 2 },
    });
    // downloadImage puts its directory in os.tmpdir(), which follows TMPDIR, as the CLI's does.
    savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = cliTmp;
  });
  after(async () => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    await files?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  const fresh = () => {
    rmSync(cliTmp, { recursive: true, force: true });
    mkdirSync(cliTmp);
  };
  const left = () => readdirSync(cliTmp);

  it('a verified download stays (it is streamed from there) until removed', async () => {
    fresh();
    let started: DownloadInProgress | undefined;
    const got = await downloadImage(
      { url: files.url('/i.tar'), sha256: pin },
      SIZE,
      () => {},
      (d) => (started = d),
    );
    assert.equal(got.bytes, SIZE);
    assert.equal(statSync(got.path).size, SIZE);
    assert.equal(started?.path, got.path, 'onStart named the same file');
    assert.equal(started?.verified(), true);
    await got.remove();
    assert.deepEqual(left(), []);
  });

  it('stopped half-way by remove() (the signal handler): the transfer stops, the file is gone, the download fails', async () => {
    fresh();
    let inProgress: DownloadInProgress | undefined;
    let seen = 0;
    const download = downloadImage(
      { url: files.url('/slow.tar'), sha256: pin },
      SIZE,
      (n) => (seen = n),
      (d) => (inProgress = d),
    );
    assert.ok(inProgress, 'onStart is called before the first byte');
    assert.equal(left().length, 1, 'the temporary directory exists from the start');
    while (seen < 100_000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(inProgress.path), 'the partial file is on disk');
    assert.equal(inProgress.verified(), false);
    await inProgress.remove();
    assert.deepEqual(left(), [], 'nothing left in TMPDIR');
    await assert.rejects(download, /could not download .*the partial download was removed/);
    const stoppedAt = files.log.at(-1)!.bytes;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(files.log.at(-1)!.bytes, stoppedAt, 'the server sends nothing more: the transfer was stopped');
    assert.ok(stoppedAt < SIZE);
    assert.deepEqual(left(), [], 'and nothing was written after the removal');
  });

  it('cut off by the server: refused, the partial file removed, the message says how far it got', async () => {
    fresh();
    const e = await downloadImage({ url: files.url('/cut.tar'), sha256: pin }, SIZE, () => {}).then(
      () => assert.fail('a cut-off download must not succeed'),
      (err: { message: string; exitCode: number }) => err,
    );
    assert.equal(e.exitCode, ExitCode.StageFailed);
    assert.match(e.message, /(could not download|ended after) .*of 2097152 bytes/);
    assert.match(e.message, /removed/);
    assert.deepEqual(left(), []);
  });

  it('a hash mismatch: refused and removed, nothing of it used', async () => {
    fresh();
    await assert.rejects(
      downloadImage({ url: files.url('/i.tar'), sha256: 'c'.repeat(64) }, SIZE, () => {}),
      (err: { message: string; exitCode: number }) =>
        err.exitCode === ExitCode.StageFailed && /image hash mismatch: .* not the pinned c{64}; refused and removed, nothing of it was used/.test(err.message),
    );
    assert.deepEqual(left(), []);
  });

  it('an HTTP error: refused, nothing left', async () => {
    fresh();
    await assert.rejects(
      downloadImage({ url: files.url('/missing.tar'), sha256: pin }, SIZE, () => {}),
      /could not download .*HTTP 404/,
    );
    assert.deepEqual(left(), []);
  });
});

describe('interruptStarted / interruptFinished: what the CLI says when a signal stops it', () => {
  const url = 'http://mirror.example/i.tar';
  const partial: InterruptState = { kexecTriggered: false, staged: false, download: { url, received: 3_200_000, total: 27_054_080, verified: false } };
  const ok = { stageRemoved: true, downloadRemoved: true };
  const cases: [string, Parameters<typeof interruptStarted>[0], InterruptState, typeof ok, string, string][] = [
    [
      'Ctrl-C during the download',
      'SIGINT',
      partial,
      ok,
      `interrupted: removing the partial download (3.2 of 27.1 MB of ${url}; never used)…`,
      'interrupted before the kexec: the partial download was removed; nothing was changed on the host',
    ],
    [
      'SIGTERM during the download is named',
      'SIGTERM',
      partial,
      ok,
      `interrupted by SIGTERM: removing the partial download (3.2 of 27.1 MB of ${url}; never used)…`,
      'interrupted by SIGTERM before the kexec: the partial download was removed; nothing was changed on the host',
    ],
    [
      'during the upload of a downloaded image',
      'SIGINT',
      { kexecTriggered: false, staged: true, download: { url, received: 27_054_080, total: 27_054_080, verified: true } },
      ok,
      'interrupted: removing the staged image from the host and the downloaded image from this machine…',
      'interrupted before the kexec: the staged image was removed from the host; the downloaded image was removed',
    ],
    [
      'during the upload, the keeper slow to confirm',
      'SIGHUP',
      { kexecTriggered: false, staged: true },
      { stageRemoved: false, downloadRemoved: true },
      'interrupted by SIGHUP: removing the staged image from the host…',
      "interrupted by SIGHUP before the kexec: the host's keeper did not confirm in time that the staged image is gone (it removes it when the ssh session ends)",
    ],
    [
      'the partial download could not be deleted',
      'SIGINT',
      partial,
      { stageRemoved: true, downloadRemoved: false },
      `interrupted: removing the partial download (3.2 of 27.1 MB of ${url}; never used)…`,
      'interrupted before the kexec: the partial download could not be removed: delete it yourself; nothing was changed on the host',
    ],
    [
      'in preflight',
      'SIGINT',
      { kexecTriggered: false, staged: false },
      ok,
      'interrupted before anything was staged: nothing was changed on the host',
      'interrupted before the kexec: nothing was changed on the host',
    ],
    [
      'after the kexec',
      'SIGINT',
      { kexecTriggered: true, staged: false },
      ok,
      'interrupted: kexec was already triggered, the host is booting the rescue system',
      'interrupted after the kexec was triggered',
    ],
  ];
  for (const [name, signal, state, cleanup, started, finished] of cases) {
    it(name, () => {
      assert.equal(interruptStarted(signal, state), started);
      assert.equal(interruptFinished(signal, state, cleanup), finished);
    });
  }
});
