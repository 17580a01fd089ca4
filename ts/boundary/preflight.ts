/**
 * The boundary of scripts/preflight.sh: its facts and sections, declared once. A new fact is one line here
 * and one `fact` line in the script; a misspelt or forgotten one fails the parse with its name.
 */
import { z } from 'zod';
import { ConnectionError } from '../errors.js';
import { parseOldSystem, type OldSystem } from '../rescue-summary.js';
import type { ScriptOutput } from '../sections.js';
import { count, flag, parseBoundary, ProtocolError } from './schema.js';

const SCRIPT = 'preflight.sh';

/** A number of kB from /proc/meminfo, or empty (0) when the kernel has no such line. */
const countOrEmpty = z
  .string()
  .regex(/^\d*$/, 'expected a number or nothing')
  .transform((v) => (v === '' ? 0 : Number(v)));

/** The key=value facts, as typed values. Keys are the script's own names, so both sides grep alike. */
export const PreflightFactsSchema = z.strictObject({
  preflight_format: z.literal('1'),
  arch: z.string(),
  kernel: z.string(),
  uid: count,
  hostname: z.string(),
  boot_id: z.string().min(1),
  /** `missing`: the kernel has no kexec at all. */
  kexec_load_disabled: z.enum(['0', '1', 'missing']),
  /** securityfs's level (`none`, `integrity`, `confidentiality`), or `unmounted` when securityfs is not mounted. */
  lockdown: z.string(),
  /** `lockdown=` on /proc/cmdline (empty when absent). */
  lockdown_cmdline: z.string(),
  /** WHERE of the kernel's "Kernel is locked down from WHERE" line; empty when none; `unreadable` without dmesg. */
  lockdown_log: z.string(),
  secure_boot: z.string(),
  container: z.string(),
  virt: z.string(),
  /** Empty (0) on a kernel without that line: the memory check refuses with the reason. */
  mem_total_kb: countOrEmpty,
  mem_available_kb: countOrEmpty,
  /** Where the staging tmpfs goes; empty when nowhere. */
  stage_parent: z.string(),
  stage_mode: z.enum(['mkdir', 'over', '']),
  has_tmpfs: flag,
  has_mount: flag,
  has_umount: flag,
  has_dd: flag,
  /** GNU head copies bytes exactly; busybox head reads ahead. */
  head_gnu: flag,
  /** `client port server port` of the operator's connection, read under sudo/doas from the nearest ancestor. */
  ssh_connection: z.string(),
});

export type PreflightFacts = z.output<typeof PreflightFactsSchema>;

/** A host key as preflight found it (public half only: the private key is never read by preflight). */
export interface HostKey {
  path: string;
  present: boolean;
  pub: string;
}

/** One authorized_keys file of a user whose keys root accepts in the rescue system. */
export interface AuthorizedKeysFile {
  user: string;
  file: string;
  content: string;
}

/** A driver bound to a device: `DRIVER MODULE loadable|builtin`. */
const boundDriver = z
  .string()
  .regex(/^\S+ \S+ (loadable|builtin)$/, 'expected DRIVER MODULE loadable|builtin')
  .transform((v) => {
    const [driver, module, place] = v.split(' ');
    return { driver, module, place: place as 'loadable' | 'builtin' };
  });

/** One `nic NAME` section: `key=value` lines, `parent=` once per bus device above the NIC. */
const NicSectionSchema = z.strictObject({
  address: z.string(),
  perm_address: z.string(),
  modalias: z.string(),
  driver: boundDriver.optional(),
  parent: z
    .array(
      z
        .string()
        .regex(/^\S+ \S+ \S+ (loadable|builtin)$/, 'expected MODALIAS DRIVER MODULE loadable|builtin')
        .transform((v) => {
          const [modalias, driver, module, place] = v.split(' ');
          return { modalias, driver, module, place: place as 'loadable' | 'builtin' };
        }),
    )
    .default([]),
});

/** A NIC as the host reports it: what ts/preflight/nics.ts judges. */
export interface NicFact {
  name: string;
  address: string;
  /** The permanent MAC of a bond member (its current one is the bond's). */
  permAddress?: string;
  modalias: string;
  bound?: { driver: string; module: string; place: 'loadable' | 'builtin' };
  /** Devices above it with a driver (virtio_pci under a virtio NIC, xhci under a USB NIC), nearest first. */
  parents: { modalias: string; driver: string; module: string; place: 'loadable' | 'builtin' }[];
}

/** A firmware file a NIC's driver declares and the host has (a `host-firmware` line). */
export interface HostFirmware {
  module: string;
  file: string;
  path: string;
}

/** Everything preflight.sh reported. */
export interface PreflightReport {
  facts: PreflightFacts;
  hostKeys: HostKey[];
  authorizedKeys: AuthorizedKeysFile[];
  /** authorized_keys files that exist but could not be read. */
  unreadable: { user: string; file: string }[];
  /** The old system's root, mounts and block devices. */
  oldSystem: OldSystem;
  /** Every interface with a device behind it. */
  nics: NicFact[];
  hostFirmware: HostFirmware[];
  /** `ip route get OPERATOR from SERVER` as the host printed it; undefined without SSH_CONNECTION or ip. */
  routeBack?: string;
  /** Descriptions of the asymmetric keys in /proc/keys (what kexec_file_load trusts under lockdown). */
  trustedKeys: string[];
}

/** Parses the `nic` sections' key=value bodies with NicSectionSchema; throws a ProtocolError naming the NIC. */
function parseNics(sections: readonly { args: string[]; body: string }[]): NicFact[] {
  return sections.map((s) => {
    const fields: Record<string, string | string[]> = {};
    for (const line of s.body.split('\n')) {
      const eq = line.indexOf('=');
      if (eq <= 0) continue;
      const key = line.slice(0, eq);
      const value = line.slice(eq + 1).trim();
      if (key === 'parent') fields.parent = [...((fields.parent as string[] | undefined) ?? []), value];
      else if (key !== 'driver' || value) fields[key] = value;
    }
    const nic = parseBoundary(SCRIPT, NicSectionSchema, fields, `field of NIC ${s.args[0]}`);
    return {
      name: s.args[0],
      address: nic.address.toLowerCase(),
      ...(nic.perm_address ? { permAddress: nic.perm_address.toLowerCase() } : {}),
      modalias: nic.modalias,
      ...(nic.driver ? { bound: nic.driver } : {}),
      parents: nic.parent,
    };
  });
}

/** `MODULE FILE PATH` lines. */
function parseHostFirmware(body: string | undefined): HostFirmware[] {
  const out: HostFirmware[] = [];
  for (const line of (body ?? '').split('\n')) {
    const [module, file, path] = line.trim().split(/\s+/);
    if (module && file && path) out.push({ module, file, path });
  }
  return out;
}

/** The sections preflight.sh prints, with how many arguments each takes (the rest of the line for the last). */
const SECTIONS = {
  'host-key': 2,
  'authorized-keys': 2,
  unreadable: 2,
  // The old system's storage, for the login banner (parsed by ts/rescue-summary.ts).
  mounts: 0,
  'block-devices': 0,
  'disk-labels': 0,
  blkid: 0,
  nic: 1,
  'host-firmware': 0,
  'route-back': 1,
  'trusted-keys': 0,
  'preflight-end': 0,
} as const;

/** Parses preflight.sh's part of the output (other scripts' sections in the same run are left to them). */
export function parsePreflight(output: ScriptOutput, otherSections: readonly string[] = []): PreflightReport {
  if (!output.sections.some((s) => s.name === 'preflight-end')) {
    throw new ConnectionError('the preflight output from the host was cut short', 'Run again; if it repeats, run with --debug and report the output.');
  }
  const facts = parseBoundary(SCRIPT, PreflightFactsSchema, output.facts);
  const problems: string[] = [];
  for (const s of output.sections) {
    if (otherSections.includes(s.name)) continue;
    const args = SECTIONS[s.name as keyof typeof SECTIONS];
    if (args === undefined) problems.push(`unexpected section "${s.name}"`);
    else if (s.args.length < args) problems.push(`section "${s.name}" has ${s.args.length} of ${args} arguments`);
  }
  if (problems.length) throw new ProtocolError(SCRIPT, problems);
  const named = (name: keyof typeof SECTIONS) => output.sections.filter((s) => s.name === name);
  return {
    facts,
    hostKeys: named('host-key').map((s) => ({ path: s.args[0], present: s.args[1] === 'present', pub: s.body.trim() })),
    authorizedKeys: named('authorized-keys').map((s) => ({ user: s.args[0], file: s.args.slice(1).join(' '), content: s.body })),
    unreadable: named('unreadable').map((s) => ({ user: s.args[0], file: s.args.slice(1).join(' ') })),
    oldSystem: parseOldSystem(output),
    nics: parseNics(named('nic')),
    hostFirmware: parseHostFirmware(named('host-firmware')[0]?.body),
    routeBack: named('route-back')[0]?.body,
    trustedKeys: (named('trusted-keys')[0]?.body ?? '')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
  };
}
