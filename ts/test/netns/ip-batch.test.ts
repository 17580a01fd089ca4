/**
 * network.sh's ip steps in one `ip -force -batch` (scripts/network-lib.sh ip_step, ip_flush), run for real in a
 * network namespace (root) under dash and busybox ash: failed steps inside a batch are reported with ip's own
 * message and the steps after them still run; a step ip's batch parser exits on, and a word it cannot carry, are
 * handled; the report is the one of one `ip` per step (EMERGENCY_IP_BATCH=no) and of busybox's ip, which has no
 * -batch. A stand-in `ip` on PATH logs every run before handing over to the real one, to count the forks.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { addNetns, cleanup, REPO, SCRIPT_SHELLS, scriptNetnsSkip, sh } from './netns.js';

const shells = SCRIPT_SHELLS;
const realIp = spawnSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).stdout.trim();
const busyboxIp = spawnSync('busybox', ['ip', 'help'], { encoding: 'utf8' }).stderr?.includes('Usage: ip') ?? false;
const skip = scriptNetnsSkip() || (!realIp ? 'needs iproute2' : false);

const lib = readFileSync(join(REPO, 'scripts/network-lib.sh'), 'utf8');
const HELPERS = lib.slice(lib.search(/^set -u$/m));

// Steps as render.ts writes them, against one NIC stand-in (res0). The comments say what ip makes of each.
const STEPS = `
ip_step 'bring up lo' link set dev lo up
ip_step 'address 10.9.0.1/24 on res0' addr replace 10.9.0.1/24 dev res0
# The kernel refuses it (no route to the gateway): ip reports it and, with -force, reads on.
ip_step 'route 198.51.100.0/24 via 10.99.0.1' route replace 198.51.100.0/24 via 10.99.0.1 dev res0
ip_step 'MTU 99999999 on res0' link set dev res0 mtu 99999999
ip_step 'bring up res0' link set dev res0 up
# ip's own parser exits on it, ending the batch: the steps after it go in a new one.
ip_step 'route via bogus' route replace 203.0.113.0/24 via bogus dev res0
ip_step 'address 10.9.0.2/24 on res0' addr replace 10.9.0.2/24 dev res0
# A blank inside a word: ip's batch parser would split it, so the step runs on its own.
ip_step 'address 10.9.0.3/24 labelled' addr replace 10.9.0.3/24 dev res0 label 'res0 x'
ip_step 'route default via 10.9.0.254' route replace 0.0.0.0/0 via 10.9.0.254 dev res0
step 'a step that is no ip step' true
ip_step 'route -6 default via fe80::1' route replace ::/0 via fe80::1 dev res0
ip_flush
say "done: $failures failed step(s)"
exit "$failures"
`;

/** The report lines of the steps, in order, as `ok DESC` / `FAILED DESC`, without ip's messages. */
const outcomes = (stdout: string) =>
  stdout
    .split('\n')
    .map((l) => /^emergency-network: (ok|FAILED): ([^:]+)/.exec(l))
    .filter((m) => m !== null)
    .map((m) => `${m[1]} ${m[2]}`);

const EXPECTED_OUTCOMES = [
  'ok bring up lo',
  'ok address 10.9.0.1/24 on res0',
  'FAILED route 198.51.100.0/24 via 10.99.0.1',
  'FAILED MTU 99999999 on res0',
  'ok bring up res0',
  'FAILED route via bogus',
  'ok address 10.9.0.2/24 on res0',
  'ok address 10.9.0.3/24 labelled',
  'ok route default via 10.9.0.254',
  'ok a step that is no ip step',
  'ok route -6 default via fe80',
];

describe('network.sh: ip steps in one ip -batch (root: network namespaces)', { skip, timeout: 120_000 }, () => {
  const work = mkdtempSync(join(tmpdir(), 'emergency-ip-batch-'));
  const script = join(work, 'network.sh');
  writeFileSync(script, `#!/bin/sh\n${HELPERS}\n${STEPS}`);
  after(() => {
    cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  let runs = 0;
  /** Runs the steps in a fresh namespace with `ip` = a logging stand-in for `target`; returns output, ip runs, state. */
  function run(shell: string[], target: string, env: Record<string, string> = {}) {
    const tag = `b${++runs}`;
    const ns = addNetns(tag);
    const wire = addNetns(`${tag}w`);
    sh('ip', ['-n', ns, 'link', 'add', 'res0', 'address', '52:54:00:aa:00:02', 'type', 'veth', 'peer', 'name', 'w0', 'netns', wire]);
    sh('ip', ['-n', wire, 'link', 'set', 'w0', 'up']);
    const bin = join(work, tag);
    mkdirSync(bin);
    writeFileSync(join(bin, 'ip'), `#!/bin/sh\nprintf '%s\\n' "$*" >>"$IP_LOG"\nexec ${target} "$@"\n`);
    chmodSync(join(bin, 'ip'), 0o755);
    const log = join(bin, 'ip.log');
    writeFileSync(log, '');
    // The real ip runs `ip netns exec` (nsExec would find the stand-in on this PATH).
    const r = spawnSync(realIp, ['netns', 'exec', ns, ...shell, script], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, EMERGENCY_CONSOLE: '/dev/null', IP_LOG: log, ...env },
    });
    const ipRuns = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    const addresses = sh('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'res0']);
    const routes = sh('ip', ['-n', ns, 'route', 'show', 'table', 'main']) + sh('ip', ['-n', ns, '-6', 'route', 'show', 'default']);
    return { ...r, ipRuns, addresses, routes };
  }

  for (const shell of shells) {
    const name = shell.join(' ');
    test(`${name}: failed steps in a batch say ip's message, the steps after them run; the report is that of one ip per step`, () => {
      const batch = run(shell, realIp);
      assert.equal(batch.status, 3, `exit status: the 3 failed steps\n${batch.stdout}${batch.stderr}`);
      assert.equal(batch.stderr, '', 'nothing leaks to stderr');
      assert.deepEqual(outcomes(batch.stdout), EXPECTED_OUTCOMES, batch.stdout);
      // ip's own words, each on its step's line, not its neighbour's (iproute2: `Error: ...`; older: RTNETLINK ...).
      for (const desc of ['route 198.51.100.0/24 via 10.99.0.1', 'MTU 99999999 on res0']) {
        assert.match(batch.stdout, new RegExp(`^emergency-network: FAILED: ${desc.replace(/\./g, '\\.')}: (Error: |RTNETLINK answers: )\\S`, 'm'));
      }
      assert.match(batch.stdout, /^emergency-network: FAILED: route via bogus: .*"bogus"/m, 'the message ip exited with');
      assert.match(batch.stdout, /^emergency-network: done: 3 failed step\(s\)$/m);
      // The steps after the failures did their work.
      assert.match(batch.addresses, /inet 10\.9\.0\.2\/24 /);
      assert.match(batch.addresses, /inet 10\.9\.0\.3\/24 .* res0 x/);
      assert.match(batch.routes, /^default via 10\.9\.0\.254 dev res0/m);
      assert.match(batch.routes, /^default via fe80::1 dev res0/m);
      // Batches: up to the step ip exits on; the one step left before the step with the blank; that step on its
      // own; the route before the non-ip step; the route after it. Ten forks of ip without the batch.
      const BATCH = '-force -batch -';
      assert.deepEqual(batch.ipRuns, [BATCH, BATCH, 'addr replace 10.9.0.3/24 dev res0 label res0 x', BATCH, BATCH]);

      const single = run(shell, realIp, { EMERGENCY_IP_BATCH: 'no' });
      assert.equal(single.status, 3);
      assert.equal(single.stdout, batch.stdout, 'the same report, message for message');
      assert.equal(single.ipRuns.length, 10, 'one ip per ip step');
      assert.ok(!single.ipRuns.some((a) => a.includes('-batch')), 'never -batch');
      assert.equal(single.addresses, batch.addresses);
      assert.equal(single.routes, batch.routes);
    });

    test(`${name}: busybox's ip (no -batch): found out on the first batch, then one ip per step, same outcomes`, {
      skip: !busyboxIp && 'busybox has no ip applet',
    }, () => {
      const r = run(shell, 'busybox ip');
      assert.deepEqual(outcomes(r.stdout), EXPECTED_OUTCOMES, r.stdout);
      assert.equal(r.status, 3);
      assert.equal(r.ipRuns[0], '-force -batch -', 'one try');
      assert.equal(r.ipRuns.length, 11, 'then each of the 10 ip steps on its own');
      assert.ok(!r.ipRuns.slice(1).some((a) => a.includes('-batch')), 'no second try');
      assert.match(r.addresses, /inet 10\.9\.0\.2\/24 /);
      assert.match(r.routes, /^default via 10\.9\.0\.254 dev res0/m);
    });
  }
});
