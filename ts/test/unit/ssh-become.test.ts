import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { becomeRoot } from '../../ssh.js';

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
