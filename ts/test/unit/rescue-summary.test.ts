import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  firstCommand,
  formatBytes,
  parseBlkid,
  parseMounts,
  parseOldSystem,
  noReport,
  parseRestoreSteps,
  renderOldSystem,
  renderRescueSummary,
  restoreFromAnswer,
  type MountEntry,
  type RestoreSource,
} from '../../rescue-summary.js';
import { CONFIRM_AND_REPORT, parseRescueAnswer } from '../../boundary/rescue.js';
import { parseScriptOutput } from '../../sections.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
const shells = [['dash'], ['busybox', 'ash']].filter((s) => has(s[0]));

const mount = (device: string, fstype: string, mountpoint = '/', options = 'rw,relatime'): MountEntry => ({ device, mountpoint, fstype, options });

/** What preflight.sh prints for a host with NVMe + a second disk, root on ext4, /home on xfs. */
const PREFLIGHT = [
  'preflight_format=1',
  'hostname=web1',
  '@@emergency-section mounts',
  '/dev/root / ext4 rw 0 0',
  '/dev/nvme0n1p2 / ext4 rw,relatime,errors=remount-ro 0 0',
  '/dev/nvme0n1p1 /boot/efi vfat rw 0 0',
  '/dev/sda1 /srv/my\\040data xfs ro,noatime 0 0',
  '@@emergency-section block-devices',
  'disk\tnvme0n1\t1000215216\tSamsung SSD 980 1TB',
  'part\tnvme0n1p1\t1048576\t',
  'part\tnvme0n1p2\t999164560\t',
  'disk\tsda\t7814037168\tST4000DM004-2CV1',
  'part\tsda1\t7814035087\t',
  'disk\tbroken\tnot-a-number\t',
  '@@emergency-section disk-labels',
  'nvme0n1p2\troot\\x20fs',
  '@@emergency-section blkid',
  '/dev/nvme0n1p2: LABEL="rootfs" UUID="1111-2222" BLOCK_SIZE="4096" TYPE="ext4" PARTUUID="aa"',
  '/dev/sda1: LABEL="my \\"data\\"" UUID="3333" TYPE="xfs"',
  '@@emergency-section preflight-end',
  '',
].join('\n');

describe('the old system from preflight', () => {
  it('parses mounts (octal escapes), the root as the last / line, devices with labels and blkid', () => {
    const old = parseOldSystem(parseScriptOutput(PREFLIGHT));
    assert.equal(old.hostname, 'web1');
    assert.deepEqual(old.root, mount('/dev/nvme0n1p2', 'ext4', '/', 'rw,relatime,errors=remount-ro'));
    assert.deepEqual(old.mounts[3], mount('/dev/sda1', 'xfs', '/srv/my data', 'ro,noatime'));
    assert.deepEqual(
      old.blockDevices.map((d) => [d.kind, d.name, d.bytes, d.model, d.label, d.fstype, d.uuid]),
      [
        ['disk', 'nvme0n1', 1000215216 * 512, 'Samsung SSD 980 1TB', undefined, undefined, undefined],
        ['part', 'nvme0n1p1', 1048576 * 512, '', undefined, undefined, undefined],
        // udev's label wins over blkid's (both read the same superblock; udev's is already there).
        ['part', 'nvme0n1p2', 999164560 * 512, '', 'root fs', 'ext4', '1111-2222'],
        ['disk', 'sda', 7814037168 * 512, 'ST4000DM004-2CV1', undefined, undefined, undefined],
        ['part', 'sda1', 7814035087 * 512, '', 'my "data"', 'xfs', '3333'],
      ],
    );
  });

  it('renders the root, the first command, the other mounts and the devices', () => {
    const text = renderOldSystem(parseOldSystem(parseScriptOutput(PREFLIGHT)));
    assert.equal(
      text,
      [
        'old root:  /dev/nvme0n1p2 (ext4, rw,relatime,errors=remount-ro)',
        'first:     e2fsck -fn /dev/nvme0n1p2',
        'old mounts:',
        '  /dev/root on / (ext4)',
        '  /dev/nvme0n1p1 on /boot/efi (vfat)',
        '  /dev/sda1 on /srv/my data (xfs)',
        'block devices:',
        '  nvme0n1      476.9 GiB  Samsung SSD 980 1TB',
        '    nvme0n1p1  512.0 MiB',
        '    nvme0n1p2  476.4 GiB  ext4  label=root fs',
        '  sda            3.6 TiB  ST4000DM004-2CV1',
        '    sda1         3.6 TiB  xfs  label=my "data"',
        '',
      ].join('\n'),
    );
  });

  it('says so when preflight saw no root and no devices', () => {
    const text = renderOldSystem(parseOldSystem(parseScriptOutput('hostname=x\n@@emergency-section mounts\n@@emergency-section block-devices\n')));
    assert.match(text, /^old root: {2}unknown/);
    assert.match(text, /block devices: none seen by preflight/);
  });

  it('parseMounts skips short lines; parseBlkid keys by device name without /dev/', () => {
    assert.deepEqual(parseMounts('\nonly two\n'), []);
    assert.deepEqual([...parseBlkid('/dev/vda1: TYPE="btrfs"\ngarbage\n')], [['vda1', { TYPE: 'btrfs' }]]);
  });
});

describe('firstCommand', () => {
  const table: [MountEntry | undefined, string | undefined, RegExp | undefined][] = [
    [mount('/dev/sda2', 'ext4'), 'e2fsck -fn /dev/sda2', undefined],
    [mount('/dev/sda2', 'ext3'), 'e2fsck -fn /dev/sda2', undefined],
    [mount('/dev/sda2', 'ext2'), 'e2fsck -fn /dev/sda2', undefined],
    [mount('/dev/nvme0n1p3', 'xfs'), 'xfs_repair -n /dev/nvme0n1p3', undefined],
    [mount('/dev/vda1', 'btrfs', '/', 'rw,subvol=/@'), 'btrfs check --readonly /dev/vda1', undefined],
    [mount('rpool/ROOT/debian', 'zfs'), 'zpool import -N rpool', /zpool status/],
    [mount('tank', 'zfs'), 'zpool import -N tank', /zpool status/],
    [mount('/dev/mapper/vg0-root', 'ext4'), 'e2fsck -fn /dev/mapper/vg0-root', /vgchange -ay.*cryptsetup open/],
    [mount('/dev/dm-0', 'xfs'), 'xfs_repair -n /dev/dm-0', /LVM or dm-crypt/],
    [mount('/dev/md0', 'ext4'), 'e2fsck -fn /dev/md0', /mdadm --assemble --scan/],
    [mount('/dev/root', 'ext4'), 'e2fsck -fn /dev/DEVICE', /mounted as \/dev\/root/],
    [mount('root', 'tmpfs'), undefined, /tmpfs \(root\), not a disk file system/],
    [mount('overlay', 'overlay'), undefined, /not a disk file system/],
    [mount('server:/export', 'nfs4'), undefined, /on the network \(nfs4 server:\/export\)/],
    [mount('/dev/sdb1', 'f2fs'), undefined, /no read-only check is known for f2fs/],
    [undefined, undefined, /no file system on \//],
  ];
  for (const [root, command, note] of table) {
    it(`${root ? `${root.fstype} on ${root.device}` : 'no root'} → ${command ?? 'no command'}`, () => {
      const first = firstCommand(root);
      assert.equal(first.command, command);
      if (note) assert.match(first.note ?? '', note);
      else assert.equal(first.note, undefined);
    });
  }
});

describe('formatBytes and parseRestoreSteps', () => {
  for (const [bytes, text] of [
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536 * 1024 * 1024, '1.5 GiB'],
    [4000787030016, '3.6 TiB'],
  ] as const) {
    it(`${bytes} → ${text}`, () => assert.equal(formatBytes(bytes), text));
  }
  it("reads the restore report's step and network records (KIND NAME STATUS MESSAGE) and skips the rest", () => {
    const report = [
      'format\t1\t-\temergency restore report',
      'step\thost-keys\tok\t3 installed',
      'network\t-\tfailed\tFAILED: route 10.9.0.0/16',
      'step\tgateway\tweird\tx',
      'step\tshort\tok',
      'ok\tan old STATUS TEXT line',
      'step\tnetwork\tskipped\ta message\twith a tab',
      'done\t-\tfailed\t1 failed step(s)',
      '',
    ].join('\n');
    assert.deepEqual(parseRestoreSteps(report), [
      { status: 'ok', text: 'host-keys: 3 installed' },
      { status: 'failed', text: 'network: FAILED: route 10.9.0.0/16' },
      { status: 'skipped', text: 'network: a message\twith a tab' },
    ]);
  });
});

/** A report as restore.sh writes it for a rescue whose gateway did not answer: failures, skips, the last chance. */
const FAILED_REPORT = [
  'format\t1\t-\temergency restore report',
  'step\thost-keys\tok\thost keys installed: 3',
  'step\tauthorized-keys\tok\tauthorized keys for root: 2',
  'step\tdhcp-identity\tskipped\tno DHCP client identity was packed',
  'network\t-\tfailed\troute 10.0.0.0/8 via 10.0.3.2: RTNETLINK answers: Network is unreachable',
  'network\t-\tskipped\tmultipath route 192.0.2.0/24 (not restored)',
  'step\tnetwork\tfailed\tnetwork.sh reported 1 failed step(s); see /var/log/emergency-restore.log',
  'step\tgateway\tfailed\tno default gateway answered within 8 s: 10.0.2.2 eth0,',
  'step\tlast-chance-dhcp\tok\tlast chance: DHCP started on eth0, next to the static addresses',
  'step\tfallback-reboot\tok\tarmed: reboots into the installed system unless confirmed within 60 s',
  'done\t-\tfailed\t2 failed step(s)',
  '',
].join('\n');
const REPORT_PATH = '/var/log/emergency-restore.report';

describe('renderRescueSummary', () => {
  const oldSystem = 'old root:  /dev/vda1 (ext4, rw)\nfirst:     e2fsck -fn /dev/vda1\n';
  const header = "emergency rescue system for web1: running from RAM, the old system's disks are not mounted\n";
  const leave = 'to leave:  reboot   (boots the installed system; the rescue keeps nothing)\n';
  const cases: [string, RestoreSource, string][] = [
    [
      'a report with failures, skipped items and the last-chance DHCP: every step and network item, in order',
      { report: FAILED_REPORT },
      'restore:\n' +
        '  ok       host-keys: host keys installed: 3\n' +
        '  ok       authorized-keys: authorized keys for root: 2\n' +
        '  skipped  dhcp-identity: no DHCP client identity was packed\n' +
        '  failed   network: route 10.0.0.0/8 via 10.0.3.2: RTNETLINK answers: Network is unreachable\n' +
        '  skipped  network: multipath route 192.0.2.0/24 (not restored)\n' +
        '  failed   network: network.sh reported 1 failed step(s); see /var/log/emergency-restore.log\n' +
        '  failed   gateway: no default gateway answered within 8 s: 10.0.2.2 eth0,\n' +
        '  ok       last-chance-dhcp: last chance: DHCP started on eth0, next to the static addresses\n' +
        '  ok       fallback-reboot: armed: reboots into the installed system unless confirmed within 60 s\n',
    ],
    ['an empty report', { report: '' }, 'restore:\n  (no steps recorded)\n'],
    ['an unfinished report (no done line): what it holds', { report: 'format\t1\t-\tx\nstep\thost-keys\tok\t1\n' }, 'restore:\n  ok       host-keys: 1\n'],
    ['no report', noReport(REPORT_PATH), `restore:\n  (no restore report at ${REPORT_PATH}: restore.sh did not run, or could not write it)\n`],
  ];
  for (const [name, restore, middle] of cases) {
    it(name, () => assert.equal(renderRescueSummary({ hostname: 'web1', oldSystem, restore }), header + middle + oldSystem + leave));
  }
  it('names an unnamed host so', () => {
    assert.match(renderRescueSummary({ hostname: '', oldSystem, restore: { report: '' } }), /^emergency rescue system for an unnamed host: /);
  });
});

describe("restoreFromAnswer: the CLI's restore part from what the wait step read", () => {
  const confirmed = 'fallback_state=confirmed\nfallback_seconds=60\nfallback_confirmed_by=cli\nfallback_confirmed_after_s=12\n';
  const section = '@@emergency-section restore-report\n';
  const cases: [string, string | undefined, RestoreSource][] = [
    // The wire format drops the section's last newline; the rendering ignores it (the unit test below shows it).
    ['a report: its text, as the banner reads the file', `${confirmed}${section}${FAILED_REPORT}`, { report: FAILED_REPORT.replace(/\n$/, '') }],
    ['an empty report file: empty, so "no steps recorded" as in the banner', `${confirmed}${section}`, { report: '' }],
    [
      'an unfinished report: its text (the schema refuses it; the banner still shows it)',
      `${confirmed}${section}step\tx\tok\t1\n`,
      { report: 'step\tx\tok\t1' },
    ],
    ['no report file (no section): says so', confirmed, noReport(REPORT_PATH)],
    [
      'nothing read (the ssh run failed): says so, without claiming there was no report',
      undefined,
      { none: 'the CLI could not read the restore report; log in to see the banner' },
    ],
  ];
  for (const [name, output, expected] of cases) {
    it(name, () => assert.deepEqual(restoreFromAnswer(output === undefined ? undefined : parseRescueAnswer(output), REPORT_PATH), expected));
  }
  it('the ssh command prints the section only when the report file exists', () => {
    assert.match(CONFIRM_AND_REPORT, /if \[ -f \/var\/log\/emergency-restore\.report \]; then echo '@@emergency-section restore-report'; cat /);
  });
});

describe('rescue-banner.sh writes the same summary', () => {
  const SCRIPT = join(REPO, 'scripts/rescue-banner.sh');
  const dir = mkdtempSync(join(tmpdir(), 'emergency-banner-test-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is shellcheck-clean', { skip: has('shellcheck') ? false : 'shellcheck not installed' }, () => {
    const r = spawnSync('shellcheck', ['-s', 'sh', SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout);
  });

  // The Nix image has gawk, the Debian test image busybox's awk, this machine its own: the script is run with each.
  const awks: { name: string; path: string }[] = [{ name: 'awk', path: process.env.PATH ?? '' }];
  if (has('busybox')) {
    const bin = mkdtempSync(join(dir, 'busybox-awk-'));
    symlinkSync(spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim(), join(bin, 'awk'));
    awks.push({ name: 'busybox awk', path: `${bin}:${process.env.PATH ?? ''}` });
  }
  const oldSystem = renderOldSystem(parseOldSystem(parseScriptOutput(PREFLIGHT)));
  const cases: { name: string; report?: string }[] = [
    { name: 'a report with failures, skipped items and the last-chance DHCP', report: FAILED_REPORT },
    { name: 'a clean report', report: 'format\t1\t-\temergency restore report\nstep\thost-keys\tok\t3 installed\ndone\t-\tok\t0 failed step(s)\n' },
    { name: 'a message with a tab, odd lines, no trailing newline', report: 'step\tx\tok\ta\tb\nok\told line\nstep\ty\tmaybe\tz\nnetwork\t-\tskipped\t%s %d' },
    { name: 'an empty report', report: '' },
    { name: 'no report', report: undefined },
  ];
  for (const shell of shells) {
    for (const awk of awks) {
      for (const c of cases) {
        it(`${shell.join(' ')}, ${awk.name}: ${c.name}`, () => {
          const data = mkdtempSync(join(dir, 'data-'));
          writeFileSync(join(data, 'restore.env'), 'hostname=web1\nboot_id=abc\n');
          writeFileSync(join(data, 'old-system.txt'), oldSystem);
          const env: Record<string, string> = { PATH: awk.path, EMERGENCY_DIR: data, BANNER: join(data, 'out/banner'), RESTORE_REPORT: join(data, 'report') };
          if (c.report !== undefined) writeFileSync(env.RESTORE_REPORT, c.report);
          const r = spawnSync(shell[0], [...shell.slice(1), SCRIPT], { env, encoding: 'utf8' });
          assert.equal(r.status, 0, r.stderr);
          // What the CLI prints for the same data: the hostname and old-system.txt it sent, the report it read.
          const expected = renderRescueSummary({
            hostname: 'web1',
            oldSystem,
            restore: c.report === undefined ? noReport(env.RESTORE_REPORT) : { report: c.report },
          });
          assert.equal(readFileSync(env.BANNER, 'utf8'), expected);
        });
      }
    }
  }
});

/**
 * `rescue-banner.sh show`, what a login shell runs: sshd answers before the network phase ends, so a login may come
 * before the banner. It waits for it (up to 3 s) while the restore runs, then says the restore is still running.
 */
describe('rescue-banner.sh show, for a login during the restore', () => {
  const SCRIPT = join(REPO, 'scripts/rescue-banner.sh');
  const dir = mkdtempSync(join(tmpdir(), 'emergency-banner-show-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  function paths() {
    const root = mkdtempSync(join(dir, `r${++n}-`));
    return { BANNER: join(root, 'banner'), RESTORE_REPORT: join(root, 'report'), PATH: process.env.PATH ?? '' };
  }
  function show(shell: string[], env: Record<string, string>): Promise<{ stdout: string; seconds: number }> {
    const started = Date.now();
    const child = spawn(shell[0], [...shell.slice(1), SCRIPT, 'show'], { env });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    return new Promise((resolve) => child.on('close', () => resolve({ stdout, seconds: (Date.now() - started) / 1000 })));
  }
  for (const shell of shells) {
    const name = shell.join(' ');
    it(`${name}: the banner there: printed at once`, async () => {
      const env = paths();
      writeFileSync(env.BANNER, 'BANNER\n');
      const r = await show(shell, env);
      assert.equal(r.stdout, 'BANNER\n');
      assert.ok(r.seconds < 1, `${r.seconds} s`);
    });
    it(`${name}: the restore running, the banner written a moment later: waits and prints it`, async () => {
      const env = paths();
      writeFileSync(`${env.RESTORE_REPORT}.tmp`, '');
      const r = show(shell, env);
      setTimeout(() => writeFileSync(env.BANNER, 'BANNER\n'), 700);
      assert.equal((await r).stdout, 'BANNER\n');
    });
    it(`${name}: the restore still running after 3 s: says so and where the banner will be`, async () => {
      const env = paths();
      writeFileSync(`${env.RESTORE_REPORT}.tmp`, '');
      const r = await show(shell, env);
      assert.equal(r.stdout, `emergency rescue system: the restore is still running (network, gateway check); its results: cat ${env.BANNER}\n`);
      assert.ok(r.seconds >= 2.5 && r.seconds < 6, `${r.seconds} s`);
    });
    it(`${name}: no restore at all (booted without data, nothing written): prints nothing, at once`, async () => {
      const r = await show(shell, paths());
      assert.equal(r.stdout, '');
      assert.ok(r.seconds < 1, `${r.seconds} s`);
    });
  }
});

describe("preflight.sh's disk sections", () => {
  for (const shell of shells) {
    it(`${shell.join(' ')}: this machine's root is the last / line of /proc/self/mounts`, () => {
      const r = spawnSync(shell[0], [...shell.slice(1), join(REPO, 'scripts/preflight.sh'), 'nobody'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const output = parseScriptOutput(r.stdout);
      for (const section of ['mounts', 'block-devices', 'disk-labels', 'preflight-end'])
        assert.ok(
          output.sections.some((s) => s.name === section),
          `section ${section}`,
        );
      const rootLine = readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .filter((l) => l.split(' ')[1] === '/')
        .pop();
      const old = parseOldSystem(output);
      assert.equal(old.root?.device, rootLine?.split(' ')[0]);
      assert.equal(old.root?.fstype, rootLine?.split(' ')[2]);
      // Every disk sysfs lists (but empty loop/ram devices) is there, with its size.
      for (const name of readdirSync('/sys/block')) {
        const sectors = Number(readFileSync(`/sys/block/${name}/size`, 'utf8'));
        if (/^(loop|ram|zram)/.test(name) && sectors === 0) continue;
        assert.equal(old.blockDevices.find((d) => d.name === name)?.bytes, sectors * 512, name);
      }
    });
  }
});
