/**
 * `npm run bench`: time-to-rescue of the QEMU test server (the end-to-end tests' server) against its physical
 * floor. A benchmark: it prints a table (and --json FILE), and asserts nothing about time.
 *
 *   npm run bench -- [--arch x86_64|aarch64] [--runs N] [--quick] [--json FILE] [--no-shaped] [--url-runs N] [--only-url] [--trace DIR]
 *
 * Per run: a fresh server; over one ssh ControlMaster, the round trip and the upload rate (the image tarball
 * itself streamed into the VM's /dev/shm), and — on the first run — where staging's time goes (tar -x and
 * sha256sum on the VM); then the CLI rescues it, unobserved. One more rescue (not among the timed ones, and not with
 * --quick) has a poller read /proc/meminfo on the server every 100 ms: the host memory staging takes. Once: the
 * rescue image booted directly in QEMU (boot → sshd). Then the same rescue again with
 * 100 ms of round-trip delay and 50 Mbit/s: every ssh connection (the CLI's and the measuring ones) goes
 * through a userspace relay in front of QEMU's port forward (test/lib/slow-link.ts) that delays each chunk
 * 50 ms per direction and limits each direction to 50 Mbit/s; this kernel has no `netem` qdisc, and `tbf`
 * alone gives no delay. The link is measured through the relay the same way, so that floor is measured too.
 *
 * As root, the bench runs in a network namespace of its own (test/lib/own-netns.ts) and adds two shaped runs
 * with `--image http://10.0.2.100:8080/…#sha256=…`: the operator's route to that HTTP server goes through the same
 * relay (the operator's slow link), while the test server reaches it through QEMU's guestfwd unshaped (the data
 * centre's link). Once the host fetches it itself; once without guestfwd, so the CLI downloads it over the slow
 * link and streams it over the slow link again. `--url-runs N` takes N of each (alternating, so that the load of
 * the machine falls on both alike); `--only-url` takes only those, without the plain and shaped runs.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadImage, type Image } from '../image.js';
import { ARCHES, parseArch, type Arch } from '../test-image/arch.js';
import { buildTestImage } from '../test-image/build.js';
import { mb, median, memoryPeak, parseCliFacts, parseMemSamples, parseStepLines, renderTable, sec, type CliFacts } from './lib/bench-report.js';
import { runCli, startCli, targetArgs } from './lib/cli.js';
import { recordTimeline } from './lib/timeline.js';
import { Link } from './lib/link.js';
import { bootRescueImage } from './lib/rescue-vm.js';
import { defaultScenario, startServer, type TestServer } from './lib/server.js';
import { startRelay, type Relay } from './lib/slow-link.js';
import { startFileServer } from './lib/http-files.js';
import { netnsUnavailable, ownNetns } from './lib/own-netns.js';
import { buildServerBase } from './lib/server-image.js';
import { fileURLToPath } from 'node:url';

/** The shaped link: 100 ms round trip, 50 Mbit/s each way. */
const SHAPED = { oneWayDelayMs: 50, bytesPerSecond: 50e6 / 8, label: '100 ms RTT + 50 Mbit/s (userspace relay)' };
const STEPS = ['connect', 'preflight', 'capture', 'plan', 'stage', 'kexec', 'wait'];
/**
 * Reads MemAvailable and Shmem every 100 ms with no fork but usleep (the server's /bin/sh is dash). It costs the
 * one vCPU a fork every 100 ms and an ssh channel's output, which measurably slows the rescue it watches (A/B, one
 * run each, 2 × 2, quiet machine: 18.7 and 18.9 s with it, 17.1 and 17.8 s without; stage 6.9 against 6.0-6.2 s),
 * so it runs only in a rescue of its own whose time is not counted (`memoryRun`).
 */
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
  /** Only in the memory run, the one rescue watched by MEM_POLLER (its time is not among the timed runs). */
  memory?: { usedBytes: number; tmpfsBytes: number; samples: number };
  /** First run only: the parts of staging timed one by one on the VM. */
  stageParts?: { uploadS: number; tarS: number; sha256S: number; kexecLoadS: number };
}

interface Report {
  machine: { nproc: number; cpu: string; qemu: string; accel: string; kernel: string; node: string; load: string; shaping?: string };
  image: {
    wireBytes: number;
    tarBytes: number;
    busyboxBytes: number;
    kernelBytes: number;
    initrdBytes: number;
    unpackedBytes: number;
    rescueUnpackedBytes: number;
  };
  rescueBootS?: number;
  /**
   * The directly booted rescue's first ssh login (a fresh connection: key exchange, authentication, `true`), right
   * after its banner: the login the CLI's probe makes too, which the floor counts as one round trip.
   */
  rescueFirstLoginS?: number;
  runs: RunResult[];
  /** The extra rescue that measured the host's memory while staging; its time is reported, not counted. */
  memoryRun?: RunResult;
  median?: { totalS: number; steps: Record<string, number>; otherS: number; rttMs: number; uploadMiBps: number; roundTrips: number; rescueAnswersS: number };
  floor?: { uploadS: number; rescueBootS: number; rttS: number; totalS: number; overheadS: number };
  shaped?: Report;
  /** The shaped runs with --image URL: the host fetching it, and the CLI fetching it (no guestfwd). */
  url?: { hostFetch: UrlRun[]; cliFetch: UrlRun[] } | { skipped: string };
}

/** One shaped rescue from an image URL. */
interface UrlRun {
  totalS: number;
  steps: Record<string, number>;
  /** What the CLI said about the download: "27.0 MB in 1.3 s (20.8 MB/s)". */
  fetch: string;
  roundTrips?: number;
  /** The load average (1, 5, 15 min) as the run started: TCG slows with the other work on the machine. */
  load: string;
}

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** "connect 0.70 s, preflight 1.4 s, …": a run's step times in the CLI's order. */
function stepList(steps: Record<string, number>, separator: string): string {
  return Object.entries(steps)
    .map(([k, v]) => `${k} ${sec(v)}`)
    .join(separator);
}

/** "19.9 s: connect 0.70 s, preflight 1.4 s, …": a run's total and its steps, for the progress log. */
const describeRun = (r: { totalS: number; steps: Record<string, number> }) => `${sec(r.totalS)}: ${stepList(r.steps, ', ')}`;

function machine(arch: Arch): Report['machine'] {
  const { binary, machine: board, cpu, accel } = ARCHES[arch].qemu;
  const qemu = execFileSync(binary, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  // Other work on the machine slows TCG: the load average at the start says how quiet it was.
  const load = execFileSync('uptime', { encoding: 'utf8' })
    .trim()
    .replace(/^.*load average/, 'load average');
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    qemu,
    accel: `TCG, 1 vCPU, ${[...board, '-accel', accel, '-cpu', cpu].join(' ')}`,
    kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
    node: process.version,
    load,
  };
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

/**
 * Uploads the tarball into the VM's /dev/shm and times tar -x and sha256sum of the tarball there, one command each:
 * the work stage.sh does once the tarball is in (its `file` way: the tarball hashed whole, then unpacked).
 */
async function stageParts(link: Link, image: Image, rttMs: number): Promise<NonNullable<RunResult['stageParts']>> {
  const upload = await link.run('cat >/dev/shm/bench.tar', image.path);
  const tar = await link.run('mkdir /dev/shm/bench && busybox tar -x -o -C /dev/shm/bench -f /dev/shm/bench.tar');
  const sums = await link.run('busybox sha256sum /dev/shm/bench.tar >/dev/null');
  // kexec-run.sh's load (kexec_load --no-checks, the image's kexec), unloaded at once: the server stays as it was.
  const load = await link.run(
    'cd /dev/shm/bench/emergency-image && sh ./run-tool.sh kexec --no-sync -c -i -l kernel --initrd=initrd --command-line="$(cat cmdline)"',
  );
  await link.run('cd /dev/shm/bench/emergency-image && sh ./run-tool.sh kexec -u && test "$(cat /sys/kernel/kexec_loaded)" = 0');
  await link.run('rm -rf /dev/shm/bench /dev/shm/bench.tar');
  const s = (r: { ms: number }) => (r.ms - rttMs) / 1000;
  return { uploadS: s(upload), tarS: s(tar), sha256S: s(sums), kexecLoadS: s(load) };
}

/** Boots a fresh server, measures the link, rescues it with the CLI (watching its memory only when asked). */
async function rescueOnce(
  imagePath: string,
  image: Image,
  opts: { first: boolean; arch: Arch; shaped?: boolean; watchMemory?: boolean; traceFile?: string },
): Promise<RunResult> {
  const { first, arch, shaped = false, watchMemory = false, traceFile } = opts;
  const server = await startServer(defaultScenario(), { log, arch, timeoutMs: 240_000 });
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
    let poller: { stop(): void } | undefined;
    if (watchMemory) {
      let firstSample!: () => void;
      const sampled = new Promise<void>((r) => (firstSample = r));
      poller = link.watch(MEM_POLLER, (line, at) => {
        lines.push(line);
        if (line === '.') {
          arrivals.push(at);
          firstSample();
        }
      });
      await sampled;
    }
    const args = ['--yes', '--timeout', '480', '--image', imagePath, ...targetArgs(target, 'root')];
    let cli: Awaited<ReturnType<typeof runCli>>;
    if (traceFile) {
      const timeline = recordTimeline(server.vm.serialLogFile);
      const run = startCli(args, { timeoutMs: 900_000 });
      run.onStderrLine((line) => timeline.cli(line));
      cli = await run.done;
      timeline.finish(traceFile);
    } else cli = await runCli(args, { timeoutMs: 900_000 });
    poller?.stop();
    await link.close().catch(() => {});
    if (cli.code !== 0)
      throw new Error(`the rescue failed (exit ${cli.code}):\n${cli.stderr}\n--- serial ---\n${server.serialLog().split('\n').slice(-30).join('\n')}`);
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
      memory: watchMemory ? memoryPeak(samples[0], samples.slice(1)) : undefined,
      stageParts: parts,
    };
  } finally {
    await relay?.close();
    await server.stop();
  }
}

const URL_ADDR = '10.0.2.100';
const TCP_PIPE = fileURLToPath(new URL('./lib/tcp-pipe.js', import.meta.url));

/**
 * A shaped rescue from http://10.0.2.100:8080/…: that port is the slow relay in front of the HTTP server on 8081;
 * with `hostFetch` the server's guestfwd reaches 8081 directly.
 */
async function urlRescueOnce(imagePath: string, hostFetch: boolean): Promise<UrlRun> {
  const load = loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
  const pin = createHash('sha256').update(readFileSync(imagePath)).digest('hex');
  const files = await startFileServer(URL_ADDR, 8081, { '/i.tar': imagePath, '/i.tar.meta': `${imagePath}.meta` });
  const httpRelay = await startRelay({ ...SHAPED, targetPort: 8081, targetHost: URL_ADDR, listen: { host: URL_ADDR, port: 8080 } });
  const guestfwd = hostFetch ? [{ addr: URL_ADDR, port: 8080, cmd: `${process.execPath} ${TCP_PIPE} ${URL_ADDR} 8081` }] : undefined;
  const server = await startServer(defaultScenario(), { log, guestfwd });
  let relay: Relay | undefined;
  try {
    relay = await startRelay({ targetPort: server.port, ...SHAPED });
    const knownHostsFile = join(server.workDir, 'known_hosts.relay');
    writeFileSync(knownHostsFile, readFileSync(server.knownHostsFile, 'utf8').replaceAll(`[127.0.0.1]:${server.port}`, `[127.0.0.1]:${relay.port}`));
    const target = { ...server, port: relay.port, knownHostsFile };
    const cli = await runCli(['--yes', '--timeout', '240', '--image', `http://${URL_ADDR}:8080/i.tar#sha256=${pin}`, ...targetArgs(target, 'root')]);
    if (cli.code !== 0) throw new Error(`the URL rescue failed (exit ${cli.code}):\n${cli.stderr}`);
    const said = hostFetch ? /the host fetched the image itself: (.+?), sha256/.exec(cli.stderr) : /downloaded (.+?), sha256 verified/.exec(cli.stderr);
    if (!said) throw new Error(`the CLI did not say how the image came (${hostFetch ? 'host' : 'CLI'} fetch expected):\n${cli.stderr}`);
    return { totalS: cli.ms / 1000, steps: parseStepLines(cli.stderr), fetch: said[1], roundTrips: parseCliFacts(cli.stderr).roundTrips, load };
  } finally {
    await relay?.close();
    await server.stop();
    await httpRelay.close();
    await files.close();
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

/**
 * The guest work inside the overhead that every rescue over ssh does, each part measured on its own: the login to
 * the old system (the connect step), the login to the rescue (measured on the direct boot; the floor counts one
 * round trip of it), the tarball's sha256 and the kexec load (both timed on the VM in the first run). Said beside
 * the overhead, not taken out of it: under TCG each is the guest's one emulated CPU at work.
 */
function mandatoryWork(report: Report): { connectS: number; rescueLoginS: number; sha256S: number; kexecLoadS: number; totalS: number } | undefined {
  const connectS = report.median?.steps.connect;
  const parts = report.runs[0]?.stageParts;
  if (connectS === undefined || report.rescueFirstLoginS === undefined || !parts || !report.floor) return undefined;
  const rescueLoginS = Math.max(0, report.rescueFirstLoginS - report.floor.rttS);
  return { connectS, rescueLoginS, sha256S: parts.sha256S, kexecLoadS: parts.kexecLoadS, totalS: connectS + rescueLoginS + parts.sha256S + parts.kexecLoadS };
}

/** The rows of the plain runs: time-to-rescue, its steps, the floor, memory and the image. */
function plainRows(report: Report, med: NonNullable<Report['median']>, rows: [string, string, string?][]): void {
  const n = report.runs.length;
  rows.push([`time-to-rescue (median of ${n})`, sec(med.totalS), 'CLI start → the CLI has run a command as root on the rescue system']);
  for (const step of [...STEPS, ...Object.keys(med.steps).filter((s) => !STEPS.includes(s))]) {
    if (med.steps[step] !== undefined) rows.push([`  ${step}`, sec(med.steps[step])]);
  }
  rows.push(['  (outside the steps)', sec(med.otherS), 'node start, reading the image']);
  rows.push(['  kexec → rescue sshd answers', sec(med.rescueAnswersS), 'inside wait']);
  if (report.floor) {
    const f = report.floor;
    rows.push([
      'floor',
      sec(f.totalS),
      `upload ${mb(report.image.wireBytes)} at ${med.uploadMiBps.toFixed(2)} MiB/s = ${sec(f.uploadS)} + rescue boot→sshd ${sec(f.rescueBootS)} + 1 RTT ${sec(f.rttS)}`,
    ]);
    rows.push(['overhead above the floor', sec(f.overheadS)]);
    const work = mandatoryWork(report);
    if (work) {
      rows.push([
        '  of it, guest work any ssh rescue does',
        sec(work.totalS),
        `connect ${sec(work.connectS)} + the rescue's first login ${sec(work.rescueLoginS)} (direct boot, less 1 RTT) + sha256 of the tar ${sec(work.sha256S)} + kexec_load ${sec(work.kexecLoadS)} (VM)`,
      ]);
      rows.push(['  the rest of the overhead', sec(f.overheadS - work.totalS), 'preflight, sessions and scripts, the restore, the probe']);
    }
  }
  rows.push(['ssh round trips before kexec', String(med.roundTrips)]);
  rows.push(['ssh round trip (median)', `${med.rttMs.toFixed(0)} ms`, 'one command over the open connection']);
  const parts = report.runs[0].stageParts;
  if (parts)
    rows.push([
      'stage, timed apart (VM)',
      sec(parts.uploadS + parts.tarS + parts.sha256S),
      `upload ${sec(parts.uploadS)} + tar -x ${sec(parts.tarS)} + sha256sum of the tar ${sec(parts.sha256S)} (what stage.sh does after the upload)`,
    ]);
  const watched = report.memoryRun;
  if (watched?.memory)
    rows.push([
      'host memory for staging (peak)',
      mb(watched.memory.usedBytes),
      `MemAvailable drop; tmpfs (Shmem) ${mb(watched.memory.tmpfsBytes)}; the rest ≈ kexec segments (a rescue of its own, ${sec(watched.totalS)} with the 100 ms poller)`,
    ]);
  rows.push([
    'image unpacked (tmpfs)',
    mb(report.image.unpackedBytes),
    `kernel ${mb(report.image.kernelBytes)} + initrd ${mb(report.image.initrdBytes)} = kexec segments`,
  ]);
  rows.push(['image on the wire', mb(report.image.wireBytes), 'busybox + tar, uncompressed tar of zstd kernel/initrd']);
  rows.push(['rescue system unpacked (RAM)', mb(report.image.rescueUnpackedBytes), 'image.info rescue_unpacked_bytes']);
}

function table(report: Report): string {
  const rows: [string, string, string?][] = [];
  // --only-url: no plain runs, so only the URL rows.
  if (report.median) plainRows(report, report.median, rows);
  if (report.shaped?.median) {
    const s = report.shaped.median;
    rows.push([`with ${report.shaped.machine.shaping}`, sec(s.totalS), stepList(s.steps, ' · ')]);
    rows.push([
      '  link there (measured)',
      `${s.rttMs.toFixed(0)} ms`,
      `RTT; upload ${s.uploadMiBps.toFixed(2)} MiB/s; ${s.roundTrips} round trips before kexec`,
    ]);
    const f = report.shaped.floor;
    if (f) {
      rows.push(['  floor there', sec(f.totalS), `upload ${sec(f.uploadS)} + rescue boot→sshd ${sec(f.rescueBootS)} + 1 RTT ${sec(f.rttS)}`]);
      rows.push(['  overhead above that floor', sec(f.overheadS)]);
    }
  }
  if (report.url && 'hostFetch' in report.url) {
    for (const [label, runs] of [
      ['--image URL, the host fetches', report.url.hostFetch],
      ['--image URL, the CLI fetches (no route)', report.url.cliFetch],
    ] as const) {
      // The run with the median total (the lower middle one of an even count) stands for all: its steps add up.
      const r = [...runs].sort((a, b) => a.totalS - b.totalS)[Math.floor((runs.length - 1) / 2)];
      rows.push([
        `${label} (shaped${runs.length > 1 ? `, ${runs.length % 2 ? 'median' : 'lower middle'} of ${runs.length}` : ''})`,
        sec(r.totalS),
        stepList(r.steps, ' · '),
      ]);
      rows.push([
        '  download',
        r.fetch,
        label.includes('host') ? 'host ← HTTP server over guestfwd (unshaped)' : 'CLI ← HTTP server over the shaped link, then streamed over it',
      ]);
      for (const run of runs) rows.push(['  run', sec(run.totalS), `load average ${run.load} at its start; ${run.fetch}`]);
    }
  } else if (report.url) rows.push(['--image URL runs', 'skipped', report.url.skipped]);
  return renderTable(rows);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      arch: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      'no-shaped': { type: 'boolean', default: false },
      'url-runs': { type: 'string' },
      'only-url': { type: 'boolean', default: false },
      trace: { type: 'string' },
    },
  });
  const runs = Number(values.runs ?? (values.quick ? 1 : 3));
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a whole number ≥ 1');
  const urlRuns = Number(values['url-runs'] ?? 1);
  if (!Number.isInteger(urlRuns) || urlRuns < 1) throw new Error('--url-runs needs a whole number ≥ 1');
  const onlyUrl = values['only-url'];
  if (onlyUrl && urlSkipped) throw new Error(`--only-url: the URL runs cannot run here (${urlSkipped})`);
  const arch = parseArch(values.arch);
  if (values.trace) mkdirSync(values.trace, { recursive: true });
  const report: Report = {
    machine: machine(arch),
    image: { wireBytes: 0, tarBytes: 0, busyboxBytes: 0, kernelBytes: 0, initrdBytes: 0, unpackedBytes: 0, rescueUnpackedBytes: 0 },
    runs: [],
  };
  const imagePath = await buildTestImage(log, arch);
  const image = await loadImage(imagePath);
  report.image = imageFacts(image);

  if (!onlyUrl) {
    log("the rescue image booted directly in QEMU (the floor's boot → sshd)");
    const rescue = await bootRescueImage(imagePath, { timeoutMs: 240_000 });
    report.rescueBootS = rescue.bootToSshMs / 1000;
    const loginStarted = Date.now();
    const login = await rescue.ssh('true');
    if (login.code !== 0) throw new Error(`the directly booted rescue refused the first login: ${login.stderr}`);
    report.rescueFirstLoginS = (Date.now() - loginStarted) / 1000;
    await rescue.stop();
    for (let i = 0; i < runs; i++) {
      log(`rescue ${i + 1} of ${runs}`);
      const traceFile = values.trace ? join(values.trace, `rescue-${i + 1}.txt`) : undefined;
      const r = await rescueOnce(imagePath, image, { first: i === 0, arch, traceFile });
      if (traceFile) log(`  timeline: ${traceFile}`);
      log(`  ${describeRun(r)}`);
      report.runs.push(r);
    }
    summarise(report);
    if (!values.quick) {
      log('one more rescue, watching the host memory while it stages (not timed with the others)');
      report.memoryRun = await rescueOnce(imagePath, image, { first: false, arch, watchMemory: true });
      log(`  ${describeRun(report.memoryRun)}`);
    }

    if (!values.quick && !values['no-shaped']) {
      log(`rescue over ${SHAPED.label}`);
      const r = await rescueOnce(imagePath, image, { first: false, arch, shaped: true });
      log(`  ${describeRun(r)}`);
      report.shaped = { machine: { ...report.machine, shaping: SHAPED.label }, image: report.image, rescueBootS: report.rescueBootS, runs: [r] };
      summarise(report.shaped);
    }
  }
  if (onlyUrl || (!values.quick && !values['no-shaped'])) {
    if (urlSkipped) report.url = { skipped: urlSkipped };
    else {
      const url = { hostFetch: [] as UrlRun[], cliFetch: [] as UrlRun[] };
      for (let i = 0; i < urlRuns; i++) {
        const of = urlRuns > 1 ? ` (${i + 1} of ${urlRuns})` : '';
        log(`rescue with --image URL over ${SHAPED.label}: the host fetches${of}`);
        const hostFetch = await urlRescueOnce(imagePath, true);
        log(`  ${sec(hostFetch.totalS)}: ${hostFetch.fetch}; load average ${hostFetch.load} at its start`);
        url.hostFetch.push(hostFetch);
        log(`rescue with --image URL over ${SHAPED.label}: no route from the host, the CLI fetches${of}`);
        const cliFetch = await urlRescueOnce(imagePath, false);
        log(`  ${sec(cliFetch.totalS)}: ${cliFetch.fetch}; load average ${cliFetch.load} at its start`);
        url.cliFetch.push(cliFetch);
      }
      report.url = url;
    }
  }
  if (values.json) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  const m = report.machine;
  process.stdout.write(`${m.nproc} × ${m.cpu}, ${m.qemu}, ${m.accel}; Linux ${m.kernel}; node ${m.node}; ${m.load} at the start\n\n${table(report)}\n`);
}

// As root, everything runs in a namespace of its own whose loopback holds the URL's address (test/lib/own-netns.ts).
const urlSkipped = netnsUnavailable();
const where = urlSkipped
  ? 'here'
  : await ownNetns(import.meta.url, [URL_ADDR], async () => {
      await buildTestImage(log);
      await buildServerBase(log);
    });
if (where !== 'parent') {
  main().catch((e: Error) => {
    process.stderr.write(`bench failed: ${e.stack ?? e.message}\n`);
    process.exitCode = 1;
  });
}
