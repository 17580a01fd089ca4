/**
 * Step 7: notice the old system go and the rescue system answer — a new boot id and `emergency.rescue=1`
 * on its kernel command line — over strict host key checking with the same known_hosts entry.
 */
import { EmergencyError, ExitCode, HostKeyChangedError } from '../errors.js';
import type { Operation } from '../operation.js';
import { SSH_FAILED } from '../ssh.js';

const PROBE = 'cat /proc/sys/kernel/random/boot_id; cat /proc/cmdline';
const POLL_MS = 500;

export async function waitForRescue(op: Operation): Promise<void> {
  const oldBootId = op.state.facts!.boot_id;
  const started = op.state.kexecTriggeredAt ?? Date.now();
  const deadline = started + op.options.timeout * 1000;
  let goneAt: number | undefined;
  let lastError = '';
  while (Date.now() < deadline) {
    const tick = Date.now();
    const result = await op.remote.probe('root', PROBE, 3);
    if (result.code === 0) {
      const [bootId, cmdline = ''] = result.stdout.split('\n');
      if (bootId.trim() !== oldBootId) {
        if (!cmdline.split(/\s+/).includes('emergency.rescue=1')) {
          throw new EmergencyError(
            `${op.options.destination} came back with a new boot, but not into the rescue system (cmdline: ${cmdline.trim()})`,
            'kexec failed and the machine rebooted normally, or a watchdog reset it. Its host key is the old one; log in as usual and look at the kernel log.',
            ExitCode.NotBack,
          );
        }
        op.state.rescueBootId = bootId.trim();
        op.ui.info(
          `rescue system answers ${((Date.now() - started) / 1000).toFixed(1)} s after kexec` +
            (goneAt ? ` (old system gone after ${((goneAt - started) / 1000).toFixed(1)} s)` : ''),
        );
        return;
      }
    } else if (result.code === SSH_FAILED) {
      if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(result.stderr)) {
        throw new HostKeyChangedError(op.options.destination, result.stderr.trim());
      }
      // The old system may refuse root logins (the operator came in through sudo): that is not "gone".
      if (!/Permission denied/i.test(result.stderr)) goneAt ??= Date.now();
      lastError = result.stderr.trim().split('\n').pop() ?? '';
    }
    await new Promise((r) => setTimeout(r, Math.max(0, POLL_MS - (Date.now() - tick))));
  }
  throw new EmergencyError(
    `the rescue system did not answer within ${op.options.timeout} s${lastError ? ` (last: ${lastError})` : ''}`,
    goneAt
      ? 'The old system is gone. Real hardware can take minutes to boot: try `ssh root@HOST` again in a while, then use the out-of-band console (IPMI/KVM).'
      : 'The old system still answers: kexec did not happen. Look at the kernel log on the host (dmesg).',
    ExitCode.NotBack,
  );
}
