/**
 * Round trip through real network namespaces (needs root): configure a case in one namespace, capture it with
 * scripts/capture-network.sh, plan and render the restore script, run that script twice under dash and under
 * busybox ash in fresh namespaces whose NICs have the same MACs under other names, and compare the states. Each
 * run is made twice: with the ip steps batched (the default) and with one ip per step (EMERGENCY_IP_BATCH=no, as
 * with an ip without -batch); both must give the same state and the same report.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseScriptOutput } from '../../sections.js';
import { parseNetworkCapture } from '../../network/capture.js';
import { planNetwork } from '../../network/plan.js';
import { renderRestoreScript } from '../../network/render.js';
import { CASES } from './cases.js';
import { buildOld, buildRescue, captureIn, cleanup, deleteNetns, hasCommand, isRoot, kernelSupports, normalizedState, nsExec } from './netns.js';

const SHELLS: { name: string; argv: string[] }[] = [
  { name: 'dash', argv: ['dash'] },
  { name: 'busybox ash', argv: ['busybox', 'ash'] },
];
const MODES: { name: string; env: Record<string, string> }[] = [
  { name: 'ip -batch', env: {} },
  { name: 'one ip per step', env: { EMERGENCY_IP_BATCH: 'no' } },
];

function whyNot(needs: string[] = []): string | false {
  if (!isRoot()) return 'needs root (ip netns add); run the suite as root';
  for (const kind of needs) {
    if (!kernelSupports(kind)) return `this kernel cannot create ${kind} links (module missing)`;
  }
  return false;
}

describe('network round trip through namespaces', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'emergency-netns-'));
    // A DHCP client stand-in: records that it was started, talks to nobody.
    writeFileSync(join(dir, 'dhcpcd'), '#!/bin/sh\nprintf "%s\\n" "$*" >>"$DHCP_LOG"\n');
    chmodSync(join(dir, 'dhcpcd'), 0o755);
  });
  after(() => {
    cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a missing NIC is one failed step: the script goes on, and its exit status counts it', { skip: whyNot() }, () => {
    const c = CASES.find((x) => x.name === 'hetzner-dedicated')!;
    const old = buildOld(c);
    const capture = parseNetworkCapture(parseScriptOutput(captureIn(old.ns, c)));
    // As on a real server: a NIC without a link kind is required (a veth would be optional).
    for (const l of capture.links) if (l.linkinfo?.info_kind === 'veth') delete l.linkinfo;
    const script = join(dir, 'missing-nic.sh');
    writeFileSync(script, renderRestoreScript(planNetwork(capture)));
    const rescue = buildRescue({ ...c, nics: [] }, 'missing');
    const work = mkdtempSync(join(dir, 'missing-'));
    const env = { ...process.env, EMERGENCY_CONSOLE: '/dev/null', RESOLV_CONF: join(work, 'resolv.conf'), EMERGENCY_STATE_DIR: work, EMERGENCY_NIC_WAIT: '1' };
    for (const shell of SHELLS.filter((s) => hasCommand(s.argv[0]))) {
      const reports = MODES.map((mode) => {
        const r = nsExec(rescue.ns, [...shell.argv, script], { env: { ...env, ...mode.env } });
        const what = `${shell.name}, ${mode.name}`;
        assert.equal(r.status, 1, `${what}: exit status is the number of failed steps\n${r.stdout}`);
        assert.match(r.stdout, /FAILED: no interface has MAC 52:54:00:12:34:02 \(was enp0s31f6\)/);
        assert.match(r.stdout, /skipped: route default via 203\.0\.113\.65 dev enp0s31f6 onlink \(needs enp0s31f6\)/);
        // Queued ip steps run before anything is said: `ok: bring up lo` comes before the first skip.
        assert.ok(r.stdout.indexOf('ok: bring up lo') < r.stdout.indexOf('skipped: MTU'), `${what}: in step order\n${r.stdout}`);
        assert.match(r.stdout, /done: 1 failed step\(s\)/);
        assert.match(readFileSync(env.RESOLV_CONF, 'utf8'), /^nameserver 185\.12\.64\.1$/m, 'later steps still ran');
        return r.stdout;
      });
      assert.equal(reports[0], reports[1], `${shell.name}: the same report either way`);
    }
  });

  for (const c of CASES) {
    test(c.name, { skip: whyNot(c.needs) }, (t) => {
      // Each run's report by shell and run, to compare the two modes.
      const reports = new Map<string, string>();
      const old = buildOld(c);
      const expected = normalizedState(old.ns);
      const capture = parseNetworkCapture(parseScriptOutput(captureIn(old.ns, c)));
      const plan = planNetwork(capture);
      const script = join(dir, `${c.name}.sh`);
      writeFileSync(script, renderRestoreScript(plan));
      deleteNetns(old.ns);
      deleteNetns(old.wire);

      for (const [shell, mode] of SHELLS.flatMap((s) => MODES.map((m) => [s, m] as const))) {
        if (!hasCommand(shell.argv[0])) {
          t.diagnostic(`${shell.name} is not installed: not run under it`);
          continue;
        }
        const what = `${shell.name}, ${mode.name}`;
        const rescue = buildRescue(c, shell.argv[0]);
        const work = mkdtempSync(join(dir, `${c.name}-`));
        const env = {
          ...process.env,
          PATH: `${dir}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
          EMERGENCY_CONSOLE: '/dev/null',
          RESOLV_CONF: join(work, 'resolv.conf'),
          EMERGENCY_STATE_DIR: join(work, 'state'),
          DHCP_LOG: join(work, 'dhcp.log'),
          ...mode.env,
        };
        for (const run of ['first', 'second'] as const) {
          const r = nsExec(rescue.ns, [...shell.argv, script], { env });
          assert.equal(r.status, 0, `${what}, ${run} run: exit ${r.status}\n${r.stdout}${r.stderr}`);
          assert.deepEqual(normalizedState(rescue.ns), expected, `${what}, ${run} run: state differs\n${r.stdout}`);
          const key = `${shell.name} ${run}`;
          const earlier = reports.get(key);
          if (earlier === undefined) reports.set(key, r.stdout);
          else assert.equal(r.stdout, earlier, `${what}, ${run} run: the report of the other mode`);
        }

        if (plan.dns) {
          const written = readFileSync(env.RESOLV_CONF, 'utf8');
          for (const ns of plan.dns.nameservers) assert.match(written, new RegExp(`^nameserver ${ns}$`, 'm'));
        }
        const dhcp = plan.interfaces.filter((i) => i.dhcp4);
        if (dhcp.length > 0) {
          // Started once in spite of two runs, on the interface that has the MAC.
          const log = readFileSync(env.DHCP_LOG, 'utf8').trim().split('\n');
          assert.equal(log.length, dhcp.length, `DHCP client starts: ${log.join(' | ')}`);
        } else {
          assert.equal(existsSync(env.DHCP_LOG), false, 'no DHCP client may be started for a static setup');
        }
        for (const i of plan.interfaces.filter((x) => x.acceptRa)) {
          const nic = c.nics.findIndex((n) => n.mac === i.mac);
          const name = c.nics[nic].rescueName ?? `res${nic}`;
          const ra = nsExec(rescue.ns, ['cat', `/proc/sys/net/ipv6/conf/${name}/accept_ra`]).stdout.trim();
          assert.equal(ra, '2', `accept_ra on ${name} (was ${i.name})`);
        }
        deleteNetns(rescue.ns);
        deleteNetns(rescue.wire);
      }
    });
  }
});
