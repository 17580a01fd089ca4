import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  parseRestoreSteps,
  renderOldSystem,
  renderRescueSummary,
  type MountEntry,
} from '../../rescue-summary.js';
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
  it('reads STATUS<TAB>TEXT lines and drops others', () => {
    assert.deepEqual(parseRestoreSteps('ok\thost keys: 2 installed\nnonsense\nfailed\tnetwork x y\nskipped\tz\nweird\tq\n'), [
      { status: 'ok', text: 'host keys: 2 installed' },
      { status: 'failed', text: 'network x y' },
      { status: 'skipped', text: 'z' },
    ]);
  });
  it("reads the restore report's step and network records (KIND NAME STATUS MESSAGE)", () => {
    const report = [
      'format\t1\t-\temergency restore report',
      'step\thost-keys\tok\t3 installed',
      'network\t-\tfailed\tFAILED: route 10.9.0.0/16',
      'step\tgateway\tweird\tx',
      'done\t-\tfailed\t1 failed step(s)',
      '',
    ].join('\n');
    assert.deepEqual(parseRestoreSteps(report), [
      { status: 'ok', text: 'host-keys: 3 installed' },
      { status: 'failed', text: 'network: FAILED: route 10.9.0.0/16' },
    ]);
  });
});

describe('renderRescueSummary', () => {
  const oldSystem = 'old root:  /dev/vda1 (ext4, rw)\nfirst:     e2fsck -fn /dev/vda1\n';
  it('names the host, lists the restore steps, the old system and how to leave', () => {
    assert.equal(
      renderRescueSummary({
        hostname: 'web1',
        oldSystem,
        restore: [
          { status: 'ok', text: 'host keys: 2 installed' },
          { status: 'failed', text: 'network: 1 step' },
        ],
        fallback: 'armed: reboots in 600 s',
      }),
      "emergency rescue system for web1: running from RAM, the old system's disks are not mounted\n" +
        'restore:\n  ok       host keys: 2 installed\n  failed   network: 1 step\n' +
        oldSystem +
        'to leave:  reboot   (boots the installed system; the rescue keeps nothing)\nfallback:  armed: reboots in 600 s\n',
    );
  });
  it('leaves out what is not known', () => {
    const text = renderRescueSummary({ hostname: '', oldSystem });
    assert.match(text, /for an unnamed host/);
    assert.doesNotMatch(text, /restore:|fallback:/);
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

  const oldSystem = renderOldSystem(parseOldSystem(parseScriptOutput(PREFLIGHT)));
  const cases: { name: string; report?: string; steps?: string; fallback?: string }[] = [
    {
      name: 'with steps and fallback',
      steps: 'ok\thost keys: 2 installed\nfailed\tnetwork.sh reported 1 failed step(s); see /var/log/x\n',
      fallback: 'armed: the installed system boots in 600 s unless you log in\nsecond line\n',
    },
    { name: 'with an empty steps file and no fallback', steps: '', fallback: undefined },
    { name: 'without a steps file', steps: undefined, fallback: undefined },
    {
      name: 'with a restore report (which wins over the steps file)',
      report:
        'format\t1\t-\temergency restore report\nstep\thost-keys\tok\t3 installed\nnetwork\t-\tskipped\tskipped: multipath route\ndone\t-\tok\t0 failed step(s)\n',
      steps: 'ok\tignored\n',
      fallback: undefined,
    },
  ];
  for (const shell of shells) {
    for (const c of cases) {
      it(`${shell.join(' ')}: ${c.name}`, () => {
        const data = mkdtempSync(join(dir, 'data-'));
        writeFileSync(join(data, 'restore.env'), 'hostname=web1\nboot_id=abc\n');
        writeFileSync(join(data, 'old-system.txt'), oldSystem);
        const env: Record<string, string> = {
          PATH: process.env.PATH ?? '',
          EMERGENCY_DIR: data,
          BANNER: join(data, 'out/banner'),
          RESTORE_REPORT: join(data, 'report'),
          RESTORE_STEPS: join(data, 'steps'),
          FALLBACK_STATE: join(data, 'fallback'),
        };
        if (c.report !== undefined) writeFileSync(env.RESTORE_REPORT, c.report);
        if (c.steps !== undefined) writeFileSync(env.RESTORE_STEPS, c.steps);
        if (c.fallback !== undefined) writeFileSync(env.FALLBACK_STATE, c.fallback);
        const r = spawnSync(shell[0], [...shell.slice(1), SCRIPT], { env, encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        const expected = renderRescueSummary({
          hostname: 'web1',
          oldSystem,
          restore: c.report !== undefined ? parseRestoreSteps(c.report) : c.steps === undefined ? undefined : parseRestoreSteps(c.steps),
          fallback: c.fallback?.split('\n')[0],
        });
        assert.equal(readFileSync(env.BANNER, 'utf8'), expected);
      });
    }
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
