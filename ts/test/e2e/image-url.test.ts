/**
 * End to end (needs QEMU and root): `--image URL` with a pinned hash. The test runs in a network namespace of its
 * own whose loopback also holds 10.0.2.100, so http://10.0.2.100:8080/… is the same HTTP server for the CLI and,
 * through QEMU's guestfwd (restrict=on kept), for the test server. Cases: the host fetches the image itself and
 * is rescued; a tarball that does not match the pin is refused on the host before kexec, host unchanged; a host
 * that cannot reach the URL (no guestfwd) gets the image streamed by the CLI, which downloaded it, and is rescued.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, targetArgs } from '../lib/cli.js';
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
