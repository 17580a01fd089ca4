/** Capture parsing (pure, on fixtures) and scripts/capture-network.sh itself (read-only, any user). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { ExitCode, EmergencyError } from '../../errors.js';
import { parseScriptOutput, type ScriptOutput } from '../../sections.js';
import { CaptureError, captureNeedsImageIp, parseNetworkCapture, parseRtTables } from '../../network/capture.js';
import { fixtureNames, fixtureOutput } from './network-fixtures.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/capture-network.sh', import.meta.url));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** The fixture with one section's body or args replaced, or the section removed (`null`). */
function edited(name: string, section: string, change: { body?: string; args?: string[] } | null): ScriptOutput {
  const out = fixtureOutput(name);
  const sections = out.sections.flatMap((s) => (s.name !== section ? [s] : change === null ? [] : [{ ...s, ...change }]));
  return { ...out, sections };
}

describe('parseNetworkCapture', () => {
  test('every fixture parses, with loopback and at least one other interface', () => {
    for (const name of fixtureNames()) {
      const capture = parseNetworkCapture(fixtureOutput(name));
      assert.ok(
        capture.links.some((l) => l.link_type === 'loopback'),
        name,
      );
      assert.ok(capture.links.length >= 2, name);
      assert.equal(captureNeedsImageIp(fixtureOutput(name)), false, name);
    }
  });

  const broken: [string, ScriptOutput, RegExp][] = [
    ['missing section', edited('static-ipv4', 'ip-route6', null), /no ip-route6 section/],
    ['missing rt-tables', edited('static-ipv4', 'rt-tables', null), /no rt-tables section/],
    ['not JSON', edited('static-ipv4', 'ip-rule4', { body: 'Usage: ip rule' }), /ip-rule4 is not JSON/],
    ['not an array', edited('static-ipv4', 'ip-route4', { body: '{}' }), /ip-route4 is not a JSON array/],
    ['route without dst', edited('static-ipv4', 'ip-route4', { body: '[{"dev":"eth0"}]' }), /ip-route4\[0\] field "dst" is missing/],
    [
      'link without name',
      edited('static-ipv4', 'ip-addr', { body: '[{"ifindex":1,"mtu":1,"link_type":"loopback","flags":[]}]' }),
      /ip-addr\[0\] field "ifname" is missing/,
    ],
    ['no loopback', edited('static-ipv4', 'ip-addr', { body: '[]' }), /no loopback interface/],
    ['IPv4 routes failed', edited('static-ipv4', 'ip-route4', { args: ['failed', '1'], body: 'boom' }), /ip-route4: ip failed with exit code 1/],
    ['capture error', parseScriptOutput('@@emergency-section capture-unavailable no-ip-json\n'), /capture failed on the host \(no-ip-json\)/],
  ];
  for (const [what, output, message] of broken) {
    test(`throws CaptureError naming the problem: ${what}`, () => {
      assert.throws(
        () => parseNetworkCapture(output),
        (e: unknown) => e instanceof CaptureError && e instanceof EmergencyError && e.exitCode === ExitCode.Refused && message.test(e.message),
      );
    });
  }

  test('IPv6 disabled on the host: no IPv6 routes or rules, and a note', () => {
    const err = { args: ['failed', '2'], body: 'RTNETLINK answers: Address family not supported by protocol' };
    let out = edited('static-ipv4', 'ip-route6', err);
    out = { ...out, sections: out.sections.map((s) => (s.name === 'ip-rule6' ? { ...s, ...err } : s)) };
    const capture = parseNetworkCapture(out);
    assert.deepEqual([capture.routes6, capture.rules6, capture.notes], [[], [], ['IPv6 is disabled on the host']]);
    assert.equal(captureNeedsImageIp(out), false);
  });

  test('captureNeedsImageIp: a capture error, or an ip that printed no JSON for some section', () => {
    const rows: [ScriptOutput, boolean][] = [
      [fixtureOutput('static-ipv4'), false],
      [parseScriptOutput('@@emergency-section capture-unavailable no-ip\n'), true],
      [parseScriptOutput('@@emergency-section capture-unavailable no-ip-json\n'), true],
      [edited('static-ipv4', 'ip-rule4', { body: 'Object "rule" is unknown' }), true],
      [edited('static-ipv4', 'ip-route4', { args: ['failed', '255'], body: 'Option "-j" is unknown' }), true],
      [edited('static-ipv4', 'ip-route6', null), true],
    ];
    for (const [output, expected] of rows)
      assert.equal(captureNeedsImageIp(output), expected, JSON.stringify(output.sections.map((s) => `${s.name} ${s.args.join(' ')}`)));
  });

  test('parseRtTables', () => {
    assert.deepEqual(parseRtTables('# comment\n255\tlocal\n254 main\n0x10 uplink # hex\n\nbad line\n200\tvpn\n200 vpn2\n'), {
      local: 255,
      main: 254,
      uplink: 16,
      vpn: 200,
      vpn2: 200,
    });
  });
});

describe('capture-network.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-capture-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const fake = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };
  const shells = [['dash'], ['busybox', 'ash']].filter((s) => has(s[0]));
  const run = (shell: string[], ...args: string[]) => {
    // As the orchestrator runs it: in a subshell after another script, inside one `sh -c`.
    const r = spawnSync(shell[0], [...shell.slice(1), '-c', '(echo fact=1); (. "$0" "$@"); echo still-here', SCRIPT, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /still-here\n$/, 'the capture must not exit the calling shell');
    return parseScriptOutput(r.stdout.replace(/still-here\n$/, ''));
  };

  test('is shellcheck-clean', { skip: has('shellcheck') ? false : 'shellcheck not installed' }, () => {
    const r = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
  });

  for (const shell of shells) {
    test(`${shell.join(' ')}: this machine's network parses, and the capture prints no facts`, { skip: has('ip') ? false : 'no ip here' }, () => {
      const out = run(shell);
      assert.deepEqual(out.facts, { fact: '1' }, 'only the preceding script printed a fact');
      const capture = parseNetworkCapture(out);
      assert.ok(capture.links.some((l) => l.ifname === 'lo'));
      assert.equal(captureNeedsImageIp(out), false);
    });

    test(`${shell.join(' ')}: an ip without JSON, or none, asks for the image's ip`, () => {
      const oldIp = fake('old-ip', 'echo "Option \\"-j\\" is unknown, try \\"ip -help\\"." >&2; exit 255');
      for (const [args, reason] of [
        [[oldIp], 'no-ip-json'],
        [[join(dir, 'missing-ip')], 'no-ip'],
      ] as const) {
        const out = run(shell, ...args);
        assert.deepEqual(
          out.sections.map((s) => [s.name, ...s.args]),
          [['capture-unavailable', reason]],
        );
        assert.equal(captureNeedsImageIp(out), true);
      }
    });

    test(`${shell.join(' ')}: an ip with JSON whose addr listing fails is that section's failure, not "no JSON", and the image's ip is asked`, {
      skip: has('ip') ? false : 'no ip here',
    }, () => {
      // The addr section is also the JSON probe; only when it is not JSON does `link show lo` decide which it is.
      const wrapper = fake(
        'addr-fails',
        'case "$*" in *"addr show"*) echo "Cannot send dump request: Operation not permitted" >&2; exit 1;; esac; exec ip "$@"',
      );
      const out = run(shell, wrapper);
      assert.deepEqual(out.sections.find((s) => s.name === 'ip-addr')?.args, ['failed', '1']);
      assert.match(out.sections.find((s) => s.name === 'ip-addr')?.body ?? '', /Operation not permitted/);
      assert.ok(
        out.sections.some((s) => s.name === 'ip-route4' && s.args.length === 0),
        'the sections after it are still captured',
      );
      assert.ok(!out.sections.some((s) => s.name === 'capture-unavailable'));
      assert.equal(captureNeedsImageIp(out), true);
    });

    test(`${shell.join(' ')}: the ip command may be several words; a failing section is reported, not fatal`, {
      skip: has('ip') ? false : 'no ip here',
    }, () => {
      // Stands in for `ld.so --library-path lib bin/ip` and for a kernel without IPv6.
      const wrapper = fake(
        'wrap',
        'shift 2; case "$*" in *"-6 route"*) echo "RTNETLINK answers: Address family not supported by protocol" >&2; exit 2;; esac; exec ip "$@"',
      );
      const out = run(shell, wrapper, '--library-path', 'ip');
      assert.deepEqual(out.sections.find((s) => s.name === 'ip-route6')?.args, ['failed', '2']);
      const capture = parseNetworkCapture(out);
      assert.deepEqual(capture.notes, ['IPv6 is disabled on the host']);
    });
  }
});
