/**
 * End to end (needs QEMU): a server whose every default gateway is dead (deadGatewayScenario: IPv4 via 10.0.2.99,
 * IPv6 via fe80::99, on-link addresses slirp never answers), rescued through the real CLI. The rescue restores that
 * configuration as it was, finds no gateway answering, and starts the last-chance DHCP next to the static
 * addresses; that network phase outlasts the probe's wait for the report (REPORT_WAIT_S), so the CLI confirms the
 * fallback, says it waits for the report, reads it in a second ssh run (LATE_REPORT) and prints the summary with
 * what the restore did. The operator reaches the rescue on-link (from 10.0.2.2) all along.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LATE_REPORT_WAIT_S } from '../../boundary/rescue.js';
import { RunRecordSchema } from '../../run-record.js';
import { buildTestImage } from '../../test-image/build.js';
import { runCli, targetArgs } from '../lib/cli.js';
import { addBackupKey, assertRescued } from '../lib/rescue-assertions.js';
import { deadGatewayScenario } from '../lib/server-scenario.js';
import { qemuAvailable, startServer, type TestServer } from '../lib/server.js';
import type { KeyPair } from '../lib/ssh.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';

/**
 * Pings each address once from `dev`, then prints its neighbour entry on one line (`ADDRESS ENTRY`, the entry empty
 * when there is none): what restore.sh's gateway check looks at.
 */
const neighbours = (dev: string, addresses: string[]) =>
  addresses.map((a) => `busybox ping -c 1 -W 1 -I ${dev} ${a} >/dev/null 2>&1; echo "${a} $(ip neigh show to ${a} dev ${dev} | tr '\\n' ' ')"`).join('; ');
/** The neighbour states restore.sh counts as an answer (neighbour_answered). */
const ANSWERED = /\b(REACHABLE|STALE|DELAY|PROBE|PERMANENT)\b/;
/** The line `neighbours` printed for `address`. */
const entry = (stdout: string, address: string) => stdout.split('\n').find((l) => l.startsWith(`${address} `)) ?? '';

describe('emergency rescues a server whose default gateways never answer (needs QEMU)', { skip, timeout: 600_000 }, () => {
  let image: string;
  let server: TestServer;
  let backupKey: KeyPair;
  let work: string;

  before(async () => {
    image = await buildTestImage();
    work = mkdtempSync(join(tmpdir(), 'emergency-dead-gateway-'));
    const scenario = deadGatewayScenario();
    backupKey = await addBackupKey(scenario, work);
    server = await startServer(scenario);
  });
  after(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the old system: both default gateways are dead, slirp answers for its own 10.0.2.2, the operator is on-link', async () => {
    const r = await server.ssh(
      'root',
      `${neighbours('ens3', ['10.0.2.99', 'fe80::99', '10.0.2.2', 'fe80::2'])}; ip route get 10.0.2.2; echo @@; ip -6 route show default`,
    );
    assert.equal(r.code, 0, r.stderr);
    // A neighbour that never answered is INCOMPLETE or FAILED (or gone); 10.0.2.2 answering shows the probe works.
    assert.doesNotMatch(entry(r.stdout, '10.0.2.99'), ANSWERED, `10.0.2.99 answers no ARP:\n${r.stdout}`);
    assert.doesNotMatch(entry(r.stdout, 'fe80::99'), ANSWERED, `fe80::99 answers no neighbour solicitation:\n${r.stdout}`);
    assert.match(entry(r.stdout, '10.0.2.2'), ANSWERED, `slirp's own address answers (the check can tell):\n${r.stdout}`);
    assert.match(entry(r.stdout, 'fe80::2'), ANSWERED, `slirp's own link-local address answers:\n${r.stdout}`);
    // No live default from router advertisements beside the dead one: the old system has only what the scenario set.
    assert.deepEqual(
      r.stdout
        .split('@@\n')[1]
        .trim()
        .split('\n')
        .map((l) => l.trim().split(' ').slice(0, 5).join(' ')),
      ['default via fe80::99 dev ens3'],
    );
    assert.match(r.stdout, /^10\.0\.2\.2 dev ens3 src 10\.0\.2\.15/m, 'the way back to the operator is the connected route, no gateway');
  });

  it('rescues: the gateway check fails, the last-chance DHCP starts, the CLI waits for the late report and prints it', async () => {
    const oldBoot = (await server.ssh('root', 'cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    const recordFile = join(work, 'rescue.json');
    const started = Date.now();
    const result = await runCli(['--yes', '--timeout', '240', '--json', recordFile, '--image', image, ...targetArgs(server, 'admin')]);
    const rescueMs = Date.now() - started;
    const output = `--- stderr ---\n${result.stderr}--- stdout ---\n${result.stdout}--- serial ---\n${server.serialLog().split('\n').slice(-40).join('\n')}`;
    // A failed restore step does not fail the run: the rescue is up and reachable, the failure is a warning and in
    // the summary (and the record's report). Exit 0, as for any rescue (README "Exit codes").
    assert.equal(result.code, 0, output);
    const record = RunRecordSchema.parse(JSON.parse(readFileSync(recordFile, 'utf8')));
    assert.deepEqual([record.outcome, record.exitCode], ['rescued', 0]);

    // The order on stderr: answered, confirmed, then the wait for the report still being written. The network phase
    // runs beside sshd and ends 21–28 s after sshd's start here (its gateway check 18–22 s of it): the probe would
    // have to come 15 s or more after sshd's start for its own 6 s wait to see the report.
    assert.match(
      result.stderr,
      new RegExp(
        `rescue system answers [\\d.]+ s after kexec.*\\n(.*\\n)*?.*fallback reboot confirmed [\\d.]+ s after kexec.*\\n(.*\\n)*?` +
          `.*the restore is still running on the rescue system; waiting up to ${LATE_REPORT_WAIT_S} s for its report\\n`,
      ),
      output,
    );
    // The late report's warnings: the gateway that failed (both dead ones named) and what the last chance did.
    assert.match(
      result.stderr,
      /warning: restore: gateway failed: no default gateway answered in 8 rounds of probes \(\d+ s\): 10\.0\.2\.99 eth0,fe80::99 eth0\n/,
      output,
    );
    assert.match(result.stderr, /warning: restore: no default gateway answered, so DHCP started on eth0, next to the static addresses/, output);
    assert.doesNotMatch(result.stderr, /could not read the restore report|the restore was still running after/, output);

    // The summary has the restore's result, not "still running": network ok, gateway failed, last chance ok.
    assert.match(
      result.stdout,
      new RegExp(
        [
          '^restore:',
          ' {2}ok {7}host-keys: host keys installed: 3',
          ' {2}ok {7}authorized-keys: authorized keys for root: [1-9]\\d*',
          '(.*\\n)*? {2}ok {7}network: network restored',
          ' {2}failed {3}gateway: no default gateway answered in 8 rounds of probes \\(\\d+ s\\): 10\\.0\\.2\\.99 eth0,fe80::99 eth0',
          ' {2}ok {7}last-chance-dhcp: last chance: DHCP started on eth0, next to the static addresses',
          ' {2}ok {7}fallback-reboot: armed: reboots into the installed system unless confirmed within 900 s\\n',
        ].join('\\n'),
        'm',
      ),
      output,
    );
    assert.doesNotMatch(result.stdout, /still running/, output);
    const restore = record.restoreReport as { fallback?: { fallback_state?: string; fallback_confirmed_by?: string }; report?: { result: string } } | undefined;
    assert.deepEqual([restore?.fallback?.fallback_state, restore?.fallback?.fallback_confirmed_by], ['confirmed', 'cli'], JSON.stringify(restore));
    assert.equal(restore?.report?.result, 'failed', 'the report counts the gateway as a failed step');

    // Everything else of a rescue: same host keys under strict checking with the harness's known_hosts, root's
    // keys, new boot, rescue marker, the static addresses and both dead default routes back by MAC.
    await assertRescued(server, result, { oldBoot, backupKey });

    // The login banner, written after the report, is the CLI's summary byte for byte.
    const banner = await server.ssh('root', 'cat /run/emergency/banner');
    assert.equal(banner.code, 0, banner.stderr);
    assert.ok(result.stdout.includes(banner.stdout), `the CLI printed the banner:\n--- CLI ---\n${result.stdout}--- banner ---\n${banner.stdout}`);

    // The fallback reboot stays confirmed by the CLI (its first ssh run after the probe).
    const status = await server.ssh('root', 'sh /etc/emergency/fallback-reboot.sh status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^fallback_state=confirmed\nfallback_seconds=900\nfallback_confirmed_by=cli\n/);

    // The last chance, as it runs in the rescue: udhcpc on eth0 beside the static configuration, and its lease.
    // slirp under restrict=on (every test NIC) leases 10.0.2.15 without a router or DNS option (seen in udhcpc's
    // environment: ip, mask, serverid, no router), so the hook's default route via the lease's router cannot be
    // shown here; netns/last-chance.test.ts runs the hook with one. The static addresses and routes stay, which
    // assertRescued checked above.
    const dhcp = await server.ssh(
      'root',
      'for p in /run/emergency-network/last-chance-*.pid; do tr "\\0" " " </proc/$(cat "$p")/cmdline; echo; done; echo @@; ' +
        'cat /run/emergency-network/last-chance.leases',
    );
    assert.equal(dhcp.code, 0, dhcp.stderr);
    const [procs, leases] = dhcp.stdout.split('@@\n');
    assert.match(procs, /^udhcpc -b -i eth0 -s \/run\/emergency-network\/last-chance\.udhcpc /m, `udhcpc runs on eth0:\n${dhcp.stdout}`);
    assert.equal(leases, 'eth0 10.0.2.15\n', `slirp leased 10.0.2.15 on eth0 (the hook's record):\n${dhcp.stdout}`);
    // The gateway failure was no timing accident: 10.0.2.99 is still dead in the rescue, while slirp's 10.0.2.2 answers.
    const gateways = await server.ssh('root', neighbours('eth0', ['10.0.2.99', '10.0.2.2']));
    assert.doesNotMatch(entry(gateways.stdout, '10.0.2.99'), ANSWERED, `still dead in the rescue:\n${gateways.stdout}`);
    assert.match(entry(gateways.stdout, '10.0.2.2'), ANSWERED, `10.0.2.2 answers the rescue:\n${gateways.stdout}`);

    // Where the time went, in the rescue's own clock (whole seconds since its boot, from file times): the network
    // phase's state and the report (the host key: the keys phase; sshd's pid file: its start, with the network
    // phase beside it), against the CLI's wait step.
    const times = await server.ssh(
      'root',
      'boot=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) )); ' +
        'for f in /etc/ssh/ssh_host_ed25519_key /run/sshd.pid /run/emergency-network/* /var/log/emergency-restore.report /run/emergency/banner; do echo "$(( $(stat -c %Y "$f") - boot )) s $f"; done',
    );
    const wait = record.steps.find((s) => s.name === 'wait')?.ms ?? 0;
    console.log(
      `# dead-gateway rescue: ${(rescueMs / 1000).toFixed(1)} s, of it the wait step ${(wait / 1000).toFixed(1)} s ` +
        `(${/rescue system answers [\d.]+ s after kexec/.exec(result.stderr)?.[0]}; the gateway check ${/8 rounds of probes \((\d+ s)\)/.exec(result.stderr)?.[1]}); server boot to ssh ${(server.bootToSshMs / 1000).toFixed(1)} s; ` +
        `in the rescue, seconds after its boot:\n${times.stdout.replace(/^/gm, '#   ')}`,
    );
  });
});
