/**
 * The host side of --image URL without QEMU (needs root): scripts/probe-url.sh and stage.sh's url mode run
 * under dash and busybox ash against a local HTTP server, in a network namespace of their own (loopback only)
 * and, for stage.sh, a private mount namespace too, so its tmpfs is never visible outside. The image is a small
 * synthetic one in the layout; its busybox is this machine's busybox (it unpacks the tar once verified).
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { imageFromSidecar } from '../../image-url.js';
import { parseUrlProbe } from '../../boundary/url-probe.js';
import { parseScriptOutput } from '../../sections.js';
import { startFileServer, type FileServer } from '../lib/http-files.js';
import { netnsUnavailable, ownNetns } from '../lib/own-netns.js';
import { busyboxOnlyPath, SHELLS, sha256, which, writeFakeImage } from './fake-image.js';
import { hasCommand, REPO } from './netns.js';

const busybox = which('busybox');
const skip = netnsUnavailable() ?? (!busybox ? 'needs busybox' : !hasCommand('dash') ? 'needs dash' : undefined);
const where = skip ? 'skipped' : await ownNetns(import.meta.url, []);

if (where !== 'parent') {
  describe('probe-url.sh and stage.sh url mode (needs root)', { skip }, () => {
    let dir: string;
    let files: FileServer;
    let tar: string;
    let pin: string;
    /** A PATH holding nothing but busybox applets: a host whose only downloader is busybox's wget. */
    let busyboxPath: string;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'emergency-url-scripts-'));
      const content: Record<string, string | Buffer> = {
        kernel: Buffer.alloc(300_000, 1),
        initrd: Buffer.alloc(200_001, 2),
        cmdline: 'emergency.rescue=1\n',
        'kexec-run.sh': '#!/bin/sh\n',
        'kexec-trigger.sh': '#!/bin/sh\n',
        'run-tool.sh': '#!/bin/sh\n',
        'bin/kexec': Buffer.alloc(1000, 4),
        'bin/ip': Buffer.alloc(1000, 5),
        'image.info': 'format=1\narch=x86_64\nname=t\nrescue_unpacked_bytes=1\n',
      };
      tar = join(dir, 'emergency-image-x86_64.tar');
      writeFakeImage(dir, tar, busybox, content);
      execFileSync('sh', [join(REPO, 'scripts/image-sidecar.sh'), tar, `${tar}.meta`]);
      pin = sha256(readFileSync(tar));
      const evil = join(dir, 'evil.tar');
      const bytes = readFileSync(tar);
      bytes[2048 + 1000] ^= 1;
      writeFileSync(evil, bytes);
      files = await startFileServer('127.0.0.1', 8080, { '/i.tar': tar, '/i.tar.meta': `${tar}.meta`, '/evil.tar': evil });
      busyboxPath = busyboxOnlyPath(dir, busybox, true);
    });
    after(async () => {
      await files?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    // Asynchronous: the HTTP server answering them runs in this process.
    const probe = async (shell: string[], url: string, env: NodeJS.ProcessEnv = process.env) =>
      parseUrlProbe(
        parseScriptOutput(
          (await promisify(execFile)(shell[0], [...shell.slice(1), join(REPO, 'scripts/probe-url.sh'), url], { encoding: 'utf8', env })).stdout,
        ),
      );

    for (const [name, shell] of SHELLS) {
      it(`probe-url.sh under ${name}: reachable with curl, and with busybox wget alone; not for a closed port`, async () => {
        assert.deepEqual(await probe(shell, files.url('/i.tar')), { url_fetcher: 'curl', url_sha256: 'sha256sum', url_copy: true, url_reachable: true });
        const onlyBusybox = { ...process.env, PATH: busyboxPath };
        const bb = await probe(shell, files.url('/i.tar'), onlyBusybox);
        assert.deepEqual(bb, { url_fetcher: 'wget-busybox', url_sha256: 'sha256sum', url_copy: true, url_reachable: true });
        const closed = await probe(shell, 'http://127.0.0.1:9/i.tar');
        assert.equal(closed.url_reachable, false);
        assert.ok(closed.url_probe_error, 'says why');
        assert.equal((await probe(shell, files.url('/missing.tar'))).url_reachable, false, 'a 404 is not reachable');
      });

      /** stage.sh in url mode, in a private mount namespace; returns its key=value output and exit code. */
      const stageUrl = async (url: string, fetcher: string, env: NodeJS.ProcessEnv = process.env) => {
        const image = imageFromSidecar(readFileSync(`${tar}.meta`), { url, sha256: pin });
        const parent = mkdtempSync(join(dir, 'stage-'));
        const args = [
          parent,
          'mkdir',
          String(8 << 20),
          String(image.busybox.size),
          '-',
          String(image.tarBytes),
          pin,
          'url',
          fetcher,
          'sha256sum',
          url,
          image.sumsSha256,
          String(image.busybox.offset),
          String(image.url!.sumsOffset),
          String(image.url!.sumsBytes),
        ];
        const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn('unshare', ['-m', '--propagation', 'private', ...shell, join(REPO, 'scripts/stage.sh'), ...args], {
            env,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d) => (stdout += d));
          child.stderr.on('data', (d) => (stderr += d));
          child.on('close', (status) => resolve({ status, stdout, stderr }));
        });
        const left = execFileSync('sh', ['-c', `ls -A "${parent}"; grep -c emergency-stage /proc/mounts || true`], { encoding: 'utf8' });
        const output = parseScriptOutput(r.stdout);
        return { code: r.status, out: r.stdout, facts: output.facts, error: output.errors.join('; '), stderr: r.stderr, left: left.trim() };
      };

      it(`stage.sh url mode under ${name}: downloads, verifies with the host's tools, unpacks, cleans up`, async () => {
        for (const [fetcher, env] of [
          ['curl', process.env],
          ['wget-busybox', { ...process.env, PATH: `${busyboxPath}:${process.env.PATH}` }],
        ] as const) {
          const r = await stageUrl(files.url('/i.tar'), fetcher, env);
          assert.equal(r.code, 0, `${fetcher}: ${r.out}\n${r.stderr}`);
          assert.equal(r.facts.fetch_verified, '1', fetcher);
          assert.equal(r.facts.staged, '1', fetcher);
          assert.match(r.facts.fetch_cs, /^\d+$/, 'the download time is reported');
          assert.match(r.out, /^stage_removed=/m, 'the tmpfs is gone when stdin ends');
          assert.equal(r.left, '0', 'nothing is left in the parent, no tmpfs is mounted');
        }
      });

      it(`stage.sh url mode under ${name}: a download that is not the pinned image is refused before anything of it runs`, async () => {
        const r = await stageUrl(files.url('/evil.tar'), 'curl');
        assert.equal(r.code, 1);
        assert.match(r.error, /^image hash mismatch: the downloaded image has sha256 [0-9a-f]{64}, not the pinned [0-9a-f]{64}; refused, nothing of it ran$/);
        assert.doesNotMatch(r.out, /fetch_verified|staged=1/);
        assert.equal(r.left, '0', 'the tmpfs and its directory are removed');
        const missing = await stageUrl(files.url('/gone.tar'), 'curl');
        assert.match(missing.error, /the host could not download/);
        assert.equal(missing.left, '0');
      });
    }
  });
}
