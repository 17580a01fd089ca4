/**
 * Preflight's checks as data: each has a stable name (printed with its findings, used by
 * --ignore-preflight-errors), says whether an operator may overrule it, and judges the facts purely. Adding a
 * check is adding an entry. Nothing here touches the host.
 */
import type { HostFirmware, HostKey, NicFact, PreflightFacts } from '../boundary/preflight.js';
import type { Image } from '../image.js';
import type { NetworkCapture } from '../network/capture.js';
import type { NetworkPlan } from '../network/plan.js';
import { judgeLockdown, trustedKeyNames } from './lockdown.js';
import { judgeNics } from './nics.js';
import { judgeOperatorPath, parseRouteGet, parseSshConnection, plainAddress } from './operator-path.js';

/** What every check may look at: the host's facts, the image, what will be carried over, the network plan. */
export interface CheckInput {
  facts: PreflightFacts;
  image: Pick<Image, 'arch' | 'unpackedBytes' | 'kernelBytes' | 'initrdBytes' | 'rescueUnpackedBytes'> & Partial<Pick<Image, 'drivers' | 'kernelSignature'>>;
  hostKeys: HostKey[];
  authorizedKeyCount: number;
  /** Undefined while the capture waits for the image's ip (busybox-only hosts); network checks run again then. */
  plan?: NetworkPlan;
  /** The capture the plan came from (to say which host interface held the operator's address). */
  capture?: NetworkCapture;
  /** The host's NICs and the firmware their drivers load (nic-driver, nic-firmware); none: nothing to check. */
  nics?: readonly NicFact[];
  hostFirmware?: readonly HostFirmware[];
  /** `ip route get` back to the operator, as the host printed it (operator-path). */
  routeBack?: string;
  /** Key descriptions of /proc/keys (lockdown). */
  trustedKeys?: readonly string[];
}

/** One problem: what is wrong and what to do. */
export interface Finding {
  message: string;
  fix: string;
}

/** A check's findings: refusals stop the rescue (unless ignored), warnings are printed. */
export interface CheckFindings {
  refusals?: Finding[];
  warnings?: Finding[];
  /** What the check looked at, for --dry-run (the NIC table, the path back to the operator). */
  notes?: string[];
}

/** One named check. */
export interface Check {
  /** Stable, kebab-case: printed with every finding and accepted by --ignore-preflight-errors. */
  name: string;
  /** What it makes sure of, for --dry-run's table. */
  title: string;
  /** Whether --ignore-preflight-errors may turn its refusals into warnings. When false, say why in `why`. */
  ignorable: boolean;
  /** Why the check can never be ignored (the rescue is impossible without it), or why it can. */
  why: string;
  /** Whether it needs the network plan (and waits for it on hosts captured after staging). */
  needsPlan?: boolean;
  judge(input: CheckInput): CheckFindings;
}

const MiB = 1024 * 1024;
/** Headroom for the extra initrd, tar metadata and tmpfs rounding. */
const STAGE_MARGIN = 16 * MiB;
/** Headroom on the running host so staging does not push it into the OOM killer. */
const HOST_MARGIN = 64 * MiB;
/** Working memory of the rescue system beyond its own files (sshd, shells, fsck). */
const RESCUE_MARGIN = 256 * MiB;

/** How much memory the rescue needs, and the arithmetic behind it (shown in messages and --dry-run). */
export interface MemoryNeed {
  /** Before kexec, on the running host: staged files + kexec segments + margin. */
  beforeKexecBytes: number;
  /** After kexec, in the rescue system: kernel + initrd + unpacked rescue system + margin. */
  rescueBytes: number;
  explanation: string;
}

/** Computes the memory figures stated in docs and messages. */
export function memoryNeed(image: CheckInput['image']): MemoryNeed {
  const staged = image.unpackedBytes + STAGE_MARGIN;
  const segments = image.kernelBytes + image.initrdBytes;
  const rescue = image.kernelBytes + image.initrdBytes + image.rescueUnpackedBytes + RESCUE_MARGIN;
  const mib = (n: number) => `${Math.ceil(n / MiB)} MiB`;
  return {
    beforeKexecBytes: staged + segments + HOST_MARGIN,
    rescueBytes: rescue,
    explanation:
      `before kexec: staged files ${mib(staged)} + kexec segments (kernel + initrd) ${mib(segments)} + ${mib(HOST_MARGIN)} headroom = ${mib(staged + segments + HOST_MARGIN)} of MemAvailable; ` +
      `rescue system: kernel + initrd ${mib(segments)} + unpacked system ${mib(image.rescueUnpackedBytes)} + ${mib(RESCUE_MARGIN)} working memory = ${mib(rescue)} of MemTotal`,
  };
}

/** Where the staging tmpfs goes, or undefined when nowhere. */
export interface StagePlace {
  parent: string;
  mode: 'mkdir' | 'over';
  tmpfsBytes: number;
}

/** The staging place from the facts (the `staging` check refuses when there is none). */
export function stagePlace(facts: PreflightFacts, image: CheckInput['image']): StagePlace | undefined {
  if (!facts.has_tmpfs || !facts.stage_parent || facts.stage_mode === '') return undefined;
  return { parent: facts.stage_parent, mode: facts.stage_mode, tmpfsBytes: image.unpackedBytes + STAGE_MARGIN };
}

const refuse = (message: string, fix: string): CheckFindings => ({ refusals: [{ message, fix }] });
const warn = (message: string, fix: string): CheckFindings => ({ warnings: [{ message, fix }] });
const none: CheckFindings = {};

/** Every check, in the order they are reported. */
export const CHECKS: readonly Check[] = [
  {
    name: 'root',
    title: 'preflight ran as root',
    ignorable: false,
    why: 'staging, reading host keys and kexec all need root',
    judge: ({ facts }) => (facts.uid === 0 ? none : refuse('the preflight did not run as root', 'Log in as root, or as a user with sudo or doas rights.')),
  },
  {
    name: 'architecture',
    title: "the image is for the host's architecture",
    ignorable: false,
    why: 'a kernel for another architecture cannot boot',
    judge: ({ facts, image }) =>
      facts.arch === image.arch
        ? none
        : refuse(
            `the host is ${facts.arch || 'of unknown architecture'} but the image is for ${image.arch}`,
            `Use an image built for ${facts.arch}: nix build .#packages.${facts.arch}-linux.image, or drop --image to build the right one.`,
          ),
  },
  {
    name: 'container',
    title: 'the host is not a container',
    ignorable: true,
    why: 'detection reads marker files, which a host may carry by mistake',
    judge: ({ facts }) =>
      facts.container === 'none'
        ? none
        : refuse(
            `the host is a container (${facts.container}): it shares its kernel with the machine it runs on, so it cannot kexec`,
            "Use the provider's rescue or console for this container, or run emergency against the machine that hosts it.",
          ),
  },
  {
    name: 'kexec',
    title: 'the kernel can kexec',
    ignorable: false,
    why: 'without kexec there is no way into the rescue system',
    judge: ({ facts }) => {
      if (facts.kexec_load_disabled === '1') {
        return refuse(
          'kexec is disabled on this kernel (kernel.kexec_load_disabled=1), and that setting cannot be undone without a reboot',
          'Reboot into a kernel without that sysctl set (check /etc/sysctl.d), or use an out-of-band console.',
        );
      }
      if (facts.kexec_load_disabled === 'missing') {
        return refuse(
          'the running kernel has no kexec support (/proc/sys/kernel/kexec_load_disabled is absent)',
          'Boot a kernel built with CONFIG_KEXEC, or use an out-of-band console.',
        );
      }
      return none;
    },
  },
  {
    name: 'lockdown',
    title: "a locked-down kernel would load the image's kernel",
    ignorable: true,
    why: 'detection without securityfs reads the command line and the kernel log, which can be stale; the kexec step fails safely if the kernel refuses',
    judge: ({ facts, image, trustedKeys }) => {
      const { refusals, warnings, summary } = judgeLockdown(
        facts,
        image.kernelSignature ?? { signed: false, names: [] },
        trustedKeyNames((trustedKeys ?? []).join('\n')),
      );
      return { refusals, warnings, notes: [summary] };
    },
  },
  {
    name: 'xen',
    title: 'not a Xen PV guest',
    ignorable: true,
    why: 'a warning only',
    judge: ({ facts }) =>
      facts.virt === 'xen-pv' || facts.virt === 'xen'
        ? warn(
            `the host is a Xen guest (${facts.virt}): kexec works in HVM guests but not in PV guests`,
            "If the rescue system does not come back, use the provider's console to reboot the guest.",
          )
        : none,
  },
  {
    name: 'memory',
    title: 'enough memory before and after the kexec',
    ignorable: true,
    why: 'the margins are estimates; an operator who freed memory meanwhile may know better',
    judge: ({ facts, image }) => {
      const memory = memoryNeed(image);
      const available = facts.mem_available_kb * 1024;
      const total = facts.mem_total_kb * 1024;
      if (total === 0) return refuse('the host did not report its memory (/proc/meminfo)', 'Check that /proc is mounted on the host.');
      const refusals: Finding[] = [];
      if (available < memory.beforeKexecBytes) {
        refusals.push({
          message: `too little free memory: ${Math.floor(available / MiB)} MiB available, ${Math.ceil(memory.beforeKexecBytes / MiB)} MiB needed (${memory.explanation})`,
          fix: 'Stop memory-hungry services on the host first, or use a smaller image.',
        });
      }
      if (total < memory.rescueBytes) {
        refusals.push({
          message: `the host has ${Math.floor(total / MiB)} MiB of RAM, the rescue system needs ${Math.ceil(memory.rescueBytes / MiB)} MiB`,
          fix: 'Use a smaller rescue image, or an out-of-band console.',
        });
      }
      return { refusals };
    },
  },
  {
    name: 'staging',
    title: 'a tmpfs can hold the image',
    ignorable: false,
    why: "emergency never writes the image to the host's disk",
    judge: ({ facts, image }) => {
      if (!facts.has_tmpfs)
        return refuse(
          'the kernel has no tmpfs, so the image has nowhere to go but the disk',
          "Use an out-of-band console; emergency never writes the image to the host's disk.",
        );
      if (!stagePlace(facts, image)) {
        return refuse(
          'no directory can hold the staging tmpfs: /run, /dev/shm, /tmp and /var/tmp are missing or read-only, and /mnt, /media, /srv, /opt, /home are missing',
          'Create any directory on a writable filesystem, or mount a tmpfs yourself (mount -t tmpfs none /mnt).',
        );
      }
      return none;
    },
  },
  {
    name: 'tools',
    title: 'mount, umount and a byte-exact copy (dd or GNU head)',
    ignorable: false,
    why: 'staging cannot work without them',
    judge: ({ facts }) => {
      const refusals: Finding[] = [];
      if (!facts.has_mount) refusals.push({ message: 'the host has no `mount`, which staging needs', fix: 'Install util-linux (or busybox) on the host.' });
      if (!facts.has_umount) refusals.push({ message: 'the host has no `umount`, which staging needs', fix: 'Install util-linux (or busybox) on the host.' });
      if (!facts.has_dd && !facts.head_gnu) {
        refusals.push({
          message: 'the host has neither `dd` nor GNU `head`, and staging needs one of them to copy bytes exactly',
          fix: 'Install coreutils (or busybox) on the host.',
        });
      }
      return { refusals };
    },
  },
  {
    name: 'host-keys',
    title: 'the host keys can be carried over',
    ignorable: false,
    why: 'without the host key the rescue system cannot prove it is this server',
    judge: ({ hostKeys }) => {
      const refusals: Finding[] = [];
      if (!hostKeys.some((k) => k.present && k.pub.trim())) {
        refusals.push({
          message: 'no SSH host key with its .pub was found (HostKey in /etc/ssh/sshd_config, or /etc/ssh/ssh_host_*_key)',
          fix: 'The rescue system must present the same host key; restore the keys or their .pub files (ssh-keygen -y -f KEY > KEY.pub).',
        });
      }
      const warnings = hostKeys
        .filter((k) => !k.present || !k.pub.trim())
        .map((k) => ({
          message: `host key ${k.path} ${k.present ? 'has no readable .pub' : 'is missing'}; it is not carried over`,
          fix: `Recreate the .pub with ssh-keygen -y -f ${k.path}.`,
        }));
      return { refusals, warnings };
    },
  },
  {
    name: 'nic-driver',
    title: 'the rescue kernel drives every NIC the restored network needs',
    ignorable: true,
    why: 'the rescue system may do without a NIC, and the fallback reboot brings the host back if it cannot',
    needsPlan: true,
    judge: ({ nics, hostFirmware, image, plan }) => {
      const v = judgeNics(nics ?? [], hostFirmware ?? [], image.drivers, plan!);
      return { ...v.driver, notes: v.table.map((line) => `NIC ${line}`) };
    },
  },
  {
    name: 'nic-firmware',
    title: "the rescue system has the firmware those NICs' drivers load",
    ignorable: true,
    why: 'many drivers run without their firmware file, in a reduced mode',
    needsPlan: true,
    judge: ({ nics, hostFirmware, image, plan }) => judgeNics(nics ?? [], hostFirmware ?? [], image.drivers, plan!).firmware,
  },
  {
    name: 'operator-path',
    title: 'your address and the route back to you are restored',
    ignorable: true,
    why: 'you may reach the rescue system another way (another address, a console)',
    needsPlan: true,
    judge: ({ facts, routeBack, plan, capture }) => {
      const connection = parseSshConnection(facts.ssh_connection);
      const owner = connection && capture?.links.find((l) => l.addr_info.some((a) => plainAddress(a.local) === connection.server))?.ifname;
      const { refusals, warnings, summary } = judgeOperatorPath(connection, routeBack === undefined ? undefined : parseRouteGet(routeBack), plan!, owner);
      return { refusals, warnings, notes: [summary] };
    },
  },
  {
    name: 'authorized-keys',
    title: 'someone can log in to the rescue system',
    ignorable: false,
    why: 'a rescue system nobody can log in to is lost',
    judge: ({ authorizedKeyCount }) =>
      authorizedKeyCount > 0
        ? none
        : refuse(
            'no authorized key was found for root, the admin groups or you: nobody could log in to the rescue system',
            "Add your public key to root's ~/.ssh/authorized_keys on the host first.",
          ),
  },
];

/** `all`, or one check's name. */
export const IGNORE_ALL = 'all';

/**
 * Checks --ignore-preflight-errors against the list: unknown names and checks that can never be ignored are
 * usage errors (returned as messages, so the caller decides how to report).
 */
export function ignoreProblems(names: readonly string[], checks: readonly Check[] = CHECKS): string[] {
  const problems: string[] = [];
  for (const name of names) {
    if (name === IGNORE_ALL) continue;
    const check = checks.find((c) => c.name === name);
    if (!check) problems.push(`--ignore-preflight-errors: there is no check "${name}" (checks: ${checks.map((c) => c.name).join(', ')}, or all)`);
    else if (!check.ignorable) problems.push(`--ignore-preflight-errors: "${name}" can never be ignored: ${check.why}`);
  }
  return problems;
}
