/**
 * End to end (needs QEMU and root): `--image URL` with a pinned hash. The test runs in a network namespace of its
 * own whose loopback also holds 10.0.2.100, so http://10.0.2.100:8080/… is the same HTTP server for the CLI and,
 * through QEMU's guestfwd (restrict=on kept), for the test server. Cases: the host fetches the image itself and
 * is rescued; a tarball that does not match the pin is refused on the host before kexec, host unchanged; a host
 * that cannot reach the URL (no guestfwd) gets the image streamed by the CLI, which downloaded it, and is rescued.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../test-image/build.js';
import { ExitCode } from '../../errors.js';
import { runCli, startCli, targetArgs } from '../lib/cli.js';
import { hostSnapshot, waitForNoStage } from '../lib/host-snapshot.js';
import { startFileServer, type FileServer } from '../lib/http-files.js';
import { netnsUnavailable, ownNetns } from '../lib/own-netns.js';
import { buildServerBase } from '../lib/server-image.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';

const ADDR = '10.0.2.100';
const PORT = 8080;
const TCP_PIPE = fileURLToPath(new URL('../lib/tcp-pipe.js', import.meta.url));
/** The guest's connections to ADDR:PORT, one tcp-pipe each, to the same server in the namespace. */
const GUESTFWD = [{ addr: ADDR, port: PORT, cmd: `${process.execPath} ${TCP_PIPE} ${ADDR} ${PORT}` }];

const skip = !(await qemuAvailable()) ? 'needs qemu-system-x86_64 (installed by .ci/run)' : netnsUnavailable();
const where = skip
  ? 'skipped'
  : await ownNetns(import.meta.url, [ADDR], async () => {
      // With the network, before the namespace: the image and the server base (cached after the first build).
      await buildTestImage();
      await buildServerBase();
    });

const tail = (s: TestServer) => s.serialLog().split('\n').slice(-30).join('\n');
/** The CLI's own requests carry this User-Agent; the host's busybox wget says Wget (its --spider probe is a GET too). */
const byCli = (f: FileServer, path: string) => f.log.filter((r) => r.path === path && r.method === 'GET' && r.userAgent.startsWith('emergency'));
const byHost = (f: FileServer, path: string) => f.log.filter((r) => r.path === path && r.method === 'GET' && /wget/i.test(r.userAgent));

if (where !== 'parent') {
  describe('--image URL: the host fetches, or the CLI does (needs QEMU and root)', { skip, timeout: 1_500_000 }, () => {
    let work: string;
    let files: FileServer;
    let pin: string;
    const tarName = 'emergency-image-x86_64.tar';

    before(async () => {
      const image = await buildTestImage();
      work = mkdtempSync(join(tmpdir(), 'emergency-url-'));
      pin = createHash('sha256').update(readFileSync(image)).digest('hex');
      // /evil/ serves the genuine sidecar (it names the pinned hash) with a tarball changed by one byte in the kernel.
      const evil = join(work, 'evil.tar');
      copyFileSync(image, evil);
      const bytes = readFileSync(evil);
      bytes[bytes.length - 64 * 1024] ^= 0xff;
      writeFileSync(evil, bytes);
      files = await startFileServer(ADDR, PORT, {
        [`/${tarName}`]: image,
        [`/${tarName}.meta`]: `${image}.meta`,
        [`/evil/${tarName}`]: evil,
        [`/evil/${tarName}.meta`]: `${image}.meta`,
        // 512 KiB/s: a minute for the whole image, time enough to interrupt the CLI's download half-way.
        [`/slow/${tarName}`]: { file: image, bytesPerSecond: 512 * 1024 },
        [`/slow/${tarName}.meta`]: `${image}.meta`,
        // The connection dropped half-way.
        [`/cut/${tarName}`]: { file: image, cutAfter: 8 << 20 },
        [`/cut/${tarName}.meta`]: `${image}.meta`,
      });
    });
    after(async () => {
      await files?.close();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    describe('a host that reaches the URL (guestfwd)', () => {
      let server: TestServer;
      before(async () => {
        server = await startServer(defaultScenario(), { guestfwd: GUESTFWD });
      });
      after(async () => server?.stop());

      it('refuses a tarball that does not match the pin on the host, before kexec, and leaves the host unchanged', async () => {
        assert.equal((await server.ssh('admin', 'true')).code, 0);
        const before = await hostSnapshot(server);
        const result = await runCli(['--yes', '--image', `${files.url(`/evil/${tarName}`)}#sha256=${pin}`, ...targetArgs(server, 'admin')]);
        assert.equal(result.code, 5, `expected exit 5 (staging failed):\n${result.stderr}`);
        assert.match(result.stderr, /image hash mismatch: the downloaded image has sha256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}/);
        assert.match(result.stderr, /the host fetches the image itself/, 'the host took the download');
        assert.ok(byHost(files, `/evil/${tarName}`).length >= 1, 'the host downloaded the tampered tarball itself');
        assert.equal(byCli(files, `/evil/${tarName}`).length, 0, 'the CLI never downloaded the tarball');
        assert.doesNotMatch(result.stderr, /✓ kexec/);
        assert.equal(await waitForNoStage(server), '', 'no tmpfs, stage dir or keeper is left');
        assert.equal(await hostSnapshot(server), before, 'mounts, staging places, kexec state, boot id and network are as before');
      });

      it('rescues with the image the host fetched itself; the CLI read only the sidecar', async () => {
        const log = files.log.length;
        const result = await runCli(['--yes', '--timeout', '480', '--image', `${files.url(`/${tarName}`)}#sha256=${pin}`, ...targetArgs(server, 'admin')]);
        assert.equal(result.code, 0, `rescue failed:\n${result.stderr}\n--- serial ---\n${tail(server)}`);
        assert.match(result.stderr, /the host fetched the image itself: [\d.]+ MB in [\d.]+ s \([\d.]+ MB\/s\), sha256 verified there/);
        const served = { ...files, log: files.log.slice(log) };
        assert.equal(byCli(served, `/${tarName}.meta`).length, 1, 'the CLI read the sidecar');
        assert.equal(byCli(served, `/${tarName}`).length, 0, 'the CLI did not download the tarball');
        const hostGets = byHost(served, `/${tarName}`);
        assert.ok(hostGets.length >= 1 && hostGets.length <= 2, `the host probed and downloaded the tarball: ${hostGets.length} GETs`);
        const size = readFileSync(await buildTestImage()).length;
        assert.ok(
          hostGets.some((r) => r.bytes === size),
          'all of it, once',
        );
        const rescue = await server.ssh('root', 'cat /proc/cmdline; test -e /etc/emergency-rescue && echo rescue-marker');
        assert.equal(rescue.code, 0, rescue.stderr);
        assert.match(rescue.stdout, /emergency\.rescue=1/);
        assert.match(rescue.stdout, /rescue-marker/);
      });
    });

    describe('a host that cannot reach the URL (no guestfwd)', () => {
      let server: TestServer;
      before(async () => {
        server = await startServer(defaultScenario());
      });
      after(async () => server?.stop());

      /** The CLI's TMPDIR, fresh per run: its downloads go there (and its ssh control socket). */
      const cliTmpDir = () => mkdtempSync(join(work, 'cli-tmp-'));
      const downloadsIn = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('emergency-image-'));

      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        it(`${signal} to the CLI mid-download: exit 130, the partial download removed and never used, the host unchanged`, async () => {
          assert.equal((await server.ssh('admin', 'true')).code, 0);
          const before = await hostSnapshot(server);
          const cliTmp = cliTmpDir();
          const args = ['--yes', '--image', `${files.url(`/slow/${tarName}`)}#sha256=${pin}`, ...targetArgs(server, 'admin')];
          const cli = startCli(args, { env: { ...process.env, TMPDIR: cliTmp } });
          // Mid-download: the temporary file is on disk and growing (a --yes CLI left running would rescue the server).
          let partial: string | undefined;
          for (let i = 0; i < 1200 && !partial; i++) {
            const [dir] = downloadsIn(cliTmp);
            const file = dir && join(cliTmp, dir, 'emergency-image.tar');
            if (file && existsSync(file) && statSync(file).size >= 1 << 20) partial = file;
            else await new Promise((r) => setTimeout(r, 100));
          }
          if (!partial) cli.signal('SIGKILL', { group: true });
          assert.ok(partial, 'the CLI began to download the image');
          cli.signal(signal);
          const result = await cli.done;
          assert.equal(result.code, ExitCode.Interrupted, `expected exit 130:\n${result.stderr}`);
          assert.match(result.stderr, /this machine fetches the image: the host cannot reach the URL/);
          const by = signal === 'SIGINT' ? 'interrupted' : `interrupted by ${signal}`;
          assert.match(
            result.stderr,
            new RegExp(`^${by}: removing the partial download \\([\\d.]+ of 27\\.\\d MB of http://\\S+/slow/\\S+; never used\\)`, 'm'),
          );
          assert.match(result.stderr, new RegExp(`^${by} before the kexec: the partial download was removed; nothing was changed on the host$`, 'm'));
          assert.doesNotMatch(result.stderr, /✓ download|✓ stage|downloaded [\d.]+ MB/, 'the partial download was never used');
          assert.equal(existsSync(partial), false, 'the partial file is gone');
          assert.deepEqual(readdirSync(cliTmp), [], "nothing is left in the CLI's TMPDIR");
          const sent = byCli(files, `/slow/${tarName}`).at(-1)?.bytes ?? 0;
          assert.ok(sent > 0 && sent < statSync(await buildTestImage()).size, `the transfer stopped half-way (${sent} bytes sent)`);
          assert.equal(await waitForNoStage(server), '', 'nothing was staged on the host');
          assert.equal(await hostSnapshot(server), before, 'mounts, staging places, kexec state, boot id and network are as before');
        });
      }

      for (const [name, path, says] of [
        [
          'whose tarball does not match the pin',
          'evil',
          /image hash mismatch: the download of \S+ \(\d+ bytes\) has sha256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}; refused and removed, nothing of it was used/,
        ],
        [
          'whose connection drops half-way',
          'cut',
          /this machine could not download \S+: .* \(after \d+ of \d+ bytes\); the partial download was removed|the download of \S+ ended after \d+ of \d+ bytes; refused and removed/,
        ],
      ] as const) {
        it(`a download ${name}: exit 5, removed and never used, the host unchanged`, async () => {
          const before = await hostSnapshot(server);
          const cliTmp = cliTmpDir();
          const args = ['--yes', '--image', `${files.url(`/${path}/${tarName}`)}#sha256=${pin}`, ...targetArgs(server, 'admin')];
          const result = await runCli(args, { env: { ...process.env, TMPDIR: cliTmp } });
          assert.equal(result.code, ExitCode.StageFailed, `expected exit 5:\n${result.stderr}`);
          assert.match(result.stderr, says);
          assert.match(result.stderr, /Nothing was done on the host/);
          assert.doesNotMatch(result.stderr, /✓ download|✓ stage/);
          assert.ok(byCli(files, `/${path}/${tarName}`).length >= 1, 'the CLI downloaded it');
          assert.deepEqual(readdirSync(cliTmp), [], "nothing is left in the CLI's TMPDIR");
          assert.equal(await hostSnapshot(server), before, 'host unchanged');
        });
      }

      it('falls back: the CLI downloads and verifies the image, streams it, and the host is rescued', async () => {
        const log = files.log.length;
        const result = await runCli(['--yes', '--timeout', '480', '--image', files.url(`/${tarName}`), '--image-sha256', pin, ...targetArgs(server, 'admin')]);
        assert.equal(result.code, 0, `rescue failed:\n${result.stderr}\n--- serial ---\n${tail(server)}`);
        assert.match(result.stderr, /this machine fetches the image: the host cannot reach the URL/);
        assert.match(result.stderr, /downloaded [\d.]+ MB in [\d.]+ s \([\d.]+ MB\/s\), sha256 verified; streaming it to the host/);
        const served = { ...files, log: files.log.slice(log) };
        assert.equal(byCli(served, `/${tarName}`).length, 1, 'the CLI downloaded the tarball');
        assert.equal(byHost(served, `/${tarName}`).length, 0, 'nothing from the host reached the server');
        const rescue = await server.ssh('root', 'cat /proc/cmdline');
        assert.match(rescue.stdout, /emergency\.rescue=1/);
      });
    });
  });
}
