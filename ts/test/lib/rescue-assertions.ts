/**
 * What a sysadmin checks from outside after a rescue, as assertions shared by the end-to-end rescue tests of
 * every architecture (rescue.test.ts, rescue-aarch64.test.ts): the CLI's steps, the rescue system presenting
 * every old host key, root accepting the expected keys (and not a forced-command one), and every address,
 * route and nameserver back on the interface with the same MAC.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliResult } from './cli.js';
import { networkDifferences, parseNetworkState, READ_NETWORK } from './network-state.js';
import type { TestServer } from './server.js';
import type { ServerScenario } from './server-scenario.js';
import { makeKey, sshArgs, type KeyPair } from './ssh.js';

/**
 * Gives the scenario's first user a backup key bound to a forced command (made in `dir`): assertRescued checks it
 * did not become a root login in the rescue system.
 */
export async function addBackupKey(scenario: ServerScenario, dir: string): Promise<KeyPair> {
  const backupKey = await makeKey(join(dir, 'backup'), 'ed25519', 'backup@nas');
  scenario.users[0].extraAuthorizedKeys = [`command="/usr/bin/true",restrict ${backupKey.publicKey}`];
  return backupKey;
}

/** Asserts the rescue of `server` by `result` succeeded in full; `oldBoot` is the boot id before it. */
export async function assertRescued(server: TestServer, result: CliResult, opts: { oldBoot: string; backupKey: KeyPair }): Promise<void> {
  assert.equal(result.code, 0, `rescue failed:\n${result.stderr}\n--- serial ---\n${server.serialLog().split('\n').slice(-40).join('\n')}`);
  for (const step of ['connect', 'preflight', 'capture', 'plan', 'stage', 'kexec', 'wait']) {
    assert.match(result.stderr, new RegExp(`✓ ${step} \\d+\\.\\d s`), `step ${step} printed with its duration`);
  }
  const trips = Number(/(\d+) ssh round trip\(s\) before kexec/.exec(result.stderr)?.[1]);
  assert.ok(trips <= 4, `at most 4 round trips before kexec, got ${trips}`);

  // The same known_hosts, strictly checked, for every host key type the server had.
  for (const [type, key] of Object.entries(server.hostKeys)) {
    const keyType = readFileSync(`${key.path}.pub`, 'utf8').split(' ')[0];
    // An RSA key signs with SHA-2 (rsa-sha2-512); OpenSSH no longer offers SHA-1 `ssh-rsa` signatures.
    const algorithm = keyType === 'ssh-rsa' ? 'rsa-sha2-512' : keyType;
    const out = execFileSync(
      'ssh',
      [
        ...sshArgs({ port: server.port, knownHostsFile: server.knownHostsFile, identity: server.keys.root }),
        '-o',
        `HostKeyAlgorithms=${algorithm}`,
        'root@127.0.0.1',
        'cat /proc/cmdline',
      ],
      { encoding: 'utf8' },
    );
    assert.match(out, /emergency\.rescue=1/, `the rescue system answers with the old ${type} host key`);
  }
  const rescue = await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id; test -e /etc/emergency-rescue && echo rescue-marker; uname -m');
  assert.equal(rescue.code, 0, rescue.stderr);
  const [bootId, marker, machine] = rescue.stdout.trim().split('\n');
  assert.notEqual(bootId, opts.oldBoot, 'a new kernel runs');
  assert.equal(marker, 'rescue-marker');
  assert.equal(machine, server.arch, `the rescue kernel runs on the server's architecture (${server.arch})`);

  // Root accepts root's key and the sudo user's key, not the forced-command backup key.
  assert.equal((await server.ssh('root', 'true')).code, 0, "root's own key");
  const asAdminKey = execFileSync(
    'ssh',
    [...sshArgs({ port: server.port, knownHostsFile: server.knownHostsFile, identity: server.keys.admin }), 'root@127.0.0.1', 'id -u'],
    { encoding: 'utf8' },
  );
  assert.equal(asAdminKey.trim(), '0', "the sudo user's key logs in as root");
  let backupRefused = false;
  try {
    execFileSync('ssh', [...sshArgs({ port: server.port, knownHostsFile: server.knownHostsFile, identity: opts.backupKey.path }), 'root@127.0.0.1', 'true'], {
      stdio: 'pipe',
    });
  } catch (e) {
    backupRefused = /Permission denied/.test(String((e as { stderr: Buffer }).stderr));
  }
  assert.ok(backupRefused, 'the forced-command key is refused as root');

  const state = await server.ssh('root', READ_NETWORK);
  assert.equal(state.code, 0, state.stderr);
  const parsed = parseNetworkState(state.stdout);
  assert.deepEqual(networkDifferences(server.expected, parsed), [], 'every address, route and nameserver is back');
  const raRoutes = parsed.routes6.filter((r) => (r as { protocol?: string }).protocol === 'ra');
  assert.deepEqual(raRoutes, [], 'no routes from router advertisements: the old system ignored them');
  const oldNames = new Set(server.scenario.nics.map((n) => n.name));
  assert.ok(
    parsed.addrs.every((a) => !oldNames.has(a.ifname)),
    'the rescue kernel named the NICs differently, so matching by MAC was needed',
  );
}
