/**
 * The command line and the image are checked before anything connects: each case runs the built CLI with no
 * terminal (a new session, stdin closed) and an ssh config whose ProxyCommand would leave a mark if ssh ever
 * started, and expects exit 2 with the real cause, not "no terminal to confirm the kexec on".
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RunRecordSchema } from '../../run-record.js';

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));
/** A new session has no controlling terminal, as under cron or CI: the old order reported that first. */
const SETSID = spawnSync('sh', ['-c', 'command -v setsid'], { encoding: 'utf8' }).stdout.trim();
const NO_TTY = SETSID ? [SETSID, '-w'] : [];
const cli = (args: string[], env: NodeJS.ProcessEnv) =>
  spawnSync(NO_TTY[0] ?? process.execPath, [...NO_TTY.slice(1), ...(NO_TTY.length ? [process.execPath] : []), CLI, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 30_000,
  });

describe('inputs are validated before connecting (exit 2, cause and fix)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-validate-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const marker = join(dir, 'ssh-was-started');
  const sshConfig = join(dir, 'ssh_config');
  writeFileSync(sshConfig, `Host *\n  ProxyCommand sh -c 'touch ${marker}; exit 1'\n`);
  const emptyDir = join(dir, 'no-tars');
  mkdirSync(emptyDir);
  const notTar = join(dir, 'not-a.tar');
  writeFileSync(notTar, 'this is not a tarball\n'.repeat(100));
  const noNixPath = join(dir, 'empty-bin');
  mkdirSync(noNixPath);

  const cases: { name: string; args: string[]; env?: NodeJS.ProcessEnv; message: RegExp; fix: RegExp }[] = [
    {
      name: 'a missing --image file',
      args: ['--image', join(dir, 'missing.tar')],
      message: /image \S+missing\.tar cannot be read: no such file/,
      fix: /--image PATH/,
    },
    { name: 'a directory without an image', args: ['--image', emptyDir], message: /holds 0 \.tar files, expected exactly one image/, fix: /tarball itself/ },
    {
      name: 'a file that is not a tarball',
      args: ['--image', notTar],
      message: /is not a valid tarball|does not follow the image layout/,
      fix: /Rebuild the image|image built by this version/,
    },
    {
      name: 'no --image and no nix',
      args: [],
      env: { PATH: noNixPath },
      message: /no --image was given, and `nix` .* is not installed here/,
      fix: /install Nix.*--image PATH/,
    },
    {
      name: 'a --json file in a missing directory',
      args: ['--json', join(dir, 'missing-dir/run.json')],
      message: /--json \S+run\.json: the directory \S+missing-dir does not exist or is not writable/,
      fix: /directory you can write to/,
    },
    { name: 'a bad --port', args: ['--port', '70000'], message: /--port must be a port number/, fix: /emergency --help/ },
    { name: 'a bad --timeout', args: ['--timeout', 'soon'], message: /--timeout/, fix: /emergency --help/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      rmSync(marker, { force: true });
      const r = cli(['-F', sshConfig, ...c.args, 'root@rescue-me.invalid'], { ...process.env, ...c.env });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, c.message);
      assert.match(r.stderr.split('\n').find((l) => l.includes('fix:')) ?? '', c.fix);
      assert.doesNotMatch(r.stderr, /no terminal/);
      assert.equal(existsSync(marker), false, 'ssh was never started');
    });
  }

  it('--json is written for a run that fails before connecting, with the error and exit code', () => {
    const file = join(dir, 'failed-run.json');
    const r = cli(['-F', sshConfig, '--json', file, '--image', join(dir, 'missing.tar'), 'root@rescue-me.invalid'], { ...process.env });
    assert.equal(r.status, 2, r.stderr);
    const record = RunRecordSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    assert.deepEqual([record.outcome, record.exitCode, record.error?.type], ['failed', 2, 'UsageError']);
    assert.match(record.error?.message ?? '', /cannot be read: no such file/);
    assert.deepEqual(record.steps, [], 'nothing ran');
  });

  it('with a valid command line and no terminal, the terminal is what it names (still before connecting)', () => {
    rmSync(marker, { force: true });
    const fakeNix = join(dir, 'nix-bin');
    mkdirSync(fakeNix);
    writeFileSync(join(fakeNix, 'nix'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const r = cli(['-F', sshConfig, 'root@rescue-me.invalid'], { ...process.env, PATH: `${fakeNix}:${process.env.PATH}` });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /no terminal to confirm the kexec on/);
    assert.equal(existsSync(marker), false);
  });
});
