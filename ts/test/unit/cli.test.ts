import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { EXIT_CODE_HELP, parseArgs } from '../../args.js';
import { ExitCode } from '../../errors.js';
import { checkSshOptions, classifySshFailure } from '../../ssh.js';

describe('parseArgs', () => {
  it('reads the documented options', async () => {
    const o = await parseArgs([
      '-p',
      '2222',
      '-i',
      'key',
      '-o',
      'User=bob',
      '-o',
      'ProxyJump=j',
      '--image',
      'x.tar',
      '--yes',
      '--dry-run',
      '--timeout',
      '30',
      'root@h',
    ]);
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
    assert.doesNotThrow(() =>
      checkSshOptions(['StrictHostKeyChecking=yes', 'UserKnownHostsFile=/tmp/kh', 'GlobalKnownHostsFile=/dev/null', 'ProxyJump=bastion', 'BatchMode=yes']),
    ));
});

describe('classifySshFailure', () => {
  const cases: [string, string, RegExp, number][] = [
    ['changed key', '@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@', /different SSH host key/, ExitCode.HostKeyChanged],
    [
      'unknown key',
      'No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.',
      /not in your known_hosts/,
      ExitCode.Connection,
    ],
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

describe('emergency --help and completion', () => {
  const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  const help = cli(['--help']);

  it('exits 0 and starts with the usage line and a one-paragraph purpose, wrapped by yargs, not by hand', () => {
    assert.equal(help.status, 0, help.stderr);
    const [usage, blank, ...rest] = help.stdout.split('\n');
    assert.equal(usage, 'emergency [options] DESTINATION');
    assert.equal(blank, '');
    const purpose = rest.slice(0, rest.indexOf('')).join(' ');
    assert.match(
      purpose,
      /^Rescue a broken Linux server over SSH: kexec it into an in-memory rescue system that comes back at the same addresses, with the same SSH host key/,
    );
    // The old description broke its sentence after "addresses," by hand, leaving a short ragged line.
    for (const line of rest.slice(0, rest.indexOf('') - 1)) assert.ok(line.length > 60, `a full line, not a stray break: ${JSON.stringify(line)}`);
  });

  it('shows examples for root, a sudo user, an ssh alias, --image, --dry-run and completion', () => {
    const examples = help.stdout.slice(help.stdout.indexOf('Examples:'));
    for (const example of [
      /emergency root@\S+ +as root/,
      /emergency admin@\S+ +as a user with sudo/,
      /emergency db1 +a Host alias in ~\/\.ssh\/config, e\.g\. with ProxyJump/,
      /emergency --image \S+ root@server/,
      /emergency --image URL#sha256=HEX root@server +the host downloads/,
      /emergency --dry-run root@server/,
      /emergency completion >> ~\/\.bashrc/,
    ]) {
      assert.match(examples, example);
    }
  });

  it('groups the options and says where the image comes from', () => {
    const groups = [...help.stdout.matchAll(/^([A-Z][A-Za-z]+):$/gm)].map((m) => m[1]);
    for (const group of ['Image', 'SSH', 'Rescue', 'Output', 'Examples']) assert.ok(groups.includes(group), `group ${group} in ${groups.join(', ')}`);
    const where = help.stdout.slice(help.stdout.indexOf('Where the image comes from:')).split('\n\n')[0].replace(/\s+/g, ' ');
    assert.match(
      where,
      /^Where the image comes from: --image PATH, --image URL \(pinned with #sha256=HEX or --image-sha256;.*\), or else `nix build FLAKE#packages\.SYSTEM\.image`/,
    );
  });

  it('lists every exit code, the same as the README table', () => {
    const codes = Object.values(ExitCode).filter((v): v is number => typeof v === 'number');
    assert.deepEqual(
      EXIT_CODE_HELP.map(([code]) => code).sort((a, b) => a - b),
      codes.sort((a, b) => a - b),
    );
    for (const [code, meaning] of EXIT_CODE_HELP) assert.match(help.stdout, new RegExp(`^ +${code}  ${meaning.replace(/[()]/g, '\\$&')}$`, 'm'));
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Exit codes'));
    const readmeRows = [...section.slice(0, section.indexOf('\n## ')).matchAll(/^\| (\d+) \| (.*) \|$/gm)].map((m) => [Number(m[1]), m[2]]);
    assert.deepEqual(readmeRows, EXIT_CODE_HELP, "the README's table says what --help says, code by code");
  });

  it('`emergency completion` prints a bash completion script, zsh under a zsh $SHELL', () => {
    const bash = cli(['completion'], { SHELL: '/bin/bash' });
    assert.equal(bash.status, 0, bash.stderr);
    assert.match(bash.stdout, /^complete -o bashdefault -o default -F _emergency_yargs_completions emergency$/m);
    const zsh = cli(['completion'], { SHELL: '/usr/bin/zsh' });
    assert.match(zsh.stdout, /^#compdef emergency$/m);
    // The script asks the CLI itself for candidates: that call must answer with the options.
    const candidates = cli(['--get-yargs-completions', 'emergency', '--']).stdout.split('\n');
    for (const option of ['--image', '--dry-run', '--yes', '--shell']) assert.ok(candidates.includes(option), option);
  });

  it('prints no colour or other escape sequences, with NO_COLOR or without', () => {
    for (const env of [{ NO_COLOR: '1' }, { FORCE_COLOR: '1' }]) {
      const out = cli(['--help'], env);
      const error = cli(['--image', '/nonexistent/image.tar', 'root@h'], env);
      assert.equal(error.status, 2);
      assert.doesNotMatch(out.stdout + out.stderr + error.stdout + error.stderr, /\x1b/);
    }
  });
});
