/**
 * scripts/restore.sh's gateway check and last-chance DHCP in network namespaces (root): a static configuration whose
 * default gateway does not answer ARP gets a DHCP client on every NIC with carrier, the static address stays, and the
 * report says so; a gateway that answers means no DHCP. The add-only udhcpc hook keeps the static address and route
 * beside the leased ones. DHCP is a stand-in `udhcpc` on PATH that records its arguments; nothing leaves the
 * namespaces. Runs under dash and busybox ash.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addNetns, cleanup, nsExec, ONE_NIC_NETWORK_SH, REPO, SCRIPT_SHELLS, scriptNetnsSkip, sh } from './netns.js';

const RESTORE = join(REPO, 'scripts/restore.sh');
const shells = SCRIPT_SHELLS;
const skip = scriptNetnsSkip();

const NETWORK_SH = ONE_NIC_NETWORK_SH;

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
      const text = report(dir);
      assert.match(text, /^step\tgateway\tok\tdefault gateway answers: 10\.9\.0\.1 on res0$/m);
      assert.match(text, /^step\tlast-chance-dhcp\tskipped\tnot needed: a default gateway answers$/m);
      assert.equal(existsSync(env.DHCP_LOG), false, 'no DHCP client started');
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
