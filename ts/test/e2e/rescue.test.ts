/**
 * End to end (needs QEMU): rescue a QEMU test server built from Debian packages with the Nix-free test image,
 * through the real CLI, then check from outside what a sysadmin would: the rescue system runs, it presents the
 * same host keys, root accepts the expected keys (and not the forced-command one), and every address, route
 * and nameserver is back on the interface with the same MAC. Before that, --dry-run must change nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, targetArgs } from '../lib/cli.js';
import { HOST_SNAPSHOT } from '../lib/host-snapshot.js';
import { assertRescued } from '../lib/rescue-assertions.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';
import { makeKey, type KeyPair } from '../lib/ssh.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';

describe('emergency rescues a QEMU server end to end (needs QEMU)', { skip, timeout: 900_000 }, () => {
  let image: string;
  let server: TestServer;
  let backupKey: KeyPair;
  let work: string;

  before(async () => {
    image = await buildTestImage();
    work = mkdtempSync(join(tmpdir(), 'emergency-e2e-'));
    backupKey = await makeKey(join(work, 'backup'), 'ed25519', 'backup@nas');
    const scenario = defaultScenario();
    // A backup key bound to a forced command: it must not become a root login in the rescue system.
    scenario.users[0].extraAuthorizedKeys = [`command="/usr/bin/true",restrict ${backupKey.publicKey}`];
    server = await startServer(scenario);
  });
  after(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('--dry-run prints the plan and key summary, and changes nothing on the host', async () => {
    // A first login as the sudo user, so that sshd's bookkeeping for it exists before the snapshot.
    assert.equal((await server.ssh('admin', 'true')).code, 0);
    const before = await server.ssh('root', HOST_SNAPSHOT);
    assert.equal(before.code, 0, before.stderr);
    const result = await runCli(['--dry-run', '--dump-network', '--image', image, ...targetArgs(server, 'admin')], { cwd: work });
    assert.equal(result.code, 0, `dry run failed:\n${result.stderr}`);
    for (const nic of server.scenario.nics) assert.match(result.stdout, new RegExp(`${nic.name}: found by MAC ${nic.mac}`), 'the plan names each NIC by MAC');
    for (const key of Object.values(server.hostKeys)) {
      const fp = execFileSync('ssh-keygen', ['-lf', `${key.path}.pub`], { encoding: 'utf8' }).split(' ')[1];
      assert.ok(result.stdout.includes(fp), `host key fingerprint ${fp} in the summary`);
    }
    assert.match(result.stdout, /left out: \S+ backup@nas of admin/, 'the forced-command key is reported as left out');
    assert.doesNotMatch(result.stdout + result.stderr, /PRIVATE KEY/, 'no private key material is printed');
    assert.match(result.stderr, /dry run: nothing was changed/);
    // --dump-network keeps the original tool's formats, plus the raw capture.
    const ips = readFileSync(join(work, 'emergency_ips'), 'utf8');
    assert.match(ips, /^ens3;10\.0\.2\.15\/24;fec0::15\/64$/m);
    assert.match(readFileSync(join(work, 'emergency_routes'), 'utf8'), /^198\.51\.100\.0\/24;10\.0\.3\.2;enp0s4$/m);
    assert.deepEqual(readFileSync(join(work, 'emergency_nameservers'), 'utf8').trim().split('\n'), ['10.0.2.3', 'fec0::3']);
    assert.ok(JSON.parse(readFileSync(join(work, 'emergency_capture.json'), 'utf8')), 'raw capture is JSON');
    const after = await server.ssh('root', HOST_SNAPSHOT);
    assert.equal(after.stdout, before.stdout, 'mounts, staging places, kexec state and network are exactly as before');
  });

  it('rescues through a sudo user: same host keys, same root keys, network restored by MAC', async () => {
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const result = await runCli(['--yes', '--timeout', '240', '--image', image, ...targetArgs(server, 'admin')]);
    await assertRescued(server, result, { oldBoot, backupKey });
  });
});
