/**
 * scripts/restore.sh's two phases in network namespaces (root), under dash and busybox ash: `keys` installs the host
 * keys and root's keys (private ones 0600 from the start, a wider file there before replaced) and touches neither the
 * network nor the report file, only its .tmp; `network` restores the network and moves the whole report into place,
 * counting phase 1's failed steps; the two phases give the report one run without an argument gives.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addNetns, cleanup, nsExec, ONE_NIC_NETWORK_SH, REPO, SCRIPT_SHELLS, scriptNetnsSkip, sh } from './netns.js';

const RESTORE = join(REPO, 'scripts/restore.sh');
const shells = SCRIPT_SHELLS;
const skip = scriptNetnsSkip();

const NETWORK_SH = ONE_NIC_NETWORK_SH;
const mode = (path: string) => statSync(path).mode & 0o777;
/** A report with the run's own directory replaced: a message may name a path (the log's). */
const normalized = (text: string, dir: string) => text.replaceAll(dir, 'DIR');

describe('restore.sh keys, then restore.sh network (root: network namespaces)', { skip, timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'emergency-phases-'));
  after(() => {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  /** A rescue namespace with one NIC stand-in whose gateway answers, and restore data with two host keys. */
  function setup(tag: string, { authorizedKeys = true } = {}) {
    const ns = addNetns(`ph-${tag}`);
    const wire = addNetns(`phw-${tag}`);
    sh('ip', ['-n', ns, 'link', 'add', 'res0', 'address', '52:54:00:aa:00:02', 'type', 'veth', 'peer', 'name', 'w0', 'netns', wire]);
    sh('ip', ['-n', wire, 'link', 'set', 'w0', 'up']);
    sh('ip', ['-n', wire, 'addr', 'add', '10.9.0.1/24', 'dev', 'w0']);
    const dir = join(work, tag);
    const data = join(dir, 'emergency');
    mkdirSync(join(data, 'host-keys'), { recursive: true });
    mkdirSync(join(data, 'dhcp-identity/files/var/lib/dhcpcd'), { recursive: true });
    for (const type of ['ed25519', 'rsa']) {
      writeFileSync(join(data, `host-keys/ssh_host_${type}_key`), `PRIVATE ${type}\n`, { mode: 0o600 });
      writeFileSync(join(data, `host-keys/ssh_host_${type}_key.pub`), `ssh-${type} PUBLIC\n`, { mode: 0o644 });
    }
    if (authorizedKeys) writeFileSync(join(data, 'authorized_keys'), 'ssh-ed25519 AAAA one\n# comment\nssh-ed25519 AAAA two');
    writeFileSync(join(data, 'dhcp-identity/files/var/lib/dhcpcd/duid'), 'DUID\n');
    writeFileSync(join(data, 'network.sh'), NETWORK_SH);
    writeFileSync(join(data, 'restore.env'), 'hostname=t\nfallback_reboot_seconds=900\n');
    const env = {
      ...process.env,
      EMERGENCY_DIR: data,
      SSH_DIR: join(dir, 'ssh'),
      ROOT_SSH_DIR: join(dir, 'root-ssh'),
      RESTORE_LOG: join(dir, 'restore.log'),
      RESTORE_REPORT: join(dir, 'restore.report'),
      EMERGENCY_STATE_DIR: join(dir, 'state'),
      IDENTITY_ROOT: join(dir, 'identity'),
      GATEWAY_WAIT_S: '2',
    };
    return { ns, dir, env };
  }
  const addresses = (ns: string) => nsExec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'res0']).stdout;

  for (const shell of shells) {
    const name = shell.join(' ');
    it(`${name}: keys installs the keys only; network restores the network and writes the whole report`, () => {
      const { ns, dir, env } = setup(`split-${shell.length}`);
      // A key file there before, readable by all: it must not keep that mode when the old key goes in.
      mkdirSync(env.SSH_DIR);
      writeFileSync(join(env.SSH_DIR, 'ssh_host_ed25519_key'), 'STALE\n', { mode: 0o644 });

      const keys = nsExec(ns, [...shell, RESTORE, 'keys'], { env });
      assert.equal(keys.status, 0, keys.stderr);
      for (const type of ['ed25519', 'rsa']) {
        const key = join(env.SSH_DIR, `ssh_host_${type}_key`);
        assert.equal(readFileSync(key, 'utf8'), `PRIVATE ${type}\n`);
        assert.equal(mode(key), 0o600, `${type}: the private key is 0600`);
        assert.equal(readFileSync(`${key}.pub`, 'utf8'), `ssh-${type} PUBLIC\n`);
        assert.equal(mode(`${key}.pub`), 0o644, `${type}: the public key is 0644`);
      }
      const authorized = join(env.ROOT_SSH_DIR, 'authorized_keys');
      assert.equal(readFileSync(authorized, 'utf8'), 'ssh-ed25519 AAAA one\n# comment\nssh-ed25519 AAAA two');
      assert.equal(mode(authorized), 0o600);
      assert.equal(mode(env.ROOT_SSH_DIR), 0o700);
      // The network phase's work is not done: no address, no identity, no report; the .tmp says it is running.
      assert.doesNotMatch(addresses(ns), /10\.9\.0\.5/, 'keys does not touch the network');
      assert.equal(existsSync(join(dir, 'identity/var/lib/dhcpcd/duid')), false, 'the DHCP identity is the network phase');
      assert.equal(existsSync(env.RESTORE_REPORT), false, 'no report until the network phase is done');
      assert.equal(
        readFileSync(`${env.RESTORE_REPORT}.tmp`, 'utf8'),
        'format\t1\t-\temergency restore report\n' +
          'step\thost-keys\tok\thost keys installed: 2\n' +
          'step\tauthorized-keys\tok\tauthorized keys for root: 2\n',
      );

      const network = nsExec(ns, [...shell, RESTORE, 'network'], { env });
      assert.equal(network.status, 0, network.stderr);
      assert.match(addresses(ns), /inet 10\.9\.0\.5\/24/);
      assert.equal(readFileSync(join(dir, 'identity/var/lib/dhcpcd/duid'), 'utf8'), 'DUID\n');
      assert.equal(existsSync(`${env.RESTORE_REPORT}.tmp`), false, 'the .tmp became the report');
      const report = readFileSync(env.RESTORE_REPORT, 'utf8').split('\n');
      assert.deepEqual(
        report.map((l) => l.split('\t').slice(0, 3).join(' ')),
        [
          'format 1 -',
          'step host-keys ok',
          'step authorized-keys ok',
          'step dhcp-identity ok',
          'step network ok',
          'step gateway ok',
          'step last-chance-dhcp skipped',
          'step fallback-reboot ok',
          'done - ok',
          '',
        ],
      );
    });

    it(`${name}: the two phases write the report one run without an argument writes, failed keys counted in done`, () => {
      const split = setup(`same-a-${shell.length}`, { authorizedKeys: false });
      assert.equal(nsExec(split.ns, [...shell, RESTORE, 'keys'], { env: split.env }).status, 0);
      assert.equal(nsExec(split.ns, [...shell, RESTORE, 'network'], { env: split.env }).status, 0);
      const whole = setup(`same-b-${shell.length}`, { authorizedKeys: false });
      assert.equal(nsExec(whole.ns, [...shell, RESTORE], { env: whole.env }).status, 0);
      const splitReport = normalized(readFileSync(split.env.RESTORE_REPORT, 'utf8'), split.dir);
      assert.equal(splitReport, normalized(readFileSync(whole.env.RESTORE_REPORT, 'utf8'), whole.dir));
      assert.match(splitReport, /^step\tauthorized-keys\tfailed\tno authorized_keys were packed/m);
      assert.match(splitReport, /^done\t-\tfailed\t1 failed step\(s\)\n$/m, "phase 1's failure counts in done");
    });

    it(`${name}: network alone begins the report itself; an unknown phase is refused`, () => {
      const { ns, env } = setup(`alone-${shell.length}`);
      assert.equal(nsExec(ns, [...shell, RESTORE, 'network'], { env }).status, 0);
      const report = readFileSync(env.RESTORE_REPORT, 'utf8');
      assert.match(report, /^format\t1\t-\temergency restore report\nstep\tdhcp-identity\tok\t/);
      assert.match(report, /^done\t-\tok\t0 failed step\(s\)\n$/m);
      const bad = nsExec(ns, [...shell, RESTORE, 'everything'], { env });
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /usage: restore\.sh \[keys\|network\]/);
    });
  }
});
