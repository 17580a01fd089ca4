import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { parseArgs } from '../../args.js';
import { ExitCode } from '../../errors.js';
import { checkSshOptions, classifySshFailure } from '../../ssh.js';

describe('parseArgs', () => {
  it('reads the documented options', async () => {
    const o = await parseArgs(['-p', '2222', '-i', 'key', '-o', 'User=bob', '-o', 'ProxyJump=j', '--image', 'x.tar', '--yes', '--dry-run', '--timeout', '30', 'root@h']);
    assert.deepEqual(
      [o.destination, o.port, o.identity, o.sshOptions, o.image, o.yes, o.dryRun, o.timeout],
      ['root@h', 2222, 'key', ['User=bob', 'ProxyJump=j'], 'x.tar', true, true, 30],
    );
  });
  it('does not take DESTINATION for a second -o value', async () => {
    const o = await parseArgs(['-o', 'User=bob', 'root@h'], {});
    assert.deepEqual([o.sshOptions, o.destination], [['User=bob'], 'root@h']);
  });
  it('prints its version from package.json and exits 0', () => {
    const out = execFileSync(process.execPath, [fileURLToPath(new URL('../../cli.js', import.meta.url)), '--version'], { encoding: 'utf8' });
    assert.equal(out.trim(), JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version);
  });
  it('takes EMERGENCY_DUMP_NETWORK=1 from the environment', async () => {
    assert.equal((await parseArgs(['h'], { EMERGENCY_DUMP_NETWORK: '1' })).dumpNetwork, true);
    assert.equal((await parseArgs(['h'], {})).dumpNetwork, false);
  });
  const bad: [string, string[], RegExp][] = [
    ['no destination', [], /DESTINATION is missing/],
    ['two destinations', ['a', 'b'], /one DESTINATION only/],
    ['unknown option', ['h', '--frobnicate'], /Unknown argument/],
    ['bad port', ['-p', '70000', 'h'], /--port must be a port number/],
    ['negative timeout', ['--timeout', '-1', 'h'], /must be positive/],
  ];
  for (const [name, argv, message] of bad) {
    it(`rejects ${name} with a usage error`, async () => {
      await assert.rejects(parseArgs(argv, {}), (e: { message: string; exitCode: number }) => message.test(e.message) && e.exitCode === ExitCode.Usage);
    });
  }
});

describe('checkSshOptions', () => {
  const refused = ['StrictHostKeyChecking=no', 'stricthostkeychecking accept-new', 'UserKnownHostsFile=/dev/null', 'ControlPath=/tmp/x', 'ControlMaster=auto'];
  for (const option of refused) it(`refuses ${option}`, () => assert.throws(() => checkSshOptions([option]), /not allowed/));
  it('accepts harmless options and a real known_hosts file', () =>
    assert.doesNotThrow(() => checkSshOptions(['StrictHostKeyChecking=yes', 'UserKnownHostsFile=/tmp/kh', 'GlobalKnownHostsFile=/dev/null', 'ProxyJump=bastion', 'BatchMode=yes'])));
});

describe('classifySshFailure', () => {
  const cases: [string, string, RegExp, number][] = [
    ['changed key', '@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@', /different SSH host key/, ExitCode.HostKeyChanged],
    ['unknown key', 'No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.', /not in your known_hosts/, ExitCode.Connection],
    ['auth', 'root@h: Permission denied (publickey).', /refused the login/, ExitCode.Connection],
    ['refused', 'ssh: connect to host h port 22: Connection refused', /cannot reach sshd/, ExitCode.Connection],
    ['dns', 'ssh: Could not resolve hostname nope: Name or service not known', /does not resolve/, ExitCode.Connection],
  ];
  for (const [name, stderr, message, code] of cases) {
    it(name, () => {
      const e = classifySshFailure('h', stderr) as Error & { exitCode: number };
      assert.match(e.message, message);
      assert.equal(e.exitCode, code);
    });
  }
});
