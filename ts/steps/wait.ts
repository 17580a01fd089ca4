/**
 * Step 7: notice the old system go and the rescue system answer — a new boot id and `emergency.rescue=1`
 * on its kernel command line — over strict host key checking with the same known_hosts entry.
 *
 * A full ssh probe started while the machine reboots can hang for its whole ConnectTimeout (the connection is
 * accepted by a NAT or port forward, or SYNs go unanswered), so sshd coming up is noticed by a cheap check
 * first: a TCP connection to the host and port `ssh -G` resolves, answered by an `SSH-` banner line. Only then
 * the full probe, which is what proves the boot id, the rescue marker and the host key. The probe's ssh runs over
 * the connection that saw the banner (ts/held-connection.ts) where it can: a fresh one makes the rescue's sshd
 * fork and re-execute a child again before the key exchange.
 */
import { connect as tcpConnect } from 'node:net';
import { HeldConnection } from '../held-connection.js';
import { CONFIRM_AND_REPORT, LATE_REPORT, LATE_REPORT_WAIT_S, parseLateReport, parseRescueAnswer, type RescueAnswer } from '../boundary/rescue.js';
import { shellQuote } from '../shell-quote.js';
import { EmergencyError, ExitCode, HostKeyChangedError } from '../errors.js';
import { clockTime, describeConfirmation, explainUnexpectedBoot, reportWarnings } from '../fallback.js';
import type { Remote, RunResult } from '../remote.js';
import { SSH_FAILED } from '../ssh.js';
import type { Ui } from '../ui.js';

/**
 * The probe, sent to whatever answers (the old system, the rescue, the installed system come back): the boot id and
 * the kernel command line on two lines; and, only when they show the rescue (a boot id other than the old one and
 * `emergency.rescue=1` on the command line), the fallback's confirmation and the restore report after them
 * (CONFIRM_AND_REPORT), in the same ssh run. ssh verified the host key before the command ran, so the confirmation
 * runs under exactly the conditions this side checks the answer for; it saves a second connection (a key exchange,
 * about a second on a slow rescue system). sshd answers while the restore's network phase may still run: the
 * confirmation comes first, then the report, waited for up to REPORT_WAIT_S (ts/boundary/rescue.ts).
 * Run by `sh -c` on one line, whatever root's login shell is.
 */
export function probeCommand(oldBootId: string): string {
  const script =
    'b=$(cat /proc/sys/kernel/random/boot_id); c=$(cat /proc/cmdline); echo "$b"; echo "$c"; ' +
    `case " $c " in *" emergency.rescue=1 "*) [ "$b" = ${shellQuote(oldBootId)} ] || { ${CONFIRM_AND_REPORT}; } ;; esac`;
  return `sh -c ${shellQuote(script)}`;
}

/** The probe's answer: boot id, command line, and what the rescue said after them (empty when it said nothing). Pure. */
export function splitProbeAnswer(stdout: string): { bootId: string; cmdline: string; rest: string } {
  const [bootId = '', cmdline = '', ...rest] = stdout.split('\n');
  return { bootId: bootId.trim(), cmdline, rest: rest.join('\n') };
}
// The banner check already saw sshd: a slow rescue system may need longer than a LAN host to authenticate.
const PROBE_CONNECT_TIMEOUT_S = 5;
/** Between banner checks, and between full probes while the old system still answers. */
const POLL_MS = 250;
/**
 * How long one banner check waits once connected. Closing sooner does not help: sshd forks (and re-executes) a
 * child per connection, which lives on after we hang up, and on a slow rescue system (measured: QEMU TCG on a
 * loaded host) such leftovers pass MaxStartups (10), after which sshd drops new connections at random and the
 * rescue is never noticed. A banner normally arrives in milliseconds, so a longer wait costs nothing then.
 */
const BANNER_TIMEOUT_MS = 5000;
/** A full probe runs at least this often even without a banner: a firewall may let ssh through but not us. */
const PROBE_ANYWAY_MS = 15_000;
/**
 * After this many banner checks ran out of time with no banner seen (12 s or more: longer than a kexec'd reboot
 * stays silent; refused or dropped connections do not count and do not reset it), sshd is
 * taken to be up but slow, and the checks and probes get SLOW_* time. Each check given up on leaves an sshd child
 * that still does its start-up work; on a slow machine (aarch64 under TCG on a loaded host: several seconds per
 * child) abandoning one every 1.25 s piles them up until none answers in time (measured: no banner for 480 s).
 */
const SLOW_AFTER_TIMEOUTS = 10;
const SLOW_BANNER_TIMEOUT_MS = 10_000;
const SLOW_PROBE_CONNECT_TIMEOUT_S = 15;
/**
 * A second banner connection halfway through the first one's time (firstBanner says why); none in slow mode, where
 * sshd's children are slow enough already. Halfway, because the next round starts when both have given up: fresh
 * connections then go out evenly, every 2.5 s. A connection made while the machine was down does not help later:
 * QEMU's user network sends its first SYN retry 6 s after the first (traced: sshd forked children for two such
 * connections at exactly +6 s, after we had given up on them at 5 s), so only fresh connections find sshd sooner.
 * At 1.5 s the gaps were 1.5 s and 3.5 s: sshd answering at a random moment waited 1.45 s on average for the next
 * fresh connection (3.5 s at worst); evenly spread, 1.25 s (2.5 s), with no more connections and sshd children.
 */
const STAGGER: Stagger = { everyMs: BANNER_TIMEOUT_MS / 2, atMost: 2 };
const SLOW_STAGGER: Stagger = { everyMs: SLOW_BANNER_TIMEOUT_MS, atMost: 1 };

/** Where sshd can be checked directly: the host and port ssh itself connects to. */
export interface BannerTarget {
  host: string;
  port: number;
  /** AddressFamily inet or inet6: connect only over IPv4 (4) or IPv6 (6), as ssh would. */
  family?: 4 | 6;
}

/** `ssh -G` output as a map, the first value of each key winning (as in ssh). Pure. */
function sshGValues(sshG: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of sshG.split('\n')) {
    const match = /^\s*(\S+)\s+(.*?)\s*$/.exec(line);
    if (match && !values.has(match[1].toLowerCase())) values.set(match[1].toLowerCase(), match[2]);
  }
  return values;
}

/**
 * The banner check's target from `ssh -G` output, or undefined when there is none to make: a ProxyJump or
 * ProxyCommand stands between us and sshd (only ssh knows how to get there), or the output names no host.
 */
export function bannerTarget(sshG: string): BannerTarget | undefined {
  const values = sshGValues(sshG);
  for (const proxy of ['proxyjump', 'proxycommand']) {
    const value = values.get(proxy);
    if (value && value.toLowerCase() !== 'none') return undefined;
  }
  const host = values.get('hostname');
  const port = Number(values.get('port') ?? '22');
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  const family = { inet: 4, inet6: 6 }[values.get('addressfamily') ?? ''] as 4 | 6 | undefined;
  return family ? { host, port, family } : { host, port };
}

/**
 * Whether the probe's ssh may use the banner check's connection (`ssh -G` output), so that it authenticates the
 * same as over a connection of its own: not when ssh would bind the connection's source itself (BindAddress,
 * BindInterface: sshd may allow logins by source address), nor when it would canonicalize the host name (with a
 * proxy it does not, and would look the host key up under another name). Pure.
 */
export function canHandOver(sshG: string): boolean {
  const values = sshGValues(sshG);
  return !values.has('bindaddress') && !values.has('bindinterface') && (values.get('canonicalizehostname') ?? 'false') === 'false';
}

/**
 * Whether an SSH server sends its banner (a line starting `SSH-`) on host:port within timeoutMs; sends nothing.
 * When it does, the connection is kept, paused, with every byte read so far: close() it or hand it to a probe.
 */
export function sshBanner(target: BannerTarget, timeoutMs: number, signal?: AbortSignal): Promise<HeldConnection | undefined> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(undefined);
      return;
    }
    const socket = tcpConnect({ host: target.host, port: target.port, ...(target.family && { family: target.family }) });
    const chunks: Buffer[] = [];
    let received = '';
    const finish = (held?: HeldConnection) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onEnd);
      socket.off('data', onData).off('error', onEnd).off('close', onEnd);
      if (!held) socket.destroy();
      resolve(held);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.toString('latin1');
      // RFC 4253 4.2: the server may send other lines before the version line.
      if (received.split('\n').some((line) => line.startsWith('SSH-'))) finish(new HeldConnection(socket, Buffer.concat(chunks)));
      else if (received.length > 8192) finish();
    };
    const onEnd = () => finish();
    const timer = setTimeout(onEnd, timeoutMs);
    signal?.addEventListener('abort', onEnd);
    socket.on('data', onData);
    socket.on('error', onEnd);
    socket.on('close', onEnd);
  });
}

/** How a banner check spreads over connections: a new one every `everyMs` while fewer than `atMost` are pending. */
export interface Stagger {
  everyMs: number;
  atMost: number;
}

/**
 * The first banner among connections started `stagger.everyMs` apart while fewer than `stagger.atMost` wait for
 * one, for `timeoutMs` from the first; the others are closed. Resolves undefined once every connection gave up
 * (refused, closed, or out of time) and no more may start. Why more than one: a connection made while the
 * machine is down can sit unanswered, at a NAT or port forward that accepted it (QEMU's user networking) or in
 * the client's SYN retransmissions, long after sshd listens (measured: the banner 3.9 s after sshd listened,
 * against 0.4-0.5 s in runs where no check was caught that way); a second connection a moment later is answered
 * at once. At most one more by default: on a slow rescue every extra connection is one more sshd child forking and
 * re-executing before its banner.
 */
export function firstBanner(target: BannerTarget, timeoutMs: number, stagger: Stagger): Promise<HeldConnection | undefined> {
  return new Promise((resolve) => {
    const abort = new AbortController();
    const until = Date.now() + timeoutMs;
    let pending = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (held?: HeldConnection) => {
      if (settled) {
        held?.close();
        return;
      }
      settled = true;
      clearTimeout(timer);
      abort.abort();
      resolve(held);
    };
    const start = () => {
      pending++;
      void sshBanner(target, Math.max(0, until - Date.now()), abort.signal).then((held) => {
        pending--;
        if (held) settle(held);
        else if (pending === 0) settle();
      });
    };
    const tick = () => {
      if (settled) return;
      if (pending < stagger.atMost) start();
      if (Date.now() + stagger.everyMs < until) timer = setTimeout(tick, stagger.everyMs);
    };
    start();
    if (stagger.atMost > 1) timer = setTimeout(tick, stagger.everyMs);
  });
}

/** ssh's failures that are answers, the same over any connection: they are not retried on a fresh one. */
const HOST_KEY_CHANGED = /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i;
const PERMISSION_DENIED = /Permission denied/i;

const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

/** What the wait needs: the old boot id, when the jump was triggered and how long to wait. */
export interface WaitFor {
  oldBootId: string;
  triggeredAt: number;
  timeoutSeconds: number;
  /** The rescue's fallback reboot (--fallback-reboot): to tell its reboot from others, and to confirm it. */
  fallbackReboot: number | 'off';
}

/** The rescue system as the wait step verified it. */
export interface RescueUp {
  bootId: string;
  /** Milliseconds from the trigger to the verified answer. */
  answeredAfterMs: number;
  /** What the rescue said when confirmed (fallback state, restore report); undefined when it could not be read. */
  answer?: RescueAnswer;
}

/** Polls until the rescue system answers (new boot id, rescue marker, same host key); throws when it does not in time. */
export async function waitForRescue(remote: Remote, ui: Ui, w: WaitFor): Promise<RescueUp> {
  const destination = remote.destination;
  const started = w.triggeredAt;
  const deadline = started + w.timeoutSeconds * 1000;
  const sshG = await remote.sshConfig().catch(() => '');
  const target = bannerTarget(sshG);
  // Cleared when a relay never connected (a broken install, say): every later probe then makes its own connection.
  let handOver = canHandOver(sshG);
  const probe = probeCommand(w.oldBootId);
  let goneAt: number | undefined;
  let lastError = '';
  let lastProbe = Date.now();
  let bannerTimeouts = 0;
  while (Date.now() < deadline) {
    const tick = Date.now();
    const slow = bannerTimeouts >= SLOW_AFTER_TIMEOUTS;
    const bannerTimeout = slow ? SLOW_BANNER_TIMEOUT_MS : BANNER_TIMEOUT_MS;
    const held = target && tick - lastProbe < PROBE_ANYWAY_MS ? await firstBanner(target, bannerTimeout, slow ? SLOW_STAGGER : STAGGER) : undefined;
    if (target && tick - lastProbe < PROBE_ANYWAY_MS && !held) {
      if (Date.now() - tick >= bannerTimeout) bannerTimeouts++;
      goneAt ??= Date.now();
      lastError = `no SSH banner from ${target.host} port ${target.port}`;
      await sleepUntil(tick + POLL_MS);
      continue;
    }
    lastProbe = Date.now();
    const probeTimeout = slow ? SLOW_PROBE_CONNECT_TIMEOUT_S : PROBE_CONNECT_TIMEOUT_S;
    let result: RunResult | undefined;
    if (held) {
      try {
        if (handOver && held.alive) result = await remote.probe('root', probe, probeTimeout, held);
      } finally {
        held.close();
      }
      if (result && !held.handedOver) handOver = false;
      // The held connection died, or ssh failed on it: the probe as it would run without one, in this same round.
      if (result?.code === SSH_FAILED && !HOST_KEY_CHANGED.test(result.stderr) && !PERMISSION_DENIED.test(result.stderr)) result = undefined;
    }
    result ??= await remote.probe('root', probe, probeTimeout);
    // The rescue system always lets root in with the operator's key; the installed system may not. Asking as the
    // login user then tells the old system (same boot) from the installed one coming back (a new boot).
    if (result.code === SSH_FAILED && PERMISSION_DENIED.test(result.stderr) && remote.loginUser !== 'root') {
      const asUser = await remote.probe(remote.loginUser, probe, probeTimeout);
      if (asUser.code === 0) result = asUser;
    }
    if (result.code === 0) {
      const { bootId, cmdline, rest } = splitProbeAnswer(result.stdout);
      if (bootId !== w.oldBootId) {
        if (!cmdline.split(/\s+/).includes('emergency.rescue=1')) {
          const { message, fix } = explainUnexpectedBoot((Date.now() - started) / 1000, w.fallbackReboot);
          throw new EmergencyError(`${destination}: ${message} (cmdline: ${cmdline.trim()})`, fix, ExitCode.NotBack);
        }
        ui.info(
          `rescue system answers ${((Date.now() - started) / 1000).toFixed(1)} s after kexec` +
            (goneAt ? ` (old system gone after ${((goneAt - started) / 1000).toFixed(1)} s)` : ''),
        );
        // The probe confirmed and read the report already; a rescue that said nothing more is asked again.
        let answer = rest.trim() ? readRescueAnswer(ui, rest, result.stderr, started) : await confirmRescue(remote, ui, started);
        const answeredAfterMs = Date.now() - started;
        if (answer?.restoreRunning) answer = await readLateReport(remote, ui, answer);
        return { bootId, answeredAfterMs, answer };
      }
      // The old system still answers: whatever failed before did not mean it had gone.
      goneAt = undefined;
    } else if (result.code === SSH_FAILED) {
      if (HOST_KEY_CHANGED.test(result.stderr)) {
        throw new HostKeyChangedError(destination, result.stderr.trim());
      }
      // The old system may refuse root logins (the operator came in through sudo): that is not "gone".
      if (!PERMISSION_DENIED.test(result.stderr)) goneAt ??= Date.now();
      lastError = result.stderr.trim().split('\n').pop() ?? '';
    }
    await sleepUntil(tick + POLL_MS);
  }
  const fallbackHint =
    w.fallbackReboot === 'off'
      ? ''
      : ` Unless something reaches it first, the fallback reboot brings the installed system back at about ${clockTime(new Date(started + w.fallbackReboot * 1000))} (plus its boot).`;
  throw new EmergencyError(
    `the rescue system did not answer within ${w.timeoutSeconds} s${lastError ? ` (last: ${lastError})` : ''}`,
    goneAt
      ? `The old system is gone. Real hardware can take minutes to boot: try \`ssh root@HOST\` again in a while, then use the out-of-band console (IPMI/KVM).${fallbackHint}`
      : 'The old system still answers: kexec did not happen. Look at the kernel log on the host (dmesg).',
    ExitCode.NotBack,
  );
}

/**
 * The rescue is verified (new boot id, rescue marker, same host key) but its probe answer carried no confirmation:
 * confirm its fallback reboot and read the restore report, in one more ssh run. A failure here is a warning: the rescue is up, and a confirmation that did not
 * take still leaves the operator the fallback's time to log in (which confirms too).
 */
async function confirmRescue(remote: Remote, ui: Ui, started: number): Promise<RescueAnswer | undefined> {
  const result = await remote.probe('root', CONFIRM_AND_REPORT, PROBE_CONNECT_TIMEOUT_S * 3);
  return readRescueAnswer(ui, result.stdout, result.stderr, started);
}

/**
 * The rescue is up and confirmed, but its restore was still running (when no default gateway answers, the network
 * phase takes ~20 s however many there are, the last chance included): wait for the report in one more ssh run, so
 * that the summary says what the restore did exactly when it matters. Unreadable or still running: the earlier
 * answer, which says so.
 */
async function readLateReport(remote: Remote, ui: Ui, earlier: RescueAnswer): Promise<RescueAnswer> {
  ui.info(`the restore is still running on the rescue system; waiting up to ${LATE_REPORT_WAIT_S} s for its report`);
  // ssh's own limit is twice ConnectTimeout plus 2 s (ssh.ts probe): room for LATE_REPORT_WAIT_S and a connection.
  const result = await remote.probe('root', LATE_REPORT, Math.ceil(LATE_REPORT_WAIT_S / 2) + PROBE_CONNECT_TIMEOUT_S);
  if (result.code !== 0) {
    ui.warn(`could not read the restore report after it finished: ${result.stderr.trim().split('\n').pop() || `ssh exited with ${result.code}`}`);
    // What is known then: it was still running, and where its log is.
    for (const warning of reportWarnings(earlier)) ui.warn(warning);
    return earlier;
  }
  const answer = parseLateReport(result.stdout, earlier);
  for (const warning of reportWarnings(answer)) ui.warn(warning);
  return answer;
}

/** What the rescue said to CONFIRM_AND_REPORT, told to the operator: the fallback's state, the report's warnings. */
function readRescueAnswer(ui: Ui, stdout: string, stderrText: string, started: number): RescueAnswer | undefined {
  let answer: RescueAnswer;
  try {
    answer = parseRescueAnswer(stdout);
  } catch (e) {
    const stderr = stderrText.trim();
    ui.warn(`could not confirm the fallback reboot: ${(e as Error).message}${stderr ? ` (${stderr})` : ''}; log in as root at a terminal now to confirm it`);
    return undefined;
  }
  const text = describeConfirmation(answer.fallback, (Date.now() - started) / 1000);
  if (answer.fallback.fallback_state === 'confirmed' || answer.fallback.fallback_state === 'off') ui.info(text);
  else ui.warn(text);
  // A restore still running is no problem yet: the late read (readLateReport) follows and warns about what it finds.
  if (!answer.restoreRunning) for (const warning of reportWarnings(answer)) ui.warn(warning);
  return answer;
}
