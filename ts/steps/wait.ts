/**
 * Step 7: notice the old system go and the rescue system answer — a new boot id and `emergency.rescue=1`
 * on its kernel command line — over strict host key checking with the same known_hosts entry. Probes overlap, so
 * the first one after the rescue system's sshd starts listening gets in.
 */
import { EmergencyError, ExitCode, HostKeyChangedError } from '../errors.js';
import type { Operation } from '../operation.js';
import type { RunResult } from '../remote.js';
import { SSH_FAILED } from '../ssh.js';

const PROBE = 'cat /proc/sys/kernel/random/boot_id; cat /proc/cmdline';
/** A new probe starts this often, without waiting for the last one: while the host reboots, a probe can hang for its whole connect timeout. */
const POLL_MS = 250;
/** Probes in flight at most (each is one ssh client). */
const MAX_PROBES = 8;
const CONNECT_TIMEOUT_S = 3;

export async function waitForRescue(op: Operation): Promise<void> {
  const oldBootId = op.state.facts!.boot_id;
  const started = op.state.kexecTriggeredAt ?? Date.now();
  const deadline = started + op.options.timeout * 1000;
  let goneAt: number | undefined;
  let lastError = '';
  let outcome: { error?: Error; bootId?: string } | undefined;
  const abort = new AbortController();

  /** Judges one probe's result; sets `outcome` when the wait is over, either way. */
  const judge = (result: RunResult) => {
    if (outcome) return;
    if (result.code === 0) {
      const [bootId, cmdline = ''] = result.stdout.split('\n');
      if (bootId.trim() === oldBootId) return;
      if (!cmdline.split(/\s+/).includes('emergency.rescue=1')) {
        outcome = {
          error: new EmergencyError(
            `${op.options.destination} came back with a new boot, but not into the rescue system (cmdline: ${cmdline.trim()})`,
            'kexec failed and the machine rebooted normally, or a watchdog reset it. Its host key is the old one; log in as usual and look at the kernel log.',
            ExitCode.NotBack,
          ),
        };
        return;
      }
      outcome = { bootId: bootId.trim() };
    } else if (result.code === SSH_FAILED) {
      if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(result.stderr)) {
        outcome = { error: new HostKeyChangedError(op.options.destination, result.stderr.trim()) };
        return;
      }
      // The old system may refuse root logins (the operator came in through sudo): that is not "gone".
      if (!/Permission denied/i.test(result.stderr)) goneAt ??= Date.now();
      lastError = result.stderr.trim().split('\n').pop() ?? '';
    }
  };

  const inFlight = new Set<Promise<void>>();
  let lastStart = 0;
  try {
    while (!outcome && Date.now() < deadline) {
      if (inFlight.size < MAX_PROBES && Date.now() - lastStart >= POLL_MS) {
        lastStart = Date.now();
        const probe: Promise<void> = op.remote
          .probe('root', PROBE, CONNECT_TIMEOUT_S, abort.signal)
          .then(judge, () => {})
          .finally(() => inFlight.delete(probe));
        inFlight.add(probe);
      }
      // Wake up for the next start, or as soon as any probe has an answer.
      const nextStart = inFlight.size < MAX_PROBES ? Math.max(0, POLL_MS - (Date.now() - lastStart)) : POLL_MS;
      await Promise.race([new Promise((r) => setTimeout(r, nextStart)), ...inFlight]);
    }
  } finally {
    // Probes still hanging on a rebooting host are not needed any more (and would keep the process alive).
    abort.abort();
  }
  if (outcome?.error) throw outcome.error;
  if (outcome?.bootId) {
    op.state.rescueBootId = outcome.bootId;
    op.ui.info(
      `rescue system answers ${((Date.now() - started) / 1000).toFixed(1)} s after kexec` +
        (goneAt ? ` (old system gone after ${((goneAt - started) / 1000).toFixed(1)} s)` : ''),
    );
    return;
  }
  throw new EmergencyError(
    `the rescue system did not answer within ${op.options.timeout} s${lastError ? ` (last: ${lastError})` : ''}`,
    goneAt
      ? 'The old system is gone. Real hardware can take minutes to boot: try `ssh root@HOST` again in a while, then use the out-of-band console (IPMI/KVM).'
      : 'The old system still answers: kexec did not happen. Look at the kernel log on the host (dmesg).',
    ExitCode.NotBack,
  );
}
