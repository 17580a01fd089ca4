import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { explainKexecFailure, kexecReason } from '../../kexec-failure.js';

// kexec-run.sh's kexec_*_error facts as the lockdown test server produced them (newlines folded into spaces).
const LOCKDOWN_FILE = 'kexec_file_load failed: Operation not permitted ';
const LOCKDOWN_LOAD =
  'kexec_load failed: Operation not permitted entry       = 0x1ffd7760 flags = 0x3e0000 nr_segments = 5 segment[0].buf   = 0x55556c7b1440 segment[0].bufsz = 0x30 segment[0].mem   = 0x100000 segment[0].memsz = 0x1000 ';

describe('explainKexecFailure', () => {
  const cases: [string, string | undefined, string | undefined, string | undefined][] = [
    [
      'lockdown: both refused, the segment table dropped',
      LOCKDOWN_FILE,
      LOCKDOWN_LOAD,
      'kexec_file_load: Operation not permitted; kexec_load: Operation not permitted — the running kernel does not allow it: locked down (it loads only kernels signed by a key it trusts) or kexec disabled',
    ],
    [
      'an untrusted signature, then EPERM',
      'kexec_file_load failed: Key was rejected by service',
      LOCKDOWN_LOAD,
      'kexec_file_load: Key was rejected by service; kexec_load: Operation not permitted — the rescue kernel is signed by a key the running kernel does not trust; the running kernel does not allow it: locked down (it loads only kernels signed by a key it trusts) or kexec disabled',
    ],
    [
      'no kexec_file_load, kexec_load out of memory',
      'kexec_file_load failed: Function not implemented',
      'kexec_load failed: Cannot allocate memory entry = 0x0',
      'kexec_file_load: Function not implemented; kexec_load: Cannot allocate memory — the running kernel has no kexec_file_load; not enough contiguous memory for the rescue kernel and initrd',
    ],
    [
      'an unknown message is kept as it is',
      'Cannot determine the file type of /run/x/kernel',
      undefined,
      'kexec_file_load: Cannot determine the file type of /run/x/kernel',
    ],
    ['nothing said', undefined, '', undefined],
  ];
  for (const [name, file, load, expected] of cases) it(name, () => assert.equal(explainKexecFailure(file, load), expected));
  it('never carries the segment table', () => assert.doesNotMatch(explainKexecFailure(LOCKDOWN_FILE, LOCKDOWN_LOAD)!, /segment|entry/));
  it('kexecReason reads the first failure', () => assert.equal(kexecReason(LOCKDOWN_LOAD), 'Operation not permitted'));
});
