/**
 * `npm run bench:kexec -- [--arch x86_64|aarch64] [--runs N]`: where the time of the jump goes, per kexec
 * method. A benchmark: it prints numbers and asserts nothing about time.
 *
 * Per method and run: a fresh QEMU test server; the test image unpacked into its /dev/shm; kexec-run.sh
 * --load-only packs the host keys and a network.sh into the initrd (the real restore interface), then the
 * segments are loaded again with the method measured (kexec_file_load `-s`, kexec_load `-c`, kexec_load
 * --no-checks `-c -i`) and `kexec -e` runs right after a marker line on the serial console. Wall-clock times on
 * this side: the marker; the old kernel's "Starting new kernel" (console loglevel raised for it); the new
 * kernel's clock zero (its /proc/uptime read over ssh, minus half that command's round trip); its printk
 * timestamps (`printk.time=1`, read back with dmesg); the rescue's "ready" console line; the SSH banner. Once per
 * architecture, the same image booted directly in QEMU is the baseline.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ARCHES, parseArch, type Arch } from '../test-image/arch.js';
import { buildTestImage } from '../test-image/build.js';
import { median, renderTable, sec } from './lib/bench-report.js';
import { Link } from './lib/link.js';
import { sshBannerSeen } from './lib/qemu.js';
import { bootRescueImage, simpleNetworkSh } from './lib/rescue-vm.js';
import { defaultScenario, startServer, type TestServer } from './lib/server.js';

/** The kexec methods measured, as kexec-tools flags for `kexec -l`. */
export const METHODS = [
  { name: 'kexec_file_load', flags: ['-s'] },
  { name: 'kexec_load', flags: ['-c'] },
  { name: 'kexec_load --no-checks', flags: ['-c', '-i'] },
] as const;

/** One measured jump; times in seconds, relative to the marker written right before `kexec -e`. */
export interface JumpTimes {
  loadS: number;
  /** The old kernel's "Starting new kernel": device shutdown done, machine_kexec begins. */
  oldKernelDoneS?: number;
  /** The new kernel's clock zero: purgatory (hashing) and, on x86_64, the bzImage decompressor ran before it. */
  newKernelZeroS: number;
  /** printk times of the new kernel, made relative to the marker. */
  runInitS?: number;
  crngReadyS?: number;
  rescueReadyS?: number;
  sshBannerS: number;
}

/** Parses `[    1.234567] text` lines (dmesg or a printk.time=1 console) into [seconds, text]. */
export function parsePrintkLines(text: string): [number, string][] {
  const out: [number, string][] = [];
  for (const line of text.split('\n')) {
    const m = /^\[\s*(\d+\.\d+)\]\s?(.*)$/.exec(line.trim());
    if (m) out.push([Number(m[1]), m[2]]);
  }
  return out;
}

/** The printk time of the first line matching `pattern`. */
export function printkTime(lines: [number, string][], pattern: RegExp): number | undefined {
  return lines.find(([, text]) => pattern.test(text))?.[0];
}

const log = (line: string) => process.stderr.write(`bench-kexec: ${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Calls `onMatch(ms)` with the wall time a serial log first shows each pattern (polled every 5 ms). */
function watchSerial(read: () => string, patterns: Record<string, RegExp>, from: number): { seen: Record<string, number>; stop: () => void } {
  const seen: Record<string, number> = {};
  const timer = setInterval(() => {
    const text = read().slice(from);
    for (const [name, pattern] of Object.entries(patterns)) if (seen[name] === undefined && pattern.test(text)) seen[name] = Date.now();
  }, 5);
  return { seen, stop: () => clearInterval(timer) };
}

/** Wall time (ms) the new kernel's clock read zero: its uptime, read over `link`, back-dated by half the round trip. */
async function kernelZero(link: Link): Promise<number> {
  const started = Date.now();
  const r = await link.run('cat /proc/uptime');
  const mid = started + r.ms / 2;
  return mid - Number(r.stdout.split(' ')[0]) * 1000;
}

/** The restore data kexec-run.sh reads on stdin: a tar of network.sh, authorized_keys, restore.env. */
function restoreTar(work: string, server: TestServer): string {
  const dir = join(work, 'restore');
  execFileSync('mkdir', ['-p', dir]);
  writeFileSync(join(dir, 'network.sh'), simpleNetworkSh(server.macs[0]), { mode: 0o755 });
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${server.keys.root}.pub`));
  writeFileSync(join(dir, 'restore.env'), `hostname=${server.scenario.hostname}\nboot_id=bench\n`);
  const tar = join(work, 'restore.tar');
  execFileSync('tar', ['-cf', tar, '-C', dir, 'network.sh', 'authorized_keys', 'restore.env']);
  return tar;
}

/** One jump with `method` on a fresh server; undefined when the server's kernel refuses the method. */
async function jumpOnce(arch: Arch, imageTar: string, method: (typeof METHODS)[number], work: string): Promise<JumpTimes | { error: string }> {
  const server = await startServer(defaultScenario(), { arch, log, timeoutMs: 240_000 });
  try {
    const link = await Link.open(server, 'root');
    await link.run('mkdir -p /dev/shm/k && busybox tar -x -C /dev/shm/k', imageTar);
    const dir = '/dev/shm/k/emergency-image';
    // printk.time=1: the rescue kernel's console lines carry their timestamps (dmesg has them anyway).
    await link.run(`cd ${dir} && busybox sed -i 's/$/ printk.time=1/' cmdline`);
    const keys = Object.keys(server.hostKeys)
      .map((t) => `/etc/ssh/ssh_host_${t}_key`)
      .join(' ');
    const packed = await link.exec([], `cd ${dir} && sh ./kexec-run.sh --load-only ${keys}`, false, restoreTar(work, server));
    if (!/kexec_loaded=1/.test(packed.stdout)) throw new Error(`kexec-run.sh --load-only failed: ${packed.stdout}${packed.stderr}`);
    const kexec = `${dir}/lib/ld.so --library-path ${dir}/lib ${dir}/bin/kexec`;
    await link.run(`${kexec} -u`);
    const rtt = await link.roundTripMs(3);
    const load = await link.exec([], `cd ${dir} && ${kexec} ${method.flags.join(' ')} -l kernel --initrd=initrd --command-line="$(cat cmdline)"`);
    if (load.code !== 0) return { error: load.stderr.trim().split('\n').pop() ?? `exit ${load.code}` };
    const from = server.serialLog().length;
    const watch = watchSerial(
      server.serialLog,
      { marker: /bench: kexec -e now/, oldDone: /Starting new kernel/, ready: /emergency-rescue: rescue system ready/ },
      from,
    );
    // Console loglevel 8, so the old kernel prints "Starting new kernel" (a notice) on its way out.
    await link.run(
      `echo 8 >/proc/sys/kernel/printk; busybox setsid sh -c 'usleep 300000; echo "<2>bench: kexec -e now" >/dev/kmsg; exec ${kexec} -e' </dev/null >/dev/null 2>&1 &`,
    );
    await link.close().catch(() => {});
    const deadline = Date.now() + 300_000;
    while (watch.seen.marker === undefined && Date.now() < deadline) await sleep(5);
    let banner: number | undefined;
    while (Date.now() < deadline) {
      // A long wait per check: one given up on leaves an sshd child working, and a slow sshd buried under
      // them never answers (steps/wait.ts). The check returns as soon as the banner arrives.
      if (watch.seen.marker !== undefined && (await sshBannerSeen(server.port, 10_000))) {
        banner = Date.now();
        break;
      }
      await sleep(50);
    }
    watch.stop();
    if (banner === undefined || watch.seen.marker === undefined)
      throw new Error(`the rescue did not answer (marker ${watch.seen.marker === undefined ? 'not seen' : 'seen'}):\n${server.serialLog().slice(-3000)}`);
    const rescue = await Link.open(server, 'root');
    const zero = await kernelZero(rescue);
    const dmesgText = (await rescue.run('dmesg')).stdout;
    keepDmesg(`${arch}-${method.name.replaceAll(' ', '')}`, dmesgText);
    const dmesg = parsePrintkLines(dmesgText);
    await rescue.close().catch(() => {});
    const t0 = watch.seen.marker;
    const rel = (wall: number | undefined) => (wall === undefined ? undefined : (wall - t0) / 1000);
    const fromZero = (s: number | undefined) => (s === undefined ? undefined : (zero - t0) / 1000 + s);
    return {
      loadS: (load.ms - rtt) / 1000,
      oldKernelDoneS: rel(watch.seen.oldDone),
      newKernelZeroS: (zero - t0) / 1000,
      runInitS: fromZero(printkTime(dmesg, /Run \/init as init process/)),
      crngReadyS: fromZero(printkTime(dmesg, /crng init done/)),
      rescueReadyS: rel(watch.seen.ready),
      sshBannerS: (banner - t0) / 1000,
    };
  } finally {
    await server.stop();
  }
}

/** With EMERGENCY_BENCH_DMESG_DIR set, the rescue kernel's whole log is kept there, to compare a kexec'd boot line by line. */
function keepDmesg(name: string, text: string): void {
  const dir = process.env.EMERGENCY_BENCH_DMESG_DIR;
  if (dir) writeFileSync(join(dir, `${name}.dmesg`), text);
}

/** The baseline: the same image booted directly in QEMU; times from QEMU's start. */
async function directBoot(imageTar: string, arch: Arch): Promise<{ kernelZeroS: number; runInitS?: number; crngReadyS?: number; sshBannerS: number }> {
  const vm = await bootRescueImage(imageTar, { arch, timeoutMs: 240_000 });
  try {
    const answered = Date.now();
    const started = answered - vm.bootToSshMs;
    const server = { port: vm.port, knownHostsFile: vm.knownHostsFile, keys: { root: vm.rootKey.path } } as unknown as TestServer;
    const link = await Link.open(server, 'root');
    const zero = await kernelZero(link);
    const dmesgText = (await link.run('dmesg')).stdout;
    keepDmesg(`${arch}-direct`, dmesgText);
    const dmesg = parsePrintkLines(dmesgText);
    await link.close().catch(() => {});
    const base = (zero - started) / 1000;
    const at = (s: number | undefined) => (s === undefined ? undefined : base + s);
    return {
      kernelZeroS: base,
      runInitS: at(printkTime(dmesg, /Run \/init as init process/)),
      crngReadyS: at(printkTime(dmesg, /crng init done/)),
      sshBannerS: vm.bootToSshMs / 1000,
    };
  } finally {
    await vm.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { arch: { type: 'string' }, runs: { type: 'string', default: '2' }, json: { type: 'string' } } });
  const arch = parseArch(values.arch);
  const runs = Number(values.runs);
  const image = await buildTestImage(log, arch);
  const work = mkdtempSync(join(tmpdir(), 'emergency-bench-kexec-'));
  const results: Record<string, (JumpTimes | { error: string })[]> = {};
  try {
    log(`direct boot of the ${arch} rescue image (baseline)`);
    const direct = await directBoot(image, arch);
    for (const method of METHODS) {
      results[method.name] = [];
      for (let i = 0; i < runs; i++) {
        log(`${arch}: ${method.name}, run ${i + 1} of ${runs}`);
        const r = await jumpOnce(arch, image, method, work);
        results[method.name].push(r);
        if ('error' in r) {
          log(`${method.name} refused by this kernel: ${r.error}`);
          break;
        }
      }
    }
    const rows: [string, string, string?][] = [];
    const load = execFileSync('uptime', { encoding: 'utf8' }).trim();
    rows.push([`${arch} (${ARCHES[arch].qemu.binary}, TCG)`, '', `load: ${load.replace(/^.*load average/, 'load average')}`]);
    rows.push(['direct boot: QEMU start → kernel zero', sec(direct.kernelZeroS), 'firmware + boot loader + decompressor']);
    rows.push([
      '  → Run /init',
      sec(direct.runInitS ?? NaN),
      direct.crngReadyS !== undefined ? `crng ready at ${sec(direct.crngReadyS)}` : 'no "crng init done" line',
    ]);
    rows.push(['  → SSH banner', sec(direct.sshBannerS)]);
    for (const method of METHODS) {
      const list = results[method.name];
      const ok = list.filter((r): r is JumpTimes => !('error' in r));
      if (!ok.length) {
        rows.push([method.name, 'refused', (list[0] as { error: string }).error]);
        continue;
      }
      const m = (f: (r: JumpTimes) => number | undefined) => {
        const v = ok.map(f).filter((x): x is number => x !== undefined);
        return v.length ? median(v) : NaN;
      };
      rows.push([`${method.name} (median of ${ok.length})`, sec(m((r) => r.sshBannerS)), `kexec -e → SSH banner; load took ${sec(m((r) => r.loadS))}`]);
      rows.push(['  old kernel done ("Starting new kernel")', sec(m((r) => r.oldKernelDoneS))]);
      rows.push(['  new kernel zero', sec(m((r) => r.newKernelZeroS)), 'purgatory (sha256 of the segments unless --no-checks), decompressor']);
      rows.push(['  Run /init', sec(m((r) => r.runInitS))]);
      rows.push(['  crng init done', sec(m((r) => r.crngReadyS))]);
      rows.push(['  rescue "ready" on the console', sec(m((r) => r.rescueReadyS))]);
      rows.push(['  over the direct boot', sec(m((r) => r.sshBannerS) - direct.sshBannerS), 'kexec -e → banner minus QEMU start → banner']);
    }
    process.stdout.write(`${renderTable(rows)}\n`);
    if (values.json) writeFileSync(values.json, `${JSON.stringify({ arch, load, direct, results }, null, 2)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('bench-kexec.js')) await main();
