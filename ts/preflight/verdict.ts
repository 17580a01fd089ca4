/**
 * Preflight's decision, pure: from the host's facts (scripts/preflight.sh) and the image, every reason
 * to refuse and every warning, all at once. Nothing here touches the host.
 */
import type { Image } from '../image.js';

/** One failed check: what is wrong and what to do. */
export interface Finding {
  message: string;
  fix: string;
}

/** How much memory the rescue needs, and the arithmetic behind it (shown in messages and --dry-run). */
export interface MemoryNeed {
  /** Before kexec, on the running host: staged files + kexec segments + margin. */
  beforeKexecBytes: number;
  /** After kexec, in the rescue system: kernel + initrd + unpacked rescue system + margin. */
  rescueBytes: number;
  explanation: string;
}

/** The verdict: refusals (any → do not proceed), warnings, and where to stage. */
export interface Verdict {
  refusals: Finding[];
  warnings: Finding[];
  memory: MemoryNeed;
  stage?: { parent: string; mode: 'mkdir' | 'over'; tmpfsBytes: number };
}

const MiB = 1024 * 1024;
/** Headroom for the extra initrd, tar metadata and tmpfs rounding. */
const STAGE_MARGIN = 16 * MiB;
/** Headroom on the running host so staging does not push it into the OOM killer. */
const HOST_MARGIN = 64 * MiB;
/** Working memory of the rescue system beyond its own files (sshd, shells, fsck). */
const RESCUE_MARGIN = 256 * MiB;

/** Computes the memory figures stated in docs and messages. */
export function memoryNeed(image: Pick<Image, 'unpackedBytes' | 'kernelBytes' | 'initrdBytes' | 'rescueUnpackedBytes'>): MemoryNeed {
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

/** Judges the host. `facts` are preflight.sh's key=value lines; `hostKeys` its host-key sections. */
export function judgeHost(
  facts: Record<string, string>,
  image: Pick<Image, 'arch' | 'unpackedBytes' | 'kernelBytes' | 'initrdBytes' | 'rescueUnpackedBytes'>,
  hostKeys: { path: string; present: boolean; pub: string }[],
  authorizedKeyCount: number,
): Verdict {
  const refusals: Finding[] = [];
  const warnings: Finding[] = [];
  const refuse = (message: string, fix: string) => refusals.push({ message, fix });
  const warn = (message: string, fix: string) => warnings.push({ message, fix });

  if (facts.preflight_format !== '1') {
    refuse('the host did not answer the preflight script as expected', 'Check that /bin/sh works on the host; run with --debug to see its output.');
  }
  if (facts.uid !== '0') {
    refuse('the preflight did not run as root', 'Log in as root, or as a user with sudo or doas rights.');
  }
  if (facts.arch !== image.arch) {
    refuse(
      `the host is ${facts.arch || 'of unknown architecture'} but the image is for ${image.arch}`,
      `Use an image built for ${facts.arch}: nix build .#packages.${facts.arch}-linux.image, or drop --image to build the right one.`,
    );
  }
  if (facts.container && facts.container !== 'none') {
    refuse(
      `the host is a container (${facts.container}): it shares its kernel with the machine it runs on, so it cannot kexec`,
      "Use the provider's rescue or console for this container, or run emergency against the machine that hosts it.",
    );
  }
  if (facts.kexec_load_disabled === '1') {
    refuse(
      'kexec is disabled on this kernel (kernel.kexec_load_disabled=1), and that setting cannot be undone without a reboot',
      'Reboot into a kernel without that sysctl set (check /etc/sysctl.d), or use an out-of-band console.',
    );
  } else if (facts.kexec_load_disabled === 'missing') {
    refuse('the running kernel has no kexec support (/proc/sys/kernel/kexec_load_disabled is absent)', 'Boot a kernel built with CONFIG_KEXEC, or use an out-of-band console.');
  }
  if (facts.lockdown === 'integrity' || facts.lockdown === 'confidentiality') {
    refuse(
      `the kernel is locked down (${facts.lockdown}${facts.secure_boot === '1' ? ', Secure Boot is on' : ''}): it refuses to kexec a kernel that is not signed by a key it trusts`,
      'Disable Secure Boot / lockdown (lockdown=none on the kernel command line, or mokutil --disable-validation) and reboot, or use an out-of-band console.',
    );
  } else if (facts.secure_boot === '1') {
    warn('Secure Boot is on; the kernel reports no lockdown, so kexec should work', 'If loading fails, disable Secure Boot.');
  }
  if (facts.virt === 'xen-pv' || facts.virt === 'xen') {
    warn(
      `the host is a Xen guest (${facts.virt}): kexec works in HVM guests but not in PV guests`,
      "If the rescue system does not come back, use the provider's console to reboot the guest.",
    );
  }

  const memory = memoryNeed(image);
  const availableBytes = Number(facts.mem_available_kb) * 1024;
  const totalBytes = Number(facts.mem_total_kb) * 1024;
  if (!Number.isFinite(availableBytes) || availableBytes <= 0) {
    refuse('the host did not report its memory (/proc/meminfo)', 'Check that /proc is mounted on the host.');
  } else {
    if (availableBytes < memory.beforeKexecBytes) {
      refuse(
        `too little free memory: ${Math.floor(availableBytes / 1024 / 1024)} MiB available, ${Math.ceil(memory.beforeKexecBytes / 1024 / 1024)} MiB needed (${memory.explanation})`,
        'Stop memory-hungry services on the host first, or use a smaller image.',
      );
    }
    if (totalBytes < memory.rescueBytes) {
      refuse(
        `the host has ${Math.floor(totalBytes / 1024 / 1024)} MiB of RAM, the rescue system needs ${Math.ceil(memory.rescueBytes / 1024 / 1024)} MiB`,
        'Use a smaller rescue image, or an out-of-band console.',
      );
    }
  }

  let stage: Verdict['stage'];
  if (facts.has_tmpfs !== '1') {
    refuse('the kernel has no tmpfs, so the image has nowhere to go but the disk', 'Use an out-of-band console; emergency never writes the image to the host\'s disk.');
  } else if (!facts.stage_parent || (facts.stage_mode !== 'mkdir' && facts.stage_mode !== 'over')) {
    refuse(
      'no directory can hold the staging tmpfs: /run, /dev/shm, /tmp and /var/tmp are missing or read-only, and /mnt, /media, /srv, /opt, /home are missing',
      'Create any directory on a writable filesystem, or mount a tmpfs yourself (mount -t tmpfs none /mnt).',
    );
  } else {
    stage = { parent: facts.stage_parent, mode: facts.stage_mode, tmpfsBytes: image.unpackedBytes + STAGE_MARGIN };
  }
  for (const tool of ['mount', 'umount']) {
    if (facts[`has_${tool}`] !== '1') {
      refuse(`the host has no \`${tool}\`, which staging needs`, `Install util-linux (or busybox) on the host.`);
    }
  }
  if (facts.has_dd !== '1' && facts.head_gnu !== '1') {
    refuse('the host has neither `dd` nor GNU `head`, and staging needs one of them to copy bytes exactly', 'Install coreutils (or busybox) on the host.');
  }

  const usable = hostKeys.filter((k) => k.present && k.pub.trim());
  if (usable.length === 0) {
    refuse(
      'no SSH host key with its .pub was found (HostKey in /etc/ssh/sshd_config, or /etc/ssh/ssh_host_*_key)',
      'The rescue system must present the same host key; restore the keys or their .pub files (ssh-keygen -y -f KEY > KEY.pub).',
    );
  }
  for (const key of hostKeys.filter((k) => !k.present || !k.pub.trim())) {
    warn(`host key ${key.path} ${key.present ? 'has no readable .pub' : 'is missing'}; it is not carried over`, `Recreate the .pub with ssh-keygen -y -f ${key.path}.`);
  }
  if (authorizedKeyCount === 0) {
    refuse(
      'no authorized key was found for root, the admin groups or you: nobody could log in to the rescue system',
      "Add your public key to root's ~/.ssh/authorized_keys on the host first.",
    );
  }
  return { refusals, warnings, memory, stage };
}
