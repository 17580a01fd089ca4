import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseScriptOutput, sectionBody } from '../../sections.js';

describe('parseScriptOutput', () => {
  it('splits facts from sections with arguments and multi-line bodies', () => {
    const out = parseScriptOutput(
      'arch=x86_64\nkernel=6.1.0\nnoise line\n@@emergency-section host-key /etc/ssh/k present\nssh-ed25519 AAAA c\n' +
        '@@emergency-section resolv-conf\nnameserver 1.1.1.1\n\nsearch x\n@@emergency-section end\n',
    );
    assert.deepEqual(out.facts, { arch: 'x86_64', kernel: '6.1.0' });
    assert.deepEqual(out.sections[0], { name: 'host-key', args: ['/etc/ssh/k', 'present'], body: 'ssh-ed25519 AAAA c' });
    assert.equal(sectionBody(out, 'resolv-conf'), 'nameserver 1.1.1.1\n\nsearch x');
    assert.equal(sectionBody(out, 'end'), '');
  });
  it('does not take key=value lines inside a section for facts', () => {
    const out = parseScriptOutput('@@emergency-section restore-env\nuid=5\n');
    assert.deepEqual(out.facts, {});
  });
});
