/**
 * scripts/stage.sh in its streamed mode without QEMU (needs root, for its tmpfs): run under dash and busybox ash,
 * each in a private mount namespace (its tmpfs is never visible outside), fed on stdin the way the stage step feeds
 * it: the image's busybox, then the tarball. The tarball is hashed as it arrives and checked against the 7th
 * argument before `staged=1`; a stream that is not the checked image is refused and the tmpfs removed. The image
 * is a small synthetic one in the layout; its busybox is this machine's busybox.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseScriptOutput } from '../../sections.js';
import { listTar } from '../../tar.js';
import { busyboxOnlyPath, SHELLS, sha256, which, writeFakeImage } from './fake-image.js';
import { hasCommand, isRoot, REPO } from './netns.js';

const busybox = which('busybox');
const skip = !isRoot()
  ? 'needs root (stage.sh mounts a tmpfs, in a mount namespace of its own)'
  : !busybox
    ? 'needs busybox'
    : !hasCommand('dash')
      ? 'needs dash'
      : !hasCommand('unshare')
        ? 'needs unshare'
        : undefined;
/** stage.sh's two ways of checking a stream: through tee as tar unpacks it, or written whole first. */
type Source = 'stream' | 'file';
const SOURCES: Source[] = ['stream', 'file'];

describe('stage.sh, streamed: the tarball hashed as it arrives (needs root)', { skip }, () => {
  let dir: string;
  let tar: Buffer;
  let busyboxBytes: Buffer;
  /** busybox, then the tarball: what the stage step streams. */
  let wire: Buffer;
  /** A PATH holding nothing but busybox applets: a host without GNU dd or head. */
  let busyboxPath: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'emergency-stage-script-'));
    const content: Record<string, string | Buffer> = {
      kernel: Buffer.alloc(3_000_000, 1),
      initrd: Buffer.alloc(2_000_001, 2),
      cmdline: 'emergency.rescue=1\n',
      'kexec-run.sh': '#!/bin/sh\n',
      'bin/kexec': Buffer.alloc(1000, 4),
      'image.info': 'format=1\narch=x86_64\nname=t\nrescue_unpacked_bytes=1\n',
    };
    const tarPath = join(dir, 'image.tar');
    writeFakeImage(dir, tarPath, busybox, content);
    tar = readFileSync(tarPath);
    busyboxBytes = readFileSync(busybox);
    wire = Buffer.concat([busyboxBytes, tar]);
    busyboxPath = busyboxOnlyPath(dir, busybox);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs stage.sh with `stream` on stdin, then EOF (which ends a stage that staged). The script lists what it
   * staged before it prints staged=1, so the test can see the files; afterwards the parent must be empty.
   */
  const runStage = async (shell: string[], stream: Buffer, tarSha256: string, source: Source, env: NodeJS.ProcessEnv = process.env) => {
    const parent = mkdtempSync(join(dir, 'stage-'));
    const args = [parent, 'mkdir', String(32 << 20), String(busyboxBytes.length), sha256(busyboxBytes), String(tar.length), tarSha256];
    if (source === 'file') args.push('file');
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('unshare', ['-m', '--propagation', 'private', ...shell, join(REPO, 'scripts/stage.sh'), ...args], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.stdin.on('error', () => {}); // a refused stream ends the script before it read everything
      child.stdin.end(stream);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    const left = execFileSync('sh', ['-c', `ls -A "${parent}"; grep -c emergency-stage /proc/mounts || true`], { encoding: 'utf8' }).trim();
    const output = parseScriptOutput(r.stdout);
    return { code: r.status, out: r.stdout, facts: output.facts, error: output.errors.join('; '), stderr: r.stderr, left };
  };

  for (const [shellName, shell] of SHELLS)
    for (const source of SOURCES) {
      const name = `${shellName}, ${source === 'file' ? 'the tarball whole in the tmpfs (file)' : 'through tee (stream)'}`;
      for (const [host, env] of [
        ['GNU tools', () => process.env],
        ['busybox applets only', () => ({ ...process.env, PATH: busyboxPath })],
      ] as const) {
        it(`under ${name}, ${host}: the intact stream stages (staged=1), and EOF removes the stage`, async () => {
          const r = await runStage(shell, wire, sha256(tar), source, env());
          assert.equal(r.code, 0, `${r.out}\n${r.stderr}`);
          assert.equal(r.facts.staged, '1');
          assert.match(r.facts.image_dir, /\/emergency\.\d+\/emergency-image$/);
          assert.match(r.out, /^stage_removed=/m, 'the tmpfs is gone when stdin ends');
          assert.equal(r.left, '0', 'nothing is left in the parent, no tmpfs is mounted');
        });
      }

      it(`under ${name}: bytes flipped in the initrd on the way are refused before staged=1, the tmpfs removed`, async () => {
        const initrd = (await listTar(join(dir, 'image.tar'))).find((m) => m.path.endsWith('/initrd'))!;
        const corrupt = Buffer.from(wire);
        const at = busyboxBytes.length + initrd.dataOffset + Math.floor(initrd.size / 2);
        for (let i = at; i < at + 16; i++) corrupt[i] ^= 0xff;
        const r = await runStage(shell, corrupt, sha256(tar), source);
        assert.equal(r.code, 1, r.out);
        assert.match(
          r.error,
          new RegExp(
            `^image checksum mismatch: the upload has sha256 ${sha256(corrupt.subarray(busyboxBytes.length))}, not the ${sha256(tar)} the image has; refused, nothing of it ran$`,
          ),
        );
        assert.doesNotMatch(r.out, /^staged=1$/m);
        assert.match(r.out, /^stage_removed=/m);
        assert.equal(r.left, '0', 'the tmpfs and its directory are removed');
      });

      it(`under ${name}: a change in the end-of-archive blocks, which tar does not read, is refused too`, async () => {
        const changed = Buffer.from(wire);
        changed[changed.length - 1] ^= 1;
        const r = await runStage(shell, changed, sha256(tar), source);
        assert.equal(r.code, 1, r.out);
        assert.match(r.error, /^image checksum mismatch/);
        assert.equal(r.left, '0');
      });

      it(`under ${name}: an upload that breaks off half-way is refused, the tmpfs removed`, async () => {
        const r = await runStage(shell, wire.subarray(0, busyboxBytes.length + Math.floor(tar.length / 2)), sha256(tar), source);
        assert.equal(r.code, 1, r.out);
        assert.match(r.error, /upload broke off|image checksum mismatch/);
        assert.doesNotMatch(r.out, /^staged=1$/m);
        assert.equal(r.left, '0');
      });

      it(`under ${name}: a busybox that is not the image's is refused before it runs`, async () => {
        const other = Buffer.from(wire);
        other[100] ^= 1;
        const r = await runStage(shell, other, sha256(tar), source);
        assert.equal(r.code, 1, r.out);
        assert.match(r.error, /^busybox checksum mismatch/);
        assert.equal(r.left, '0');
      });
    }
});
