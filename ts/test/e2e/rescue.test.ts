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
import { RunRecordSchema } from '../../run-record.js';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, targetArgs } from '../lib/cli.js';
import { HOST_SNAPSHOT } from '../lib/host-snapshot.js';
import { addBackupKey, assertRescued } from '../lib/rescue-assertions.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';
import { sshArgs, type KeyPair } from '../lib/ssh.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';

describe('emergency rescues a QEMU server end to end (needs QEMU)', { skip, timeout: 900_000 }, () => {
  let image: string;
  let server: TestServer;
  let backupKey: KeyPair;
  let work: string;

  before(async () => {
    image = await buildTestImage();
    work = mkdtempSync(join(tmpdir(), 'emergency-e2e-'));
    const scenario = defaultScenario();
    backupKey = await addBackupKey(scenario, work);
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
    const result = await runCli(['--dry-run', '--dump-network', '--json', join(work, 'dry-run.json'), '--image', image, ...targetArgs(server, 'admin')], {
      cwd: work,
    });
    assert.equal(result.code, 0, `dry run failed:\n${result.stderr}`);
    // --json: the record validates and holds the host, every check, the plan and the step timings.
    const recordText = readFileSync(join(work, 'dry-run.json'), 'utf8');
    const record = RunRecordSchema.parse(JSON.parse(recordText));
    assert.deepEqual([record.mode, record.outcome, record.exitCode], ['dry-run', 'dry-run', 0]);
    assert.equal(record.host?.facts.hostname, server.scenario.hostname);
    assert.equal(record.host?.root?.mountpoint, '/');
    assert.equal(record.host?.hostKeys.filter((k) => k.fingerprint).length, Object.keys(server.hostKeys).length);
    assert.ok(
      record.checks.length >= 5 && record.checks.every((c) => c.status === 'pass' || c.status === 'warn'),
      JSON.stringify(record.checks.map((c) => [c.name, c.status])),
    );
    const planned = (record.plan?.interfaces as { name?: string; mac?: string }[] | undefined) ?? [];
    for (const nic of server.scenario.nics) assert.ok(JSON.stringify(planned).includes(nic.mac), `the plan has ${nic.mac}`);
    assert.deepEqual(record.steps.map((s) => s.name).slice(0, 2), ['connect', 'preflight']);
    assert.ok(record.steps.every((s) => s.ok && s.ms >= 0));
    assert.ok(record.roundTripsBeforeKexec! >= 2);
    for (const key of Object.values(server.hostKeys)) {
      const secret = readFileSync(key.path, 'utf8').split('\n').slice(1, -2).join('');
      for (let i = 0; i + 24 <= secret.length; i += 24)
        assert.ok(!recordText.includes(secret.slice(i, i + 24)), 'no piece of a private host key in the record');
    }
    assert.doesNotMatch(recordText, /PRIVATE KEY/);
    for (const nic of server.scenario.nics) assert.match(result.stdout, new RegExp(`${nic.name}: found by MAC ${nic.mac}`), 'the plan names each NIC by MAC');
    for (const key of Object.values(server.hostKeys)) {
      const fp = execFileSync('ssh-keygen', ['-lf', `${key.path}.pub`], { encoding: 'utf8' }).split(' ')[1];
      assert.ok(result.stdout.includes(fp), `host key fingerprint ${fp} in the summary`);
    }
    assert.match(result.stdout, /left out: \S+ backup@nas of admin/, 'the forced-command key is reported as left out');
    assert.doesNotMatch(result.stdout + result.stderr, /PRIVATE KEY/, 'no private key material is printed');
    assert.match(result.stderr, /dry run: nothing was changed/);
    // Every check green (issue 9): both virtio NICs driven by the image, the operator's path restored, no warnings.
    assert.match(result.stdout, /NIC ens3 {2}virtio:d00000001v00001AF4 {2}virtio_net, a loadable module on the host {2}image: virtio_net$/m);
    assert.match(result.stdout, /NIC enp0s4 {2}virtio:d00000001v00001AF4 {2}virtio_net, a loadable module on the host {2}image: virtio_net$/m);
    assert.match(result.stdout, /operator 10\.0\.2\.2 → 10\.0\.2\.15 on ens3; route back: 10\.0\.2\.2 dev ens3/);
    assert.doesNotMatch(result.stderr, /nic-driver|nic-firmware|operator-path|lockdown/, 'no check warns');
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
    const recordFile = join(work, 'rescue.json');
    const result = await runCli(['--yes', '--timeout', '240', '--json', recordFile, '--image', image, ...targetArgs(server, 'admin')]);
    // The record is written however the run ended: check it first, so a failed rescue still shows it validates.
    const record = RunRecordSchema.parse(JSON.parse(readFileSync(recordFile, 'utf8')));
    assert.equal(record.exitCode, result.code);
    await assertRescued(server, result, { oldBoot, backupKey });
    assert.equal(record.outcome, 'rescued');
    assert.deepEqual(
      record.steps.map((s) => s.name),
      ['connect', 'preflight', 'capture', 'plan', 'checks', 'stage', 'kexec', 'wait'],
    );
    assert.match(record.rescue?.summary ?? '', /^old root: {2}root \(tmpfs/m, 'the record carries the rescue summary');
    // The restore report as the wait step read it: the fallback confirmed by the CLI, restore.sh's steps ok.
    const restore = record.restoreReport as
      | { fallback?: { fallback_state?: string }; report?: { result: string; steps: { name: string; status: string }[] } }
      | undefined;
    assert.equal(restore?.fallback?.fallback_state, 'confirmed', JSON.stringify(restore));
    assert.equal(restore?.report?.result, 'ok', JSON.stringify(restore?.report));
    assert.ok(
      restore?.report?.steps.some((l) => l.name === 'network' && l.status === 'ok'),
      JSON.stringify(restore?.report?.steps),
    );
    assert.equal(record.roundTripsBeforeKexec, Number(/(\d+) ssh round trip\(s\) before kexec/.exec(result.stderr)?.[1]));
    // The CLI prints the rescue's summary: the old root as preflight saw it (the test server's / is a tmpfs).
    assert.match(result.stdout, /^emergency rescue system for \S+: running from RAM/m, 'the CLI prints the summary');
    assert.match(result.stdout, /^old root: {2}root \(tmpfs, rw/m, "the old root's device and type");
    // ... with the restore report's steps, the last-chance DHCP among them (not needed: slirp's gateway answers) ...
    assert.match(
      result.stdout,
      /^restore:\n {2}ok {7}host-keys: host keys installed: \d+\n {2}ok {7}authorized-keys: authorized keys for root: [1-9]\d*\n(.*\n)*? {2}ok {7}network: network restored\n(.*\n)*? {2}skipped {2}last-chance-dhcp: not needed: a default gateway answers\n/m,
      'the restore report in the summary',
    );
    // ... and it is the login banner, byte for byte: the banner script and the CLI render the same data.
    const banner = await server.ssh('root', 'cat /run/emergency/banner');
    assert.equal(banner.code, 0, banner.stderr);
    assert.match(banner.stdout, /^restore:$/m);
    assert.ok(result.stdout.includes(banner.stdout), `the CLI printed the banner:\n--- CLI ---\n${result.stdout}--- banner ---\n${banner.stdout}`);
    assert.equal(record.rescue?.summary, banner.stdout, 'the record carries the same summary');
    // The login command it prints last works as printed: the CLI's ssh settings, root instead of the sudo user.
    const login = /^The rescue system is up: (ssh .*)$/m.exec(result.stdout)?.[1];
    assert.ok(login?.endsWith(' root@127.0.0.1'), `the login command: ${login}`);
    assert.match(execFileSync('sh', ['-c', `${login} 'id -u; cat /proc/cmdline'`], { encoding: 'utf8' }), /^0\n.*emergency\.rescue=1/s);
    assert.doesNotMatch(result.stderr, /nic-driver|nic-firmware|operator-path|lockdown/, 'every check green');
  });

  it('greets an interactive root login with the banner: host, restore steps, old root and its first command, how to leave', async () => {
    const hostname = (await server.ssh('root', 'sed -n s/^hostname=//p /emergency/restore.env')).stdout.trim();
    // -tt and no command: sshd starts a login shell on a terminal, as for an operator typing `ssh root@host`.
    const login = execFileSync(
      'ssh',
      [...sshArgs({ port: server.port, knownHostsFile: server.knownHostsFile, identity: server.keys.root }), '-tt', 'root@127.0.0.1'],
      {
        input: 'exit\n',
        encoding: 'utf8',
      },
    ).replace(/\r\n/g, '\n');
    assert.ok(hostname, 'restore.env names the old host');
    assert.match(login, new RegExp(`^emergency rescue system for ${hostname}: running from RAM`, 'm'));
    assert.match(
      login,
      /^restore:\n {2}ok {7}host-keys: host keys installed: \d+\n {2}ok {7}authorized-keys: authorized keys for root: [1-9]\d*\n(.*\n)*? {2}ok {7}network: network restored/m,
      'each restore step and its result',
    );
    assert.match(login, /^old root: {2}root \(tmpfs, rw[^)]*\)$/m, "the old root's device, type and options");
    assert.match(login, /^ {11}the old root was tmpfs \(root\), not a disk file system: nothing to check there/m, 'the first-command line for a tmpfs root');
    assert.match(login, /^to leave: {2}reboot {3}\(boots the installed system/m);
    // A command over ssh without a terminal is no login: it prints only its own output.
    const plain = await server.ssh('root', 'echo just-this');
    assert.equal(plain.stdout, 'just-this\n');
  });
});
