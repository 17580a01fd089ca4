import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { becomeRoot, loginCommand, type SshTarget } from '../../ssh.js';

describe('becomeRoot', () => {
  const command = ['sh', '-c', 'echo hi'];
  // One line per way of becoming root: the argv that reaches the host. The password is never part of it.
  const cases: [Parameters<typeof becomeRoot>[0], string[]][] = [
    ['root', ['sh', '-c', 'echo hi']],
    ['sudo', ['sudo', '-n', '--', 'sh', '-c', 'echo hi']],
    ['doas', ['doas', '-n', 'sh', '-c', 'echo hi']],
    // -k: sudo must read the password line from stdin every time, cached credentials or not.
    ['sudo-password', ['sudo', '-k', '-S', '-p', '', '--', 'sh', '-c', 'echo hi']],
  ];
  for (const [become, argv] of cases) it(become, () => assert.deepEqual(becomeRoot(become, command), argv));
});

describe('loginCommand: what the CLI prints to log in to the rescue system', () => {
  const cases: [string, SshTarget, string][] = [
    ['a Host alias', { destination: 'db1', options: [] }, 'ssh -l root db1'],
    ['user@host: the user replaced by root', { destination: 'admin@203.0.113.10', options: [] }, 'ssh root@203.0.113.10'],
    [
      'the ssh settings given to the CLI, quoted',
      { destination: 'admin@h', port: 2222, identity: '/home/me/my key', configFile: 'cfg', options: ['ProxyJump=jump host'] },
      "ssh -F cfg -p 2222 -i '/home/me/my key' -o 'ProxyJump=jump host' root@h",
    ],
  ];
  for (const [name, target, expected] of cases) it(name, () => assert.equal(loginCommand(target, 'root'), expected));
});
