import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HEALTHY_FACTS } from '../lib/preflight-facts.js';
import { PreflightFactsSchema } from '../../boundary/preflight.js';
import { memoryNeed } from '../../preflight/checks.js';
import { judgeHost as judgeInput } from '../../preflight/verdict.js';

const MiB = 1024 * 1024;
const image = { arch: 'x86_64', unpackedBytes: 300 * MiB, kernelBytes: 12 * MiB, initrdBytes: 280 * MiB, rescueUnpackedBytes: 900 * MiB };
const good: Record<string, string> = { ...HEALTHY_FACTS };
const keys = [{ path: '/etc/ssh/ssh_host_ed25519_key', present: true, pub: 'ssh-ed25519 AAAA root@h' }];

/** The facts as preflight.sh prints them, through the boundary schema, then every check. */
function judgeHost(facts: Record<string, string>, img: typeof image, hostKeys: typeof keys, authorizedKeyCount: number, ignore: string[] = []) {
  return judgeInput({ facts: PreflightFactsSchema.parse(facts), image: img, hostKeys, authorizedKeyCount }, ignore);
}

describe('judgeHost', () => {
  it('accepts a healthy host and stages under /run', () => {
    const v = judgeHost(good, image, keys, 2);
    assert.deepEqual(v.refusals, []);
    assert.deepEqual(v.stage, { parent: '/run', mode: 'mkdir', tmpfsBytes: 316 * MiB });
  });

  // One line per case: the facts that differ, and what the refusal must say.
  const refusals: [string, Record<string, string>, RegExp][] = [
    ['kexec disabled', { kexec_load_disabled: '1' }, /kexec is disabled.*kexec_load_disabled=1/],
    ['no kexec in kernel', { kexec_load_disabled: 'missing' }, /no kexec support/],
    [
      'lockdown',
      { lockdown: 'integrity', secure_boot: '1' },
      /the kernel is locked down \(integrity, from \/sys\/kernel\/security\/lockdown; Secure Boot is on\): it loads only signed kernels/,
    ],
    ['docker', { container: 'docker' }, /container \(docker\)/],
    ['openvz', { container: 'openvz' }, /container \(openvz\)/],
    ['wrong arch', { arch: 'aarch64' }, /aarch64 but the image is for x86_64/],
    ['little free memory', { mem_available_kb: String(200 * 1024) }, /too little free memory: 200 MiB available, \d+ MiB needed \(before kexec: staged files/],
    ['little RAM', { mem_total_kb: String(1024 * 1024), mem_available_kb: String(900 * 1024) }, /1024 MiB of RAM, the rescue system needs \d+ MiB/],
    ['nowhere to stage', { stage_parent: '', stage_mode: '' }, /no directory can hold the staging tmpfs/],
    ['no tmpfs', { has_tmpfs: '0' }, /no tmpfs/],
    ['no dd, busybox head', { has_dd: '0', head_gnu: '0' }, /neither `dd` nor GNU `head`/],
    ['no mount', { has_mount: '0' }, /no `mount`/],
    ['not root', { uid: '1000' }, /did not run as root/],
  ];
  for (const [name, change, message] of refusals) {
    it(`refuses: ${name}`, () => {
      const v = judgeHost({ ...good, ...change }, image, keys, 2);
      assert.ok(
        v.refusals.some((r) => message.test(r.message)),
        `expected ${message} in ${JSON.stringify(v.refusals)}`,
      );
      assert.ok(
        v.refusals.every((r) => r.fix.length > 10),
        'every refusal says what to do',
      );
    });
  }

  it('reports every failed check at once, not only the first', () => {
    const v = judgeHost({ ...good, kexec_load_disabled: '1', container: 'lxc', mem_available_kb: '1000' }, image, [], 0);
    assert.equal(v.refusals.length, 5);
  });
  it('refuses without host keys or authorized keys', () => {
    const v = judgeHost(good, image, [{ path: '/etc/ssh/k', present: true, pub: '' }], 0);
    assert.ok(v.refusals.some((r) => /no SSH host key/.test(r.message)));
    assert.ok(v.refusals.some((r) => /nobody could log in/.test(r.message)));
    assert.ok(v.warnings.some((w) => /has no readable .pub/.test(w.message)));
  });
  it('warns but continues on a Xen guest', () => {
    const v = judgeHost({ ...good, virt: 'xen' }, image, keys, 1);
    assert.deepEqual(v.refusals, []);
    assert.match(v.warnings[0].message, /Xen guest/);
  });
  it('stages over an existing directory when nothing writable exists', () => {
    assert.deepEqual(judgeHost({ ...good, stage_parent: '/mnt', stage_mode: 'over' }, image, keys, 1).stage?.mode, 'over');
  });
});

describe('memoryNeed', () => {
  it('adds staged files, kexec segments and headroom; rescue needs its unpacked size plus working memory', () => {
    const m = memoryNeed(image);
    assert.equal(m.beforeKexecBytes, (300 + 16 + 12 + 280 + 64) * MiB);
    assert.equal(m.rescueBytes, (12 + 280 + 900 + 256) * MiB);
    assert.match(m.explanation, /staged files 316 MiB \+ kexec segments \(kernel \+ initrd\) 292 MiB/);
  });
});
