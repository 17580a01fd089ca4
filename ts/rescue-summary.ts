/**
 * What the rescue tells the operator when they log in, pure: the old system's file systems and block devices
 * (from preflight.sh's `mounts`, `block-devices`, `disk-labels` and `blkid` sections), the first command to run
 * for the old root's file system type, the restore steps' results and how to leave.
 *
 * One summary, two writers, the same data: the old-system part is rendered here once and carried in the restore
 * data (`/emergency/old-system.txt`, docs/image-layout.md) next to the hostname (`restore.env`); restore.sh writes
 * the restore report. scripts/rescue-banner.sh turns those three into the login banner; the CLI, which sent the
 * first two and reads the report once the rescue is up, prints renderRescueSummary's rendering of the same three.
 * A unit test runs the script against this function, so the two cannot drift apart.
 */
import type { ScriptOutput } from './sections.js';

/** One line of /proc/mounts. */
export interface MountEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string;
}

/** A disk or partition from /sys/block, with what udev and blkid know of it. */
export interface BlockDevice {
  kind: 'disk' | 'part';
  name: string;
  bytes: number;
  model: string;
  label?: string;
  fstype?: string;
  uuid?: string;
}

/** The old system's storage as preflight saw it. */
export interface OldSystem {
  hostname: string;
  /** The file system mounted on `/` (the last such line: later mounts hide earlier ones). */
  root?: MountEntry;
  mounts: MountEntry[];
  blockDevices: BlockDevice[];
}

/** The first command to run for the old root, and what to know before running it. */
export interface FirstCommand {
  command?: string;
  note?: string;
}

/** One restore step's result, as restore.sh records it (`STATUS<TAB>TEXT` lines). */
export interface RestoreStep {
  status: 'ok' | 'failed' | 'skipped';
  text: string;
}

/** /proc/mounts escapes space, tab, newline and backslash as octal (\040). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** udev's by-label names escape unsafe bytes as \xHH. */
function unescapeUdev(name: string): string {
  return name.replace(/\\x([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export function parseMounts(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [device, mountpoint, fstype, options] = line.trim().split(/\s+/);
    if (!device || !mountpoint || !fstype) continue;
    mounts.push({ device: unescapeMount(device), mountpoint: unescapeMount(mountpoint), fstype, options: options ?? '' });
  }
  return mounts;
}

/** `KEY="value"` pairs of one blkid line, by device. */
export function parseBlkid(text: string): Map<string, Record<string, string>> {
  const byDevice = new Map<string, Record<string, string>>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(': ');
    if (colon <= 0) continue;
    const values: Record<string, string> = {};
    for (const match of line.slice(colon + 2).matchAll(/([A-Z_]+)="((?:[^"\\]|\\.)*)"/g)) values[match[1]] = match[2].replace(/\\(.)/g, '$1');
    byDevice.set(line.slice(0, colon).replace(/^\/dev\//, ''), values);
  }
  return byDevice;
}

/** The old system from preflight's output. */
export function parseOldSystem(output: ScriptOutput): OldSystem {
  const section = (name: string) => output.sections.find((s) => s.name === name)?.body ?? '';
  const mounts = parseMounts(section('mounts')).filter((m) => m.device !== 'rootfs');
  const root = mounts.filter((m) => m.mountpoint === '/').pop();
  const labels = new Map<string, string>();
  for (const line of section('disk-labels').split('\n')) {
    const [device, label] = line.split('\t');
    if (device && label) labels.set(device, unescapeUdev(label));
  }
  const blkid = parseBlkid(section('blkid'));
  const blockDevices: BlockDevice[] = [];
  for (const line of section('block-devices').split('\n')) {
    const [kind, name, sectors, model = ''] = line.split('\t');
    if ((kind !== 'disk' && kind !== 'part') || !name || !/^\d+$/.test(sectors ?? '')) continue;
    const probed = blkid.get(name) ?? {};
    const label = labels.get(name) ?? probed.LABEL;
    blockDevices.push({
      kind,
      name,
      // /sys/block/*/size counts 512-byte sectors whatever the device's own sector size.
      bytes: Number(sectors) * 512,
      model: model.trim(),
      ...(label ? { label } : {}),
      ...(probed.TYPE ? { fstype: probed.TYPE } : {}),
      ...(probed.UUID ? { uuid: probed.UUID } : {}),
    });
  }
  return { hostname: output.facts.hostname ?? '', root, mounts, blockDevices };
}

/** The read-only check to run first on the old root, by its file system type. */
export function firstCommand(root: MountEntry | undefined): FirstCommand {
  if (!root) return { note: 'preflight saw no file system on / (no /proc/mounts line); look at the block devices above' };
  let device = root.device;
  let note: string | undefined;
  if (device === '/dev/root') {
    // The kernel's name for a root= given without an initrd: the real device is not in the mount table.
    device = '/dev/DEVICE';
    note = 'the old root was mounted as /dev/root; put its real device (from the list above) in place of /dev/DEVICE';
  } else if (/^\/dev\/(mapper\/|dm-)/.test(device)) {
    note = 'the old root is on LVM or dm-crypt: activate it first (`vgchange -ay`, or `cryptsetup open DEVICE NAME`)';
  } else if (/^\/dev\/md/.test(device)) {
    note = 'the old root is on software RAID: assemble it first (`mdadm --assemble --scan`)';
  }
  switch (root.fstype) {
    case 'ext2':
    case 'ext3':
    case 'ext4':
      return { command: `e2fsck -fn ${device}`, note };
    case 'xfs':
      return { command: `xfs_repair -n ${device}`, note };
    case 'btrfs':
      return { command: `btrfs check --readonly ${device}`, note };
    case 'zfs':
      // A ZFS "device" is the dataset (pool/dataset); the pool is imported without mounting anything.
      return { command: `zpool import -N ${device.split('/')[0]}`, note: 'then `zpool status` and `zfs list`; `zpool scrub` only when you mean to write' };
    case 'tmpfs':
    case 'ramfs':
    case 'overlay':
    case 'squashfs':
      return { note: `the old root was ${root.fstype} (${root.device}), not a disk file system: nothing to check there; its disks are listed above` };
    case 'nfs':
    case 'nfs4':
    case 'cifs':
      return { note: `the old root was on the network (${root.fstype} ${root.device}): check it on its server` };
    default:
      return { note: `no read-only check is known for ${root.fstype}; see the block devices above`, command: undefined };
  }
}

/** Bytes in the largest binary unit that keeps the number at least 1, one decimal. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The old system's part of the summary: its root, the first command, its mounts and block devices. */
export function renderOldSystem(old: OldSystem): string {
  const lines: string[] = [];
  const root = old.root;
  lines.push(root ? `old root:  ${root.device} (${root.fstype}, ${root.options})` : 'old root:  unknown (no / in /proc/mounts)');
  const first = firstCommand(root);
  if (first.command) lines.push(`first:     ${first.command}`);
  if (first.note) lines.push(`           ${first.note}`);
  const others = old.mounts.filter((m) => m !== root);
  if (others.length) {
    lines.push('old mounts:');
    for (const m of others) lines.push(`  ${m.device} on ${m.mountpoint} (${m.fstype})`);
  }
  if (old.blockDevices.length) {
    lines.push('block devices:');
    const width = Math.max(...old.blockDevices.map((d) => d.name.length + (d.kind === 'part' ? 2 : 0)));
    for (const d of old.blockDevices) {
      const name = (d.kind === 'part' ? `  ${d.name}` : d.name).padEnd(width);
      const details = [d.model, d.fstype, d.label ? `label=${d.label}` : undefined].filter(Boolean).join('  ');
      lines.push(`  ${name}  ${formatBytes(d.bytes).padStart(9)}${details ? `  ${details}` : ''}`);
    }
  } else {
    lines.push('block devices: none seen by preflight (/sys/block)');
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The restore's results, one per step: the restore report's `step` and `network` records
 * (`KIND<TAB>NAME<TAB>STATUS<TAB>MESSAGE` lines, docs/image-layout.md). Other lines (the format and `done` lines,
 * anything unknown) are skipped, as rescue-banner.sh's awk skips them.
 */
export function parseRestoreSteps(text: string): RestoreStep[] {
  const steps: RestoreStep[] = [];
  const known = (status: string): status is RestoreStep['status'] => status === 'ok' || status === 'failed' || status === 'skipped';
  for (const line of text.split('\n')) {
    const [kind, name, status, ...message] = line.split('\t');
    if (message.length && (kind === 'step' || kind === 'network') && known(status))
      steps.push({ status, text: `${kind === 'step' ? name : 'network'}: ${message.join('\t')}` });
  }
  return steps;
}

/**
 * The restore part of the summary: the report's text as restore.sh wrote it, or why there is none to show. The
 * banner and the CLI both start from the report file; the CLI reads it in the wait step's one ssh run.
 */
export type RestoreSource = { report: string } | { none: string };

/** What the banner and the CLI say when the rescue has no restore report (restore.sh did not run or write it). */
export function noReport(path: string): RestoreSource {
  return { none: `no restore report at ${path}: restore.sh did not run, or could not write it` };
}

/**
 * The restore part of the CLI's summary, from what the wait step read: the report when the file existed (even
 * empty or unfinished: the banner shows what it holds), else why there is none. `path` is the report's path.
 */
export function restoreFromAnswer(answer: { reportText?: string; restoreRunning?: boolean } | undefined, path: string): RestoreSource {
  if (!answer) return { none: 'the CLI could not read the restore report; log in to see the banner' };
  if (answer.restoreRunning) return { none: `the restore was still running (no report at ${path} yet); log in to see the banner once it is done` };
  return answer.reportText === undefined ? noReport(path) : { report: answer.reportText };
}

/** Everything the summary shows: the same data the banner script reads (restore.env, old-system.txt, the report). */
export interface RescueSummaryInput {
  hostname: string;
  oldSystem: string;
  restore: RestoreSource;
}

/** The header line, shared by the banner script (which prints the same words). */
export function summaryHeader(hostname: string): string {
  return `emergency rescue system for ${hostname || 'an unnamed host'}: running from RAM, the old system's disks are not mounted`;
}

/**
 * The rescue's summary: the login banner's text (scripts/rescue-banner.sh writes the same, a unit test runs it
 * against this) and what the CLI prints once the rescue is up.
 */
export function renderRescueSummary(input: RescueSummaryInput): string {
  const lines = [summaryHeader(input.hostname), 'restore:'];
  if ('none' in input.restore) lines.push(`  (${input.restore.none})`);
  else {
    const steps = parseRestoreSteps(input.restore.report);
    if (!steps.length) lines.push('  (no steps recorded)');
    for (const step of steps) lines.push(`  ${step.status.padEnd(7)}  ${step.text}`);
  }
  let text = `${lines.join('\n')}\n${input.oldSystem}`;
  if (!text.endsWith('\n')) text += '\n';
  text += 'to leave:  reboot   (boots the installed system; the rescue keeps nothing)\n';
  return text;
}
