import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseUrlProbe, type UrlProbe } from '../../boundary/url-probe.js';
import { UsageError } from '../../errors.js';
import { parseScriptOutput } from '../../sections.js';
import { describeRate, planFetch, planStream } from '../../image-fetch.js';
import { hostFetchArgs } from '../../image-source.js';
import { imageFromSidecar, parseImageSource, sidecarUrl } from '../../image-url.js';
import { loadImage } from '../../image.js';
import { createTar, tarFiles } from '../../tar.js';
import { REPO } from '../../test-image/build.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('parseImageSource: --image and --image-sha256', () => {
  const cases: [string, string[], string | undefined, object | RegExp][] = [
    ['a local path stays a path', ['./image.tar'], undefined, { kind: 'path', path: './image.tar', sha256: undefined }],
    ['a local path may be pinned too', ['image.tar'], A.toUpperCase(), { kind: 'path', path: 'image.tar', sha256: A }],
    ['https with the hash in the fragment', [`https://example.org/i.tar#sha256=${A}`], undefined, { kind: 'url', url: 'https://example.org/i.tar', sha256: A }],
    ['http with --image-sha256', ['http://10.0.2.100:8080/i.tar'], A, { kind: 'url', url: 'http://10.0.2.100:8080/i.tar', sha256: A }],
    ['both, agreeing', [`http://h/i.tar#sha256=${A}`], A, { kind: 'url', url: 'http://h/i.tar', sha256: A }],
    ['file:// is a pinned local file', [`file:///srv/i.tar#sha256=${A}`], undefined, { kind: 'path', path: '/srv/i.tar', sha256: A }],
    ['an unpinned https URL is refused', ['https://example.org/i.tar'], undefined, /has no pinned sha256/],
    ['an unpinned file URL is refused', ['file:///srv/i.tar'], undefined, /has no pinned sha256/],
    ['hashes that disagree are refused', [`http://h/i.tar#sha256=${A}`], B, /disagree/],
    ['a short hash is refused', ['http://h/i.tar'], 'abc', /not a sha256/],
    ['another fragment is refused', ['http://h/i.tar#md5=1'], undefined, /is not #sha256=HEX/],
    ['ftp is refused', [`ftp://h/i.tar#sha256=${A}`], undefined, /ftp:\/\/ is not supported/],
  ];
  for (const [name, [image], option, expected] of cases) {
    it(name, () => {
      if (expected instanceof RegExp) {
        assert.throws(
          () => parseImageSource(image, option),
          (e: unknown) => e instanceof UsageError && expected.test(e.message) && e.exitCode === 2,
        );
        return;
      }
      assert.deepEqual(parseImageSource(image, option), expected);
    });
  }
  it('the refusal says how to get the hash', () => {
    assert.throws(
      () => parseImageSource('https://example.org/i.tar'),
      (e: UsageError) => /--image-sha256 HEX/.test(e.fix) && /sha256sum/.test(e.fix),
    );
  });
  it('the sidecar sits next to the tarball', () => {
    assert.equal(sidecarUrl('http://h:8080/a/emergency-image-x86_64.tar'), 'http://h:8080/a/emergency-image-x86_64.tar.meta');
    assert.equal(sidecarUrl('https://h/i.tar?sig=1'), 'https://h/i.tar.meta?sig=1');
  });
});

describe('the sidecar (scripts/image-sidecar.sh) and imageFromSidecar', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emergency-sidecar-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // A small image in the layout, tarred as both builders tar it (ustar), with the sidecar made by the real script.
  const image = join(dir, 'emergency-image');
  const files: Record<string, string | Buffer> = {
    kernel: Buffer.alloc(70_000, 1),
    initrd: Buffer.alloc(90_001, 2),
    cmdline: 'console=ttyS0 emergency.rescue=1\n',
    'kexec-run.sh': '#!/bin/sh\necho kexec\n',
    'kexec-trigger.sh': '#!/bin/sh\necho trigger\n',
    'run-tool.sh': '#!/bin/sh\necho tool\n',
    'bin/busybox': Buffer.alloc(100_003, 3),
    'bin/kexec': Buffer.alloc(5000, 4),
    'bin/ip': Buffer.alloc(6000, 5),
    'image.info': 'format=1\narch=x86_64\nname=unit image\nrescue_unpacked_bytes=123456\n',
  };
  mkdirSync(join(image, 'bin'), { recursive: true });
  for (const [path, data] of Object.entries(files)) writeFileSync(join(image, path), data);
  writeFileSync(
    join(image, 'SHA256SUMS'),
    Object.entries(files)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([p, d]) => `${sha256(d)}  ${p}\n`)
      .join(''),
  );
  const tar = join(dir, 'emergency-image-x86_64.tar');
  execFileSync('tar', ['--format=ustar', '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--mtime=@0', '-cf', tar, '-C', dir, 'emergency-image']);
  execFileSync('sh', [join(REPO, 'scripts/image-sidecar.sh'), tar, `${tar}.meta`]);
  const sidecar = readFileSync(`${tar}.meta`);
  const pinned = sha256(readFileSync(tar));
  const source = { url: 'http://h/emergency-image-x86_64.tar', sha256: pinned };

  it('describes the tarball exactly as reading the tarball itself does', async () => {
    const fromSidecar = imageFromSidecar(sidecar, source);
    const fromTar = await loadImage(tar);
    const { path: _p, url, kernelSignature: signers, ...rest } = fromSidecar;
    const { path: _q, url: _u, kernelSignature: _k, ...expected } = fromTar;
    assert.deepEqual(rest, expected);
    assert.equal(signers, undefined, 'the kernel is not in the sidecar: its signers are unknown, not "unsigned"');
    assert.deepEqual(url, {
      url: source.url,
      sha256: pinned,
      busyboxOffset: fromTar.busybox.offset,
      sumsOffset: url!.sumsOffset,
      sumsBytes: readFileSync(join(image, 'SHA256SUMS')).length,
    });
    const tarBytes = readFileSync(tar);
    assert.deepEqual(
      tarBytes.subarray(url!.sumsOffset, url!.sumsOffset + url!.sumsBytes),
      readFileSync(join(image, 'SHA256SUMS')),
      'SHA256SUMS sits at the offset the host copies from',
    );
  });

  it("gives stage.sh's url mode the sidecar's SHA256SUMS hash and offsets; the 7th argument, the tarball hash, is the pin", () => {
    const fromSidecar = imageFromSidecar(sidecar, source);
    assert.equal(fromSidecar.tarSha256, pinned);
    const args = hostFetchArgs(fromSidecar, { via: 'host', fetcher: 'curl', shaTool: 'sha256sum', tmpfsBytes: 1 });
    assert.deepEqual(args, [
      'url',
      'curl',
      'sha256sum',
      source.url,
      sha256(readFileSync(join(image, 'SHA256SUMS'))),
      String(fromSidecar.busybox.offset),
      String(fromSidecar.url!.sumsOffset),
      String(fromSidecar.url!.sumsBytes),
    ]);
  });

  it('copies the small files, not the programs or the kernel', () => {
    const names = [...tarFiles(sidecar).keys()].sort();
    assert.deepEqual(names, [
      'emergency-image/SHA256SUMS',
      'emergency-image/cmdline',
      'emergency-image/image.info',
      'emergency-image/kexec-run.sh',
      'emergency-image/kexec-trigger.sh',
      'emergency-image/run-tool.sh',
      'members',
      'meta.info',
    ]);
  });

  /** The sidecar with one file replaced (or removed, with undefined). */
  const tampered = (name: string, content: string | undefined): Buffer => {
    const entries = Object.fromEntries(tarFiles(sidecar));
    if (content === undefined) delete entries[name];
    else entries[name] = Buffer.from(content);
    return createTar(entries);
  };
  const text = (name: string) => tarFiles(sidecar).get(name)!.toString('utf8');
  const refusals: [string, () => Buffer, { url: string; sha256: string }, RegExp][] = [
    [
      'a sidecar of another tarball (the pin does not match)',
      () => sidecar,
      { ...source, sha256: A },
      /describes a tarball with sha256 [0-9a-f]{64}, not the pinned a{64}/,
    ],
    [
      'a sidecar claiming the pinned hash with a changed image.info',
      () => tampered('emergency-image/image.info', text('emergency-image/image.info').replace('unit image', 'evil image')),
      source,
      /image\.info, which does not match its SHA256SUMS line/,
    ],
    ['a sidecar without its SHA256SUMS copy', () => tampered('emergency-image/SHA256SUMS', undefined), source, /holds no copy of SHA256SUMS/],
    [
      'a member placed off a tar block',
      () =>
        tampered(
          'members',
          text('members').replace(/^(\d+) (\d+) bin\/busybox$/m, (_l, o, s) => `${Number(o) + 1} ${s} bin/busybox`),
        ),
      source,
      /places bin\/busybox outside the tarball/,
    ],
    ['a members list without the kernel', () => tampered('members', text('members').replace(/^.* kernel\n/m, '')), source, /lists no kernel/],
    [
      'a copy whose size disagrees with the list',
      () =>
        tampered(
          'members',
          text('members').replace(/^(\d+) (\d+) cmdline$/m, (_l, o) => `${o} 5 cmdline`),
        ),
      source,
      /copies cmdline with \d+ bytes, but lists it with 5/,
    ],
    ['not a tar at all', () => Buffer.from('<html>404</html>'), source, /is not a valid sidecar/],
  ];
  for (const [name, make, src, expected] of refusals) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => imageFromSidecar(make(), src),
        (e: unknown) => e instanceof UsageError && expected.test(e.message),
      );
    });
  }
});

describe('planFetch: the host fetches, or this machine does', () => {
  const ok: UrlProbe = { url_fetcher: 'curl', url_sha256: 'sha256sum', url_copy: true, url_reachable: true };
  const image = { tarBytes: 100 << 20 };
  const memory = { beforeKexecBytes: 300 << 20, tmpfsBytes: 150 << 20 };
  const GiB = 1 << 30;
  const cases: [string, UrlProbe, number, RegExp | 'host'][] = [
    ['curl, sha256sum, reachable, enough memory', ok, GiB, 'host'],
    ['busybox wget and busybox sha256sum', { ...ok, url_fetcher: 'busybox', url_sha256: 'busybox' }, GiB, 'host'],
    ['no downloader', { ...ok, url_fetcher: 'none' }, GiB, /no curl, wget or busybox wget/],
    ['no sha256 tool of its own', { ...ok, url_sha256: 'none' }, GiB, /no sha256 tool of its own/],
    ['unreachable', { ...ok, url_reachable: false, url_probe_error: 'Connection timed out' }, GiB, /cannot reach the URL \(Connection timed out\)/],
    ['no dd or head', { ...ok, url_copy: false }, GiB, /lacks dd or head/],
    ['memory for the staged files but not the tarball too', ok, 350 << 20, /not the 400 MiB for the downloaded tarball/],
  ];
  for (const [name, probe, available, expected] of cases) {
    it(name, () => {
      const plan = planFetch(probe, available, image, memory);
      if (expected === 'host')
        assert.deepEqual(plan, { via: 'host', fetcher: probe.url_fetcher, shaTool: probe.url_sha256, tmpfsBytes: (150 << 20) + (100 << 20) });
      else assert.ok(plan.via === 'operator' && expected.test(plan.reason), JSON.stringify(plan));
    });
  }
  // A streamed tarball: written whole into the tmpfs when the memory for it is there on top, else through tee.
  const streams: [string, number, ReturnType<typeof planStream>][] = [
    ['plenty of memory: the tarball whole in the tmpfs', GiB, { via: 'file', tmpfsBytes: (150 << 20) + (100 << 20) }],
    ['exactly enough for both', 400 << 20, { via: 'file', tmpfsBytes: (150 << 20) + (100 << 20) }],
    ['enough for the staged files alone: hashed through tee as it unpacks', (400 << 20) - 1, { via: 'pipe' }],
  ];
  for (const [name, available, expected] of streams) it(`planStream: ${name}`, () => assert.deepEqual(planStream(available, image, memory), expected));
  it('the probe section is parsed by its schema, a missing or unknown line named', () => {
    const output = (body: string) => parseScriptOutput(`preflight_format=1\n@@emergency-section url-probe\n${body}`);
    assert.deepEqual(parseUrlProbe(output('url_fetcher=wget-busybox\nurl_sha256=busybox\nurl_copy=1\nurl_reachable=0\nurl_probe_error=No route to host\n')), {
      url_fetcher: 'wget-busybox',
      url_sha256: 'busybox',
      url_copy: true,
      url_reachable: false,
      url_probe_error: 'No route to host',
    });
    assert.throws(() => parseUrlProbe(output('url_fetcher=curl\nurl_sha256=sha256sum\nurl_copy=1\n')), /fact "url_reachable"/);
    assert.throws(() => parseUrlProbe(output('url_fetcher=ftp\nurl_sha256=sha256sum\nurl_copy=1\nurl_reachable=1\n')), /url_fetcher/);
    assert.throws(() => parseUrlProbe(parseScriptOutput('preflight_format=1\n')), /section "url-probe" is missing/);
  });
  it('states a rate', () => assert.equal(describeRate(27_000_000, 1350), '27.0 MB in 1.4 s (20.0 MB/s)'));
});
