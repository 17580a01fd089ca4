/**
 * scripts/restore.sh's gateway check and last-chance DHCP in network namespaces (root): a static configuration whose
 * default gateway does not answer ARP gets a DHCP client on every NIC with carrier, the static address stays, and the
 * report says so; a gateway that answers means no DHCP. The add-only udhcpc hook keeps the static address and route
 * beside the leased ones. With several default gateways, each round probes them all at once, so that the check
 * does not grow with their number. DHCP is a stand-in `udhcpc` on PATH that records its arguments; nothing leaves
 * the namespaces. Runs under dash and busybox ash.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addNetns, cleanup, hasCommand, nsExec, ONE_NIC_NETWORK_SH, REPO, SCRIPT_SHELLS, scriptNetnsSkip, sh } from './netns.js';

const RESTORE = join(REPO, 'scripts/restore.sh');
const shells = SCRIPT_SHELLS;
const skip = scriptNetnsSkip();
const ping = skip ? undefined : realPing();
const needsPing = { skip: ping ? false : 'needs ping or busybox ping' };

const NETWORK_SH = ONE_NIC_NETWORK_SH;

/** Four default gateways on res0 that nothing answers (the wire namespace has none of these addresses). */
const DEAD_GATEWAYS = ['10.9.0.101', '10.9.0.102', '10.9.0.103', '10.9.0.104'];

/** network.sh: res0 at 10.9.0.5/24 with one default route per gateway, in this order (rising metrics). */
function gatewaysNetworkSh(gateways: string[]): string {
  const routes = gateways.map((gw, i) => `ip route add default via ${gw} dev res0 metric ${100 + i}\n`).join('');
  return `#!/bin/sh\nip link set res0 up\nip addr add 10.9.0.5/24 dev res0\n${routes}`;
}

/** The ping the stand-in runs to probe for real (the host's, else busybox's); undefined when there is neither. */
function realPing(): string | undefined {
  if (hasCommand('ping')) return sh('sh', ['-c', 'command -v ping']).trim();
  const applets = spawnSync('busybox', ['--list'], { encoding: 'utf8' });
  return applets.status === 0 && applets.stdout.split('\n').includes('ping') ? 'busybox ping' : undefined;
}

/**
 * Puts a `ping` stand-in into `dir`/bin (first on the test's PATH) that runs the real one and logs `start GATEWAY`
 * before and `end GATEWAY` after it (one appended write each): the log's order shows which probes overlapped.
 * Returns the log's path.
 */
function installLoggingPing(dir: string, real: string): string {
  const log = join(dir, 'ping.log');
  writeFileSync(join(dir, 'bin', 'ping'), `#!/bin/sh\nfor gw; do :; done\necho "start $gw" >>'${log}'\n${real} "$@"\necho "end $gw" >>'${log}'\n`);
  chmodSync(join(dir, 'bin', 'ping'), 0o755);
  return log;
}

describe('restore.sh: default gateway check and last-chance DHCP (root: network namespaces)', { skip, timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'emergency-last-chance-'));
  after(() => {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  /** A rescue namespace with one NIC stand-in (veth res0, its peer up in a wire namespace: carrier). */
  function setup(tag: string, gatewayAnswers: boolean) {
    const ns = addNetns(`lc-${tag}`);
    const wire = addNetns(`lcw-${tag}`);
    sh('ip', ['-n', ns, 'link', 'add', 'res0', 'address', '52:54:00:aa:00:01', 'type', 'veth', 'peer', 'name', 'w0', 'netns', wire]);
    sh('ip', ['-n', wire, 'link', 'set', 'w0', 'up']);
    if (gatewayAnswers) sh('ip', ['-n', wire, 'addr', 'add', '10.9.0.1/24', 'dev', 'w0']);
    const dir = join(work, tag);
    const data = join(dir, 'emergency');
    const bin = join(dir, 'bin');
    mkdirSync(data, { recursive: true });
    mkdirSync(bin);
    writeFileSync(join(data, 'network.sh'), NETWORK_SH);
    writeFileSync(join(data, 'restore.env'), 'hostname=t\nfallback_reboot_seconds=900\n');
    writeFileSync(join(bin, 'udhcpc'), '#!/bin/sh\nprintf "%s\\n" "$*" >>"$DHCP_LOG"\n');
    chmodSync(join(bin, 'udhcpc'), 0o755);
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      EMERGENCY_DIR: data,
      SSH_DIR: join(dir, 'ssh'),
      ROOT_SSH_DIR: join(dir, 'root-ssh'),
      RESTORE_LOG: join(dir, 'restore.log'),
      RESTORE_REPORT: join(dir, 'restore.report'),
      EMERGENCY_STATE_DIR: join(dir, 'state'),
      IDENTITY_ROOT: join(dir, 'identity'),
      GATEWAY_WAIT_S: '2',
      DHCP_LOG: join(dir, 'dhcp.log'),
    };
    return { ns, dir, env };
  }
  const report = (dir: string) => readFileSync(join(dir, 'restore.report'), 'utf8');
  /** The report says the gateway at 10.9.0.1 answered and the last chance was not needed; no DHCP client ran. */
  const assertGatewayAnswered = (text: string, dhcpLog: string) => {
    assert.match(text, /^step\tgateway\tok\tdefault gateway answers: 10\.9\.0\.1 on res0$/m);
    assert.match(text, /^step\tlast-chance-dhcp\tskipped\tnot needed: a default gateway answers$/m);
    assert.equal(existsSync(dhcpLog), false, 'no DHCP client started');
  };

  for (const shell of shells) {
    const name = shell.join(' ');
    it(`${name}: no gateway answers → DHCP on the NIC with carrier, the static address stays, the report says so`, () => {
      const { ns, dir, env } = setup(`dead-${shell.length}`, false);
      const r = nsExec(ns, [...shell, RESTORE], { env });
      assert.equal(r.status, 0, r.stderr);
      const text = report(dir);
      assert.match(text, /^step\tgateway\tfailed\tno default gateway answered in 2 rounds of probes \(([2-9]|[1-9]\d+) s\): 10\.9\.0\.1 res0/m);
      assert.match(text, /^step\tlast-chance-dhcp\tok\tlast chance: DHCP started on res0, next to the static addresses$/m);
      assert.match(text, /^done\t-\tfailed\t/m);
      assert.match(readFileSync(env.DHCP_LOG, 'utf8'), /-i res0 -s \S+last-chance\.udhcpc/);
      const addrs = nsExec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'res0']).stdout;
      assert.match(addrs, /inet 10\.9\.0\.5\/24/, 'the static address stays');
      assert.match(readFileSync(env.RESTORE_LOG, 'utf8'), /last chance: DHCP started on res0/, 'logged');
    });

    it(`${name}: the gateway answers ARP → no DHCP`, () => {
      const { ns, dir, env } = setup(`alive-${shell.length}`, true);
      const r = nsExec(ns, [...shell, RESTORE], { env });
      assert.equal(r.status, 0, r.stderr);
      assertGatewayAnswered(report(dir), env.DHCP_LOG);
    });

    it(`${name}: four dead default gateways → each round probes all four at once, the report names them all`, needsPing, (t) => {
      const { ns, dir, env } = setup(`four-${shell.length}`, false);
      writeFileSync(join(env.EMERGENCY_DIR, 'network.sh'), gatewaysNetworkSh(DEAD_GATEWAYS));
      const log = installLoggingPing(dir, ping!);
      const r = nsExec(ns, [...shell, RESTORE], { env });
      assert.equal(r.status, 0, r.stderr);
      const failed = report(dir).match(/^step\tgateway\tfailed\t(no default gateway answered in 2 rounds of probes \(\d+ s\): (.*))$/m);
      assert.ok(failed, report(dir));
      assert.deepEqual(
        failed[2].split(','),
        DEAD_GATEWAYS.map((gw) => `${gw} res0`),
      );
      // The seconds are shown, not asserted (a timing): 2 rounds of about 2 s each, as with one gateway.
      t.diagnostic(failed[1]);
      // Per round (GATEWAY_WAIT_S=2): every gateway's probe starts before any of them ends (they overlap), and the
      // next round starts after the last one ended. Probes in turn would alternate start, end, start, end.
      const events = readFileSync(log, 'utf8').trim().split('\n');
      const rounds = [events.slice(0, 8), events.slice(8)];
      assert.equal(events.length, 16, events.join('\n'));
      for (const round of rounds) {
        assert.deepEqual(
          round.slice(0, 4).sort(),
          DEAD_GATEWAYS.map((gw) => `start ${gw}`),
          events.join('\n'),
        );
        assert.deepEqual(
          round.slice(4).sort(),
          DEAD_GATEWAYS.map((gw) => `end ${gw}`),
          events.join('\n'),
        );
      }
      assert.match(report(dir), /^step\tlast-chance-dhcp\tok\tlast chance: DHCP started on res0, next to the static addresses$/m);
    });

    it(`${name}: three dead default gateways and one that answers ARP (the last) → it is found, no DHCP`, needsPing, () => {
      const { ns, dir, env } = setup(`mixed-${shell.length}`, true);
      writeFileSync(join(env.EMERGENCY_DIR, 'network.sh'), gatewaysNetworkSh([...DEAD_GATEWAYS.slice(0, 3), '10.9.0.1']));
      const log = installLoggingPing(dir, ping!);
      const r = nsExec(ns, [...shell, RESTORE], { env });
      assert.equal(r.status, 0, r.stderr);
      assertGatewayAnswered(report(dir), env.DHCP_LOG);
      // One round, all four probed.
      const starts = readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('start '))
        .sort();
      assert.deepEqual(starts, [...DEAD_GATEWAYS.slice(0, 3), '10.9.0.1'].map((gw) => `start ${gw}`).sort());
    });

    it(`${name}: the authorized-keys step counts root's keys as one number, also when there are none`, () => {
      for (const [tag, keys, count] of [
        ['keys2', '# a comment\nssh-ed25519 AAAA one\nssh-ed25519 AAAA two\n', '2'],
        ['keys0', '# only a comment\n', '0'],
      ] as const) {
        const { ns, dir, env } = setup(`${tag}-${shell.length}`, true);
        writeFileSync(join(env.EMERGENCY_DIR, 'authorized_keys'), keys);
        assert.equal(nsExec(ns, [...shell, RESTORE], { env }).status, 0);
        assert.match(report(dir), new RegExp(`^step\tauthorized-keys\tok\tauthorized keys for root: ${count}$`, 'm'), tag);
      }
    });
  }

  it('the udhcpc hook only adds: the static address and default route stay beside the leased ones', () => {
    const { ns, dir, env } = setup('hook', false);
    assert.equal(nsExec(ns, ['dash', RESTORE], { env }).status, 0);
    const hook = join(dir, 'state', 'last-chance.udhcpc');
    const lease = { ...env, interface: 'res0', ip: '10.9.0.77', mask: '24', router: '10.9.0.254' };
    const r = nsExec(ns, ['dash', hook, 'bound'], { env: lease });
    assert.equal(r.status, 0, r.stderr);
    const addrs = nsExec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'res0']).stdout;
    assert.match(addrs, /inet 10\.9\.0\.5\/24/);
    assert.match(addrs, /inet 10\.9\.0\.77\/24/);
    const routes = nsExec(ns, ['ip', '-4', 'route', 'show', 'default']).stdout;
    assert.match(routes, /default via 10\.9\.0\.1 dev res0/);
    assert.match(routes, /default via 10\.9\.0\.254 dev res0/);
  });
});
