/**
 * `npm run bench`: time-to-rescue of the QEMU test server (the end-to-end tests' server) against its physical
 * floor. A benchmark: it prints a table (and --json FILE), and asserts nothing about time.
 *
 *   npm run bench -- [--runs N] [--quick] [--json FILE] [--no-shaped]
 *
 * Per run: a fresh server; over one ssh ControlMaster, the round trip and the upload rate (the image tarball
 * itself streamed into the VM's /dev/shm), and — on the first run — where staging's time goes (tar -x and
 * sha256sum -c on the VM); then the CLI rescues it while a poller reads /proc/meminfo on the server every
 * 100 ms. Once: the rescue image booted directly in QEMU (boot → sshd). Then the same rescue again with
 * 100 ms of round-trip delay and 50 Mbit/s: every ssh connection (the CLI's and the measuring ones) goes
 * through a userspace relay in front of QEMU's port forward (test/lib/slow-link.ts) that delays each chunk
 * 50 ms per direction and limits each direction to 50 Mbit/s; this kernel has no `netem` qdisc, and `tbf`
 * alone gives no delay. The link is measured through the relay the same way, so that floor is measured too.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadImage, type Image } from '../image.js';
import { buildTestImage } from '../test-image/build.js';
import { mb, median, memoryPeak, parseCliFacts, parseMemSamples, parseStepLines, renderTable, sec, type CliFacts } from './lib/bench-report.js';
import { runCli, targetArgs } from './lib/cli.js';
import { Link } from './lib/link.js';
import { bootRescueImage } from './lib/rescue-vm.js';
import { defaultScenario, startServer, type TestServer } from './lib/server.js';
import { startRelay, type Relay } from './lib/slow-link.js';

/** The shaped link: 100 ms round trip, 50 Mbit/s each way. */
const SHAPED = { oneWayDelayMs: 50, bytesPerSecond: 50e6 / 8, label: '100 ms RTT + 50 Mbit/s (userspace relay)' };
const STEPS = ['connect', 'preflight', 'capture', 'plan', 'stage', 'kexec', 'wait'];
/** Reads MemAvailable and Shmem every 100 ms with no fork but usleep (the server's /bin/sh is dash). */
const MEM_POLLER =
  'while :; do while read -r k v _; do case $k in MemAvailable:|Shmem:) echo "$k $v" ;; esac; done </proc/meminfo; echo .; usleep 100000; done';

/** One rescue, measured. */
interface RunResult {
  totalS: number;
  steps: Record<string, number>;
  /** Time outside the step lines: process start, loading the image, the confirmation (skipped with --yes). */
  otherS: number;
  facts: CliFacts;
  rttMs: number;
  uploadMiBps: number;
  memory: { usedBytes: number; tmpfsBytes: number; samples: number };
  /** First run only: the parts of staging timed one by one on the VM. */
  stageParts?: { uploadS: number; tarS: number; sha256S: number };
}

interface Report {
  machine: { nproc: number; cpu: string; qemu: string; accel: string; kernel: string; node: string; shaping?: string };
  image: { wireBytes: number; tarBytes: number; busyboxBytes: number; kernelBytes: number; initrdBytes: number; unpackedBytes: number; rescueUnpackedBytes: number };
  rescueBootS?: number;
  runs: RunResult[];
  median?: { totalS: number; steps: Record<string, number>; otherS: number; rttMs: number; uploadMiBps: number; roundTrips: number; rescueAnswersS: number };
  floor?: { uploadS: number; rescueBootS: number; rttS: number; totalS: number; overheadS: number };
  shaped?: Report;
}

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

function machine(): Report['machine'] {
  const qemu = execFileSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  return { nproc: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', qemu, accel: 'TCG, 1 vCPU, -cpu max', kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(), node: process.version };
}

function imageFacts(image: Image): Report['image'] {
  return {
    wireBytes: image.busybox.size + image.tarBytes,
    tarBytes: image.tarBytes,
    busyboxBytes: image.busybox.size,
    kernelBytes: image.kernelBytes,
    initrdBytes: image.initrdBytes,
    unpackedBytes: image.unpackedBytes,
    rescueUnpackedBytes: image.rescueUnpackedBytes,
  };
}

/** Uploads the tarball into the VM's /dev/shm and times tar -x and sha256sum -c there, one command each. */
async function stageParts(link: Link, image: Image, rttMs: number): Promise<NonNullable<RunResult['stageParts']>> {
  const upload = await link.run('cat >/dev/shm/bench.tar', image.path);
  const tar = await link.run('mkdir /dev/shm/bench && busybox tar -x -o -C /dev/shm/bench -f /dev/shm/bench.tar');
  const sums = await link.run('cd /dev/shm/bench/emergency-image && busybox sha256sum -c -s SHA256SUMS');
  await link.run('rm -rf /dev/shm/bench /dev/shm/bench.tar');
  return { uploadS: (upload.ms - rttMs) / 1000, tarS: (tar.ms - rttMs) / 1000, sha256S: (sums.ms - rttMs) / 1000 };
}

/** Boots a fresh server, measures the link, rescues it with the CLI while polling its memory. */
async function rescueOnce(imagePath: string, image: Image, first: boolean, shaped = false): Promise<RunResult> {
  const server = await startServer(defaultScenario(), { log });
  let relay: Relay | undefined;
  try {
    let target: TestServer = server;
    if (shaped) {
      relay = await startRelay({ targetPort: server.port, ...SHAPED });
      // The same host keys, known for the relay's port.
      const knownHostsFile = join(server.workDir, 'known_hosts.relay');
      writeFileSync(knownHostsFile, readFileSync(server.knownHostsFile, 'utf8').replaceAll(`[127.0.0.1]:${server.port}`, `[127.0.0.1]:${relay.port}`));
      target = { ...server, port: relay.port, knownHostsFile };
    }
    const link = await Link.open(target, 'root');
    const rttMs = await link.roundTripMs();
    const parts = first ? await stageParts(link, image, rttMs) : undefined;
    const upload = parts ? parts.uploadS * 1000 : (await link.run('cat >/dev/null', image.path)).ms - rttMs;
    const uploadMiBps = image.tarBytes / 1024 / 1024 / (upload / 1000);

    const lines: string[] = [];
    const arrivals: number[] = [];
    let firstSample!: () => void;
    const sampled = new Promise<void>((r) => (firstSample = r));
    const poller = link.watch(MEM_POLLER, (line, at) => {
      lines.push(line);
      if (line === '.') {
        arrivals.push(at);
        firstSample();
      }
    });
    await sampled;
    const cli = await runCli(['--yes', '--timeout', '240', '--image', imagePath, ...targetArgs(target, 'root')]);
    poller.stop();
    await link.close().catch(() => {});
    if (cli.code !== 0) throw new Error(`the rescue failed (exit ${cli.code}):\n${cli.stderr}\n--- serial ---\n${server.serialLog().split('\n').slice(-30).join('\n')}`);
    const check = await server.ssh('root', 'cat /proc/cmdline');
    if (!/emergency\.rescue=1/.test(check.stdout)) throw new Error(`after the CLI finished, ssh does not reach the rescue system: ${check.stderr}`);

    const samples = parseMemSamples(lines, arrivals);
    const steps = parseStepLines(cli.stderr);
    const stepSum = Object.values(steps).reduce((a, b) => a + b, 0);
    return {
      totalS: cli.ms / 1000,
      steps,
      otherS: cli.ms / 1000 - stepSum,
      facts: parseCliFacts(cli.stderr),
      rttMs,
      uploadMiBps,
      memory: memoryPeak(samples[0], samples.slice(1)),
      stageParts: parts,
    };
  } finally {
    await relay?.close();
    await server.stop();
  }
}

function summarise(report: Report): void {
  const runs = report.runs;
  const m = (f: (r: RunResult) => number | undefined) => median(runs.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v)));
  report.median = {
    totalS: m((r) => r.totalS),
    steps: Object.fromEntries([...new Set(runs.flatMap((r) => Object.keys(r.steps)))].map((s) => [s, m((r) => r.steps[s])])),
    otherS: m((r) => r.otherS),
    rttMs: m((r) => r.rttMs),
    uploadMiBps: m((r) => r.uploadMiBps),
    roundTrips: m((r) => r.facts.roundTrips),
    rescueAnswersS: m((r) => r.facts.rescueAnswersS),
  };
  if (report.rescueBootS !== undefined) {
    const uploadS = report.image.wireBytes / 1024 / 1024 / report.median.uploadMiBps;
    const rttS = report.median.rttMs / 1000;
    const totalS = uploadS + report.rescueBootS + rttS;
    report.floor = { uploadS, rescueBootS: report.rescueBootS, rttS, totalS, overheadS: report.median.totalS - totalS };
  }
}

function table(report: Report): string {
  const med = report.median!;
  const n = report.runs.length;
  const rows: [string, string, string?][] = [[`time-to-rescue (median of ${n})`, sec(med.totalS), 'CLI start → the CLI has run a command as root on the rescue system']];
  for (const step of [...STEPS, ...Object.keys(med.steps).filter((s) => !STEPS.includes(s))]) {
    if (med.steps[step] !== undefined) rows.push([`  ${step}`, sec(med.steps[step])]);
  }
  rows.push(['  (outside the steps)', sec(med.otherS), 'node start, reading the image']);
  rows.push(['  kexec → rescue sshd answers', sec(med.rescueAnswersS), 'inside wait']);
  if (report.floor) {
    const f = report.floor;
    rows.push(['floor', sec(f.totalS), `upload ${mb(report.image.wireBytes)} at ${med.uploadMiBps.toFixed(2)} MiB/s = ${sec(f.uploadS)} + rescue boot→sshd ${sec(f.rescueBootS)} + 1 RTT ${sec(f.rttS)}`]);
    rows.push(['overhead above the floor', sec(f.overheadS)]);
  }
  rows.push(['ssh round trips before kexec', String(med.roundTrips)]);
  rows.push(['ssh round trip (median)', `${med.rttMs.toFixed(0)} ms`, 'one command over the open connection']);
  const parts = report.runs[0].stageParts;
  if (parts) rows.push(['stage, timed apart (VM)', sec(parts.uploadS + parts.tarS + parts.sha256S), `upload ${sec(parts.uploadS)} + tar -x ${sec(parts.tarS)} + sha256sum -c ${sec(parts.sha256S)}`]);
  const mem = median(report.runs.map((r) => r.memory.usedBytes));
  const tmpfs = median(report.runs.map((r) => r.memory.tmpfsBytes));
  rows.push(['host memory for staging (peak)', mb(mem), `MemAvailable drop; tmpfs (Shmem) ${mb(tmpfs)}; the rest ≈ kexec segments`]);
  rows.push(['image unpacked (tmpfs)', mb(report.image.unpackedBytes), `kernel ${mb(report.image.kernelBytes)} + initrd ${mb(report.image.initrdBytes)} = kexec segments`]);
  rows.push(['image on the wire', mb(report.image.wireBytes), 'busybox + tar, uncompressed tar of zstd kernel/initrd']);
  rows.push(['rescue system unpacked (RAM)', mb(report.image.rescueUnpackedBytes), 'image.info rescue_unpacked_bytes']);
  if (report.shaped?.median) {
    const s = report.shaped.median;
    rows.push([`with ${report.shaped.machine.shaping}`, sec(s.totalS), Object.entries(s.steps).map(([k, v]) => `${k} ${sec(v)}`).join(' · ')]);
    rows.push(['  link there (measured)', `${s.rttMs.toFixed(0)} ms`, `RTT; upload ${s.uploadMiBps.toFixed(2)} MiB/s; ${s.roundTrips} round trips before kexec`]);
    const f = report.shaped.floor;
    if (f) {
      rows.push(['  floor there', sec(f.totalS), `upload ${sec(f.uploadS)} + rescue boot→sshd ${sec(f.rescueBootS)} + 1 RTT ${sec(f.rttS)}`]);
      rows.push(['  overhead above that floor', sec(f.overheadS)]);
    }
  }
  return renderTable(rows);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      'no-shaped': { type: 'boolean', default: false },
    },
  });
  const runs = Number(values.runs ?? (values.quick ? 1 : 3));
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a whole number ≥ 1');
  const report: Report = { machine: machine(), image: { wireBytes: 0, tarBytes: 0, busyboxBytes: 0, kernelBytes: 0, initrdBytes: 0, unpackedBytes: 0, rescueUnpackedBytes: 0 }, runs: [] };
  const imagePath = await buildTestImage(log);
  const image = await loadImage(imagePath);
  report.image = imageFacts(image);

  log('the rescue image booted directly in QEMU (the floor\'s boot → sshd)');
  const rescue = await bootRescueImage(imagePath);
  report.rescueBootS = rescue.bootToSshMs / 1000;
  await rescue.stop();
  for (let i = 0; i < runs; i++) {
    log(`rescue ${i + 1} of ${runs}`);
    const r = await rescueOnce(imagePath, image, i === 0);
    log(`  ${sec(r.totalS)}: ${Object.entries(r.steps).map(([k, v]) => `${k} ${sec(v)}`).join(', ')}`);
    report.runs.push(r);
  }
  summarise(report);

  if (!values.quick && !values['no-shaped']) {
    log(`rescue over ${SHAPED.label}`);
    const r = await rescueOnce(imagePath, image, false, true);
    log(`  ${sec(r.totalS)}: ${Object.entries(r.steps).map(([k, v]) => `${k} ${sec(v)}`).join(', ')}`);
    report.shaped = { machine: { ...report.machine, shaping: SHAPED.label }, image: report.image, rescueBootS: report.rescueBootS, runs: [r] };
    summarise(report.shaped);
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  const m = report.machine;
  process.stdout.write(`${m.nproc} × ${m.cpu}, ${m.qemu}, ${m.accel}; Linux ${m.kernel}; node ${m.node}\n\n${table(report)}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`bench failed: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
