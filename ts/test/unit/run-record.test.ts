import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { EmergencyError, ExitCode, RefusedError } from '../../errors.js';
import { outcomeOf, publicKeyFingerprint, RunRecorder, RunRecordSchema, serializeRunRecord, writeRunRecord } from '../../run-record.js';
import type { Ui } from '../../ui.js';

/** A Ui that prints nothing and remembers what it was asked to print. */
function quietUi(): Ui & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    step: (_name, fn) => fn(),
    info: (t) => void lines.push(`info ${t}`),
    warn: (t) => void lines.push(`warn ${t}`),
    out: (t) => void lines.push(`out ${t}`),
    progress: () => () => {},
    confirm: async () => true,
    password: async () => Buffer.from(''),
    interactive: () => false,
  };
}

const OPTIONS = { destination: 'admin@web1', flake: '.', dryRun: false, yes: true, shell: false, timeout: 600, dumpNetwork: false };

describe('the --json run record', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-record-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'host_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@web1', '-f', key]);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  const privateKey = readFileSync(key, 'utf8');

  it('fingerprints a public key as ssh-keygen -l does', () => {
    const expected = execFileSync('ssh-keygen', ['-lf', `${key}.pub`], { encoding: 'utf8' }).split(' ')[1];
    assert.deepEqual(publicKeyFingerprint(pub), { type: 'ssh-ed25519', fingerprint: expected });
    assert.equal(publicKeyFingerprint('no key here'), undefined);
    assert.equal(publicKeyFingerprint('restrict,command="x" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB c')?.type, 'ssh-ed25519');
  });

  for (const [code, dryRun, outcome] of [
    [0, false, 'rescued'],
    [0, true, 'dry-run'],
    [ExitCode.Refused, false, 'refused'],
    [ExitCode.Declined, false, 'declined'],
    [ExitCode.Interrupted, false, 'interrupted'],
    [ExitCode.NotBack, false, 'failed'],
    [ExitCode.Usage, true, 'failed'],
  ] as const) {
    it(`exit ${code}${dryRun ? ' (dry run)' : ''} → ${outcome}`, () => assert.equal(outcomeOf(code, dryRun), outcome));
  }

  it('records a fake rescue: host facts, checks, plan, step timings, the summary, the outcome; it validates', async () => {
    let clock = Date.parse('2026-12-01T22:00:00Z');
    const recorder = new RunRecorder(OPTIONS, '0.1.0', () => clock);
    const inner = quietUi();
    const ui = recorder.wrap(inner);
    await ui.step('connect', async () => {
      clock += 1200;
    });
    await ui.step('preflight', async () => {
      clock += 800;
      ui.warn('host key /etc/ssh/ssh_host_dsa_key is missing');
    });
    recorder.setImage({ path: '/images/emergency-image.tar', name: 'Debian test image', arch: 'x86_64', tarBytes: 30_000_000 });
    recorder.setHost({
      facts: { arch: 'x86_64', hostname: 'web1', mem_total_kb: 480_000, has_tmpfs: true, nested: { no: 1 } },
      hostKeys: [
        { path: '/etc/ssh/ssh_host_ed25519_key', present: true, pub },
        { path: '/etc/ssh/ssh_host_dsa_key', present: false, pub: '' },
      ],
      oldSystem: {
        root: { device: '/dev/vda1', mountpoint: '/', fstype: 'ext4', options: 'rw' },
        mounts: [{ device: '/dev/vda1', mountpoint: '/', fstype: 'ext4', options: 'rw' }],
        blockDevices: [{ kind: 'disk', name: 'vda', bytes: 10 * 2 ** 30, model: '' }],
      },
    });
    recorder.setAuthorizedKeys({ accepted: [pub], leftOut: 1 });
    recorder.setChecks([
      { name: 'kexec', title: 'kexec is enabled', status: 'pass', findings: [] },
      { name: 'host-keys', title: 'host keys', status: 'warn', findings: [{ message: 'dsa missing', fix: 'recreate it' }] },
    ]);
    recorder.setPlan({ interfaces: [{ name: 'ens3', mac: '52:54:00:12:34:56' }], routes: [], rules: [], skipped: [], notes: [] });
    await assert.rejects(
      ui.step('wait', async () => {
        clock += 5000;
        throw new EmergencyError('not back', 'look at the console', ExitCode.NotBack);
      }),
    );
    recorder.setRoundTrips(4);
    recorder.setRescueSummary('emergency rescue system for web1\n');
    const record = recorder.finish(ExitCode.NotBack, new EmergencyError('not back', 'look at the console', ExitCode.NotBack));

    assert.deepEqual(RunRecordSchema.parse(JSON.parse(serializeRunRecord(record))), record, 'round-trips through JSON and validates');
    assert.deepEqual(
      record.steps.map((s) => [s.name, s.ms, s.ok]),
      [
        ['connect', 1200, true],
        ['preflight', 800, true],
        ['wait', 5000, false],
      ],
    );
    assert.equal(record.steps[0].startedAt, '2026-12-01T22:00:00.000Z');
    assert.equal(record.durationMs, 7000);
    assert.deepEqual(record.warnings, ['host key /etc/ssh/ssh_host_dsa_key is missing']);
    assert.ok(inner.lines.includes('warn host key /etc/ssh/ssh_host_dsa_key is missing'), 'the wrapped Ui still prints');
    assert.deepEqual(record.host?.facts, { arch: 'x86_64', hostname: 'web1', mem_total_kb: 480_000, has_tmpfs: true }, 'scalar facts only');
    assert.equal(record.host?.hostKeys[0].fingerprint, publicKeyFingerprint(pub)?.fingerprint);
    assert.deepEqual(record.host?.authorizedKeys, { accepted: 1, fingerprints: [publicKeyFingerprint(pub)!.fingerprint], leftOut: 1 });
    assert.equal(record.host?.root?.fstype, 'ext4');
    assert.deepEqual(
      record.checks.map((c) => c.status),
      ['pass', 'warn'],
    );
    assert.equal(record.outcome, 'failed');
    assert.equal(record.exitCode, ExitCode.NotBack);
    assert.deepEqual(record.error, { type: 'EmergencyError', message: 'not back', fix: 'look at the console' });
    assert.equal(record.roundTripsBeforeKexec, 4);
  });

  it('carries no private key material: only public halves go in, and a record with one is never written', async () => {
    const recorder = new RunRecorder({ ...OPTIONS, dryRun: true }, '0.1.0');
    recorder.setHost({ facts: { hostname: 'web1' }, hostKeys: [{ path: key, present: true, pub }] });
    const text = serializeRunRecord(recorder.finish(0));
    const body = privateKey.split('\n').slice(1, -2).join('');
    assert.doesNotMatch(text, /PRIVATE KEY/);
    for (let i = 0; i + 20 <= body.length; i += 20) assert.ok(!text.includes(body.slice(i, i + 20)), 'no piece of the private key');
    assert.ok(!text.includes(pub.split(' ')[1]), 'not even the public key blob: the fingerprint says which key it is');

    const leaky = new RunRecorder(OPTIONS, '0.1.0');
    leaky.wrap(quietUi()).warn(`unexpected: ${privateKey}`);
    const file = join(dir, 'leaky.json');
    await assert.rejects(writeRunRecord(file, leaky.finish(1)), /private key material/);
    assert.throws(() => statSync(file), 'no file was written');
  });

  it('records a refusal with every reason; writes mode 600', async () => {
    const recorder = new RunRecorder(OPTIONS, '0.1.0');
    const error = new RefusedError([
      { message: 'kexec is disabled', fix: 'reboot' },
      { message: 'too little memory', fix: 'stop services' },
    ]);
    const record = recorder.finish(error.exitCode, error);
    assert.equal(record.outcome, 'refused');
    assert.deepEqual(
      record.error?.refusals?.map((r) => r.message),
      ['kexec is disabled', 'too little memory'],
    );
    const file = join(dir, 'refused.json');
    await writeRunRecord(file, record);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(RunRecordSchema.parse(JSON.parse(readFileSync(file, 'utf8'))), record);
  });

  it('the schema rejects a record without an exit code or with an unknown outcome', () => {
    const record = new RunRecorder(OPTIONS, '0.1.0').finish(0);
    assert.equal(RunRecordSchema.safeParse({ ...record, exitCode: undefined }).success, false);
    assert.equal(RunRecordSchema.safeParse({ ...record, outcome: 'maybe' }).success, false);
    assert.equal(RunRecordSchema.safeParse({ ...record, extra: 1 }).success, false);
  });
});
