import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { scriptCommand, shellJoin, shellQuote } from '../../shell-quote.js';

// Round trip through real shells: what the remote login shell parses must be exactly the words we meant.
const shells = ['sh', 'dash', 'bash'].filter((s) => {
  try {
    execFileSync('sh', ['-c', `command -v ${s}`]);
    return true;
  } catch {
    return false;
  }
});

describe('shellQuote', () => {
  const words = ['plain', '', "it's", 'a b', '$HOME', '`id`', '"dq"', 'semi;colon', 'new\nline', "'", '\\back', '*', 'ümlaut', '-n', '%h/.ssh'];
  for (const shell of shells) {
    it(`${shell} reads every word back unchanged`, () => {
      const out = execFileSync(shell, ['-c', `printf '%s\\0' ${shellJoin(words)}`]);
      assert.deepEqual(out.toString('utf8').split('\0').slice(0, -1), words);
    });
  }
  const rows: [string, string][] = [
    ['root@host:22', 'root@host:22'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['', "''"],
    ['a b', "'a b'"],
    ["it's", "'it'\\''s'"],
    ['$(reboot)', "'$(reboot)'"],
  ];
  for (const [word, quoted] of rows) it(`quotes ${JSON.stringify(word)} as ${quoted}`, () => assert.equal(shellQuote(word), quoted));
});

describe('scriptCommand', () => {
  it('runs several scripts in sequence, each with its own positional parameters, stdin free', () => {
    const command = scriptCommand([{ text: 'echo "a:$#:$1"', args: ["it's one"] }, { text: 'read -r x; echo "b:$#:$x"; exit 3' }]);
    // As sshd would: the login shell parses the joined command line.
    const out = execFileSync('dash', ['-c', `${shellJoin(command)}; echo "rc=$?"`], { input: 'from-stdin\n', encoding: 'utf8' });
    assert.equal(out, "a:1:it's one\nb:0:from-stdin\nrc=3\n");
  });
});
