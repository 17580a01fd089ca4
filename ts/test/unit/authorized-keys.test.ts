import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fingerprint, parseAuthorizedKeyLine, renderAuthorizedKeys, selectAuthorizedKeys } from '../../keys/authorized-keys.js';

const fixture = (name: string) => readFileSync(new URL(`../../../ts/test/fixtures/keys/${name}`, import.meta.url), 'utf8');
const ED = 'AAAAC3NzaC1lZDI1NTE5AAAAIGJ3Z0l5cFl0eGVxd2Z3Z3Z6c2R4c2R4c2R4c2R4';

describe('parseAuthorizedKeyLine', () => {
  const cases: [string, string, { options: string[]; type: string; comment: string } | undefined][] = [
    ['plain key', `ssh-ed25519 ${ED} me@host`, { options: [], type: 'ssh-ed25519', comment: 'me@host' }],
    ['no comment', `ssh-ed25519 ${ED}`, { options: [], type: 'ssh-ed25519', comment: '' }],
    [
      'options with quoted comma and space',
      `from="a,b",command="echo hi there" ssh-ed25519 ${ED} c`,
      { options: ['from="a,b"', 'command="echo hi there"'], type: 'ssh-ed25519', comment: 'c' },
    ],
    [
      'escaped quote in option',
      `command="say \\"x y\\"",no-pty ssh-rsa ${ED} c`,
      { options: ['command="say \\"x y\\""', 'no-pty'], type: 'ssh-rsa', comment: 'c' },
    ],
    ['security key type', `sk-ssh-ed25519@openssh.com ${ED} yubi`, { options: [], type: 'sk-ssh-ed25519@openssh.com', comment: 'yubi' }],
    ['comment line', '# ssh-ed25519 AAAA', undefined],
    ['blank', '   ', undefined],
    ['garbage', 'hello world', undefined],
    ['bad base64', 'ssh-ed25519 !!!! x', undefined],
  ];
  for (const [name, line, expected] of cases) {
    it(name, () => {
      const parsed = parseAuthorizedKeyLine(line);
      if (!expected) return assert.equal(parsed, undefined);
      assert.ok(parsed, 'line should parse');
      assert.deepEqual({ options: parsed.options, type: parsed.type, comment: parsed.comment }, expected);
    });
  }
});

describe('selectAuthorizedKeys', () => {
  it('keeps restricting options, leaves forced commands out and reports them', () => {
    const selection = selectAuthorizedKeys([{ user: 'admin', file: '/home/admin/.ssh/authorized_keys', content: fixture('admin_authorized_keys') }]);
    assert.equal(selection.keys.length, 3);
    assert.deepEqual(selection.keys[1].options, ['from="10.0.0.0/8,192.168.1.1"', 'no-agent-forwarding']);
    assert.equal(selection.leftOut.length, 1);
    assert.match(selection.leftOut[0].comment, /backup@nas/);
    assert.match(selection.leftOut[0].reason, /forced command/);
    assert.deepEqual(selection.perUser, { admin: 3 });
  });
  it('counts per user and drops exact duplicates across files', () => {
    const line = `ssh-ed25519 ${ED} me`;
    const selection = selectAuthorizedKeys([
      { user: 'root', file: '/root/.ssh/authorized_keys', content: line },
      { user: 'alice', file: '/home/alice/.ssh/authorized_keys', content: `${line}\nno-pty ${line}` },
    ]);
    assert.deepEqual(selection.perUser, { root: 1, alice: 1 });
    assert.equal(selection.keys.length, 2);
  });
  it('renders a file sshd reads back to the same keys', () => {
    const selection = selectAuthorizedKeys([{ user: 'admin', file: 'f', content: fixture('admin_authorized_keys') }]);
    const again = selectAuthorizedKeys([{ user: 'root', file: 'rendered', content: renderAuthorizedKeys(selection) }]);
    assert.deepEqual(
      again.keys.map((k) => [k.options, k.type, k.blob, k.comment]),
      selection.keys.map((k) => [k.options, k.type, k.blob, k.comment]),
    );
  });
});

describe('fingerprint', () => {
  it('matches ssh-keygen -lf (needs ssh-keygen from openssh-client)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'emergency-fp-'));
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
      const blob = readFileSync(join(dir, 'k.pub'), 'utf8').split(' ')[1];
      const expected = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')], { encoding: 'utf8' }).split(' ')[1];
      assert.equal(fingerprint(blob), expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
