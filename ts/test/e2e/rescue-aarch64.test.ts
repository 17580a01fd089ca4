/**
 * End to end on aarch64 (needs qemu-system-aarch64 and qemu-system-x86_64): the CLI rescues an aarch64 QEMU
 * test server (`-M virt`, TCG) with the aarch64 test image, and every assertion of rescue.test.ts holds
 * (rescue-assertions.ts). An image of the other architecture is refused before anything changes, in both
 * directions. One rescue only: aarch64 under TCG is the slowest VM in `npm test`, and the flow is the same one
 * rescue.test.ts covers in full on x86_64.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, targetArgs } from '../lib/cli.js';
import { hostSnapshot } from '../lib/host-snapshot.js';
import { addBackupKey, assertRescued } from '../lib/rescue-assertions.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';
import type { KeyPair } from '../lib/ssh.js';

const skip =
  (await qemuAvailable('aarch64')) && (await qemuAvailable('x86_64')) ? false : 'needs qemu-system-aarch64 and qemu-system-x86_64 (installed by .ci/run)';

/** Runs the CLI with the wrong architecture's image and checks it is refused (exit 4) with the host unchanged. */
async function assertRefused(server: TestServer, image: string, imageArch: string): Promise<void> {
  const before = await hostSnapshot(server);
  const result = await runCli(['--yes', '--image', image, ...targetArgs(server, 'admin')]);
  assert.equal(result.code, 4, `expected the refusal exit code 4, got ${result.code}:\n${result.stderr}`);
  assert.match(result.stderr, new RegExp(`the host is ${server.arch} but the image is for ${imageArch}`), 'the error names both architectures');
  assert.doesNotMatch(result.stderr, /✓ stage/, 'nothing was staged');
  assert.equal(await hostSnapshot(server), before, 'mounts, staging places, kexec state and network are exactly as before');
}

describe('emergency rescues an aarch64 QEMU server end to end (needs QEMU)', { skip, timeout: 1_200_000 }, () => {
  let x86Image: string;
  let armImage: string;
  let server: TestServer;
  let backupKey: KeyPair;
  let work: string;

  before(async () => {
    [x86Image, armImage] = [await buildTestImage(undefined, 'x86_64'), await buildTestImage(undefined, 'aarch64')];
    work = mkdtempSync(join(tmpdir(), 'emergency-e2e-aarch64-'));
    const scenario = defaultScenario();
    backupKey = await addBackupKey(scenario, work);
    server = await startServer(scenario, { arch: 'aarch64', timeoutMs: 240_000 });
  });
  after(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('refuses the x86_64 image on the aarch64 server before anything changes (exit 4)', async () => {
    // A first login as the sudo user, so that sshd's bookkeeping for it exists before the snapshot.
    assert.equal((await server.ssh('admin', 'true')).code, 0);
    await assertRefused(server, x86Image, 'x86_64');
  });

  it('rescues through a sudo user with the aarch64 image: same host keys, same root keys, network restored by MAC', async () => {
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const result = await runCli(['--yes', '--timeout', '480', '--image', armImage, ...targetArgs(server, 'admin')], { timeoutMs: 900_000 });
    await assertRescued(server, result, { oldBoot, backupKey });
  });
});

describe('emergency refuses the aarch64 image on an x86_64 server (needs QEMU)', { skip, timeout: 600_000 }, () => {
  let armImage: string;
  let server: TestServer;

  before(async () => {
    armImage = await buildTestImage(undefined, 'aarch64');
    server = await startServer(defaultScenario());
  });
  after(async () => {
    await server?.stop();
  });

  it('exit 4, host unchanged', async () => {
    assert.equal((await server.ssh('admin', 'true')).code, 0);
    await assertRefused(server, armImage, 'aarch64');
  });
});
