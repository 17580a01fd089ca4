import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createTar, listTar, readTarMember } from '../../tar.js';

const dir = mkdtempSync(join(tmpdir(), 'emergency-tar-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('createTar', () => {
  it('writes an archive GNU tar and busybox-style readers extract byte for byte', () => {
    const files = { 'network.sh': '#!/bin/sh\necho hi\n', authorized_keys: 'ssh-ed25519 AAAA x\n', 'restore.env': 'a=b\n', big: Buffer.alloc(1300, 7) };
    writeFileSync(join(dir, 'out.tar'), createTar(files));
    const target = join(dir, 'x');
    mkdirSync(target);
    execFileSync('tar', ['-xf', join(dir, 'out.tar'), '-C', target]);
    for (const [name, content] of Object.entries(files)) assert.deepEqual(readFileSync(join(target, name)), Buffer.from(content), name);
  });
});

describe('listTar', () => {
  it('lists sizes and reads members of a tar made by GNU tar, without unpacking', async () => {
    const src = join(dir, 'src', 'emergency-image');
    mkdirSync(join(src, 'bin'), { recursive: true });
    writeFileSync(join(src, 'cmdline'), 'console=ttyS0 emergency.rescue=1\n');
    writeFileSync(join(src, 'bin', 'busybox'), Buffer.alloc(5000, 1));
    writeFileSync(join(src, 'x'.repeat(120)), 'long name');
    execFileSync('tar', ['-cf', join(dir, 'img.tar'), '-C', join(dir, 'src'), 'emergency-image']);
    const members = await listTar(join(dir, 'img.tar'));
    const files = Object.fromEntries(members.filter((m) => m.type === 'file').map((m) => [m.path, m]));
    assert.equal(files['emergency-image/bin/busybox'].size, 5000);
    assert.ok(files[`emergency-image/${'x'.repeat(120)}`], 'GNU long names are followed');
    assert.equal((await readTarMember(join(dir, 'img.tar'), files['emergency-image/cmdline'])).toString(), 'console=ttyS0 emergency.rescue=1\n');
  });
  it('says a truncated tarball is truncated', async () => {
    const whole = readFileSync(join(dir, 'img.tar'));
    writeFileSync(join(dir, 'cut.tar'), whole.subarray(0, 1024));
    await assert.rejects(listTar(join(dir, 'cut.tar')), /truncated/);
  });
});
