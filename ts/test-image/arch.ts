/**
 * What differs per architecture for the Debian-built test image, the QEMU test server and the VMs that boot
 * them: one entry per `uname -m`, so adding an architecture is adding an entry.
 */

/** `uname -m` of the architectures the test image and the test server are built for. */
export type Arch = 'x86_64' | 'aarch64';

/** Everything per-architecture the builders and the QEMU harness need. */
export interface ArchProfile {
  arch: Arch;
  /** Debian's name for it (`apt-get download pkg:DEBARCH`, `name_version_DEBARCH.deb`). */
  debArch: string;
  /** Debian's multiarch triplet (`/lib/TRIPLET`, where ld.so looks first). */
  triplet: string;
  /** The cloud kernel's meta package: virtio drivers, small. */
  kernelMeta: string;
  /** Libraries only this architecture's programs need. */
  extraLibraryPackages: string[];
  /** The serial console the kernel writes to (`console=` without options). */
  serialConsole: string;
  /** QEMU: the binary, the board, the CPU model and the `-accel` value (TCG always, with its options). */
  qemu: { binary: string; machine: string[]; cpu: string; accel: string };
}

export const ARCHES: Record<Arch, ArchProfile> = {
  x86_64: {
    arch: 'x86_64',
    debArch: 'amd64',
    triplet: 'x86_64-linux-gnu',
    kernelMeta: 'linux-image-cloud-amd64',
    extraLibraryPackages: [],
    serialConsole: 'ttyS0',
    qemu: { binary: 'qemu-system-x86_64', machine: [], cpu: 'max', accel: 'tcg' },
  },
  aarch64: {
    arch: 'aarch64',
    debArch: 'arm64',
    triplet: 'aarch64-linux-gnu',
    kernelMeta: 'linux-image-cloud-arm64',
    extraLibraryPackages: [],
    // The PL011 UART of QEMU's virt board and of most arm64 servers (SBSA).
    serialConsole: 'ttyAMA0',
    // pauth-impdef: QEMU's cheap pointer-authentication algorithm instead of the architected QARMA, which
    // TCG emulates slowly (measured: sshd after 5-6 s instead of 18 s). `max` also has FEAT_RNG (RNDR), the
    // rescue kernel's entropy source after kexec (docs/test-image.md).
    // tb-size=64 (MiB of translated code; QEMU 7.2's default is 1 GiB): after a kexec, TCG still holds the old
    // system's translations, and every guest store into a page that has any left takes QEMU's self-modifying-code
    // path; the rescue kernel reuses the old kernel's text pages, so its initramfs unpack took 6.8-8.4 s instead
    // of 0.5-0.7 s (docs/benchmarks.md; an emulator cost, real hardware has none). A 64 MiB buffer is flushed
    // whole every few seconds of a booting system, so few old translations survive the jump (bench:kexec A/B in
    // docs/benchmarks.md, "The jump"; a direct boot is not slower). x86_64 showed no such cost: unchanged.
    qemu: { binary: 'qemu-system-aarch64', machine: ['-M', 'virt'], cpu: 'max,pauth-impdef=on', accel: 'tcg,tb-size=64' },
  },
};

/** The architecture of the machine running this (the default everywhere). */
export function buildMachineArch(): Arch {
  return process.arch === 'arm64' ? 'aarch64' : 'x86_64';
}

/** Parses `--arch VALUE`; throws naming the valid ones. */
export function parseArch(value: string | undefined): Arch {
  if (value === undefined) return 'x86_64';
  if (value in ARCHES) return value as Arch;
  throw new Error(`unknown architecture ${value}: use one of ${Object.keys(ARCHES).join(', ')}`);
}

/** `--arch X` (or `--arch=X`) from an argument list, x86_64 without it. */
export function archFromArgv(argv: string[]): Arch {
  for (const [i, a] of argv.entries()) {
    if (a === '--arch') return parseArch(argv[i + 1]);
    if (a.startsWith('--arch=')) return parseArch(a.slice('--arch='.length));
  }
  return 'x86_64';
}
