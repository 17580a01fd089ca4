/**
 * The fallback reboot and the restore report, seen from the CLI: parsing `--fallback-reboot` and the words the
 * confirmation screen and the wait step say. The rescue's own outputs are parsed in ts/boundary/rescue.ts.
 * Pure: the wait step runs the script and hands the parsed answer here.
 */
import type { FallbackState, RescueAnswer } from './boundary/rescue.js';

/** Default of --fallback-reboot. */
export const DEFAULT_FALLBACK = '15m';
/** Shorter than this and the fallback could fire before the rescue system has even booted and been confirmed. */
export const MIN_FALLBACK_S = 30;

/** Where the rescue images keep the restore log (docs/image-layout.md). */
export const RESTORE_LOG = '/var/log/emergency-restore.log';

/**
 * `--fallback-reboot` as seconds, or 'off'. Accepts `90s`, `10m`, `1h`, combinations such as `1h30m`, and `off`;
 * anything else throws with the forms that work.
 */
export function parseFallbackDuration(text: string): number | 'off' {
  const value = text.trim().toLowerCase();
  if (value === 'off') return 'off';
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value);
  if (!value || !match) {
    throw new Error(`--fallback-reboot ${text}: not a duration. Use a number with a unit, e.g. 90s, 10m, 1h (or 1h30m), or off`);
  }
  const seconds = Number(match[1] ?? 0) * 3600 + Number(match[2] ?? 0) * 60 + Number(match[3] ?? 0);
  if (seconds < MIN_FALLBACK_S) {
    throw new Error(`--fallback-reboot ${text}: too short; the rescue system needs time to boot and be confirmed. Use at least ${MIN_FALLBACK_S}s, or off`);
  }
  return seconds;
}

/** `15 min`, `90 s`, `1 h 30 min`: a duration as the operator reads it. */
export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h ? `${h} h` : '', m ? `${m} min` : '', s ? `${s} s` : ''].filter(Boolean).join(' ') || '0 s';
}

/** HH:MM in the operator's local time zone. */
export function clockTime(at: Date): string {
  return `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
}

/**
 * What the confirmation screen and --dry-run say about the fallback. `now` is when the kexec would start; the
 * rescue system counts from its own boot, a few seconds to minutes later, hence "about".
 */
export function describeFallback(fallback: number | 'off', timeoutS: number, now: Date): string {
  if (fallback === 'off') {
    return 'Fallback reboot: off (--fallback-reboot off). If this host cannot be reached after the kexec, only its console can bring it back.';
  }
  const at = new Date(now.getTime() + fallback * 1000);
  const lines = [
    `Fallback reboot: if this host cannot be reached, it reboots into its installed system at about ${clockTime(at)} ` +
      `(${formatDuration(fallback)} after the rescue system starts), unless emergency or a root login confirms it first.`,
  ];
  if (timeoutS < fallback) {
    lines.push(`  emergency waits ${formatDuration(timeoutS)} (--timeout) and gives up before the fallback reboot would happen.`);
  } else {
    lines.push(`  The fallback reboot comes before emergency gives up waiting (--timeout ${timeoutS}).`);
  }
  return lines.join('\n');
}

/** The warnings the wait step prints for a report: every failed step and network item, with the log's path. */
export function reportWarnings(answer: RescueAnswer): string[] {
  if (!answer.report) return [`${answer.reportProblem}; see ${RESTORE_LOG} on the rescue system`];
  const warnings: string[] = [];
  for (const step of answer.report.steps) if (step.status === 'failed') warnings.push(`restore: ${step.name} failed: ${step.message}`);
  for (const item of answer.report.network) warnings.push(`restore: network ${item.status}: ${item.message}`);
  const lastChance = answer.report.steps.find((s) => s.name === 'last-chance-dhcp' && s.status === 'ok');
  if (lastChance) warnings.push(`restore: no default gateway answered, so ${lastChance.message.replace(/^last chance: /, '')}`);
  if (warnings.length) warnings.push(`the restore log is ${RESTORE_LOG} on the rescue system`);
  return warnings;
}

/** What the wait step says about the fallback once it confirmed (or could not). */
export function describeConfirmation(state: FallbackState, elapsedS: number): string {
  switch (state.fallback_state) {
    case 'confirmed':
      return state.fallback_confirmed_by === 'cli'
        ? `fallback reboot confirmed ${elapsedS.toFixed(1)} s after kexec (${state.fallback_confirmed_after_s} s into its ${formatDuration(state.fallback_seconds)}): the rescue system stays up`
        : `fallback reboot was already confirmed by ${state.fallback_confirmed_by} (${state.fallback_confirmed_after_s} s after it was armed): the rescue system stays up`;
    case 'off':
      return 'fallback reboot is off in this rescue system';
    case 'not-armed':
      return 'this rescue image has no fallback reboot armed (an image without scripts/fallback-reboot.sh?)';
    case 'armed':
      return `fallback reboot still armed (${state.fallback_remaining_s} s left): the confirmation did not take`;
    case 'rebooting':
      return 'the fallback reboot had already begun: the host is rebooting into its installed system';
  }
}

/**
 * Why the host came back with a new boot id but not as the rescue system, for the exit-7 message: the fallback if
 * the time fits (its duration plus the rescue's boot), else another reboot (watchdog, panic, kexec that failed).
 */
export function explainUnexpectedBoot(elapsedS: number, fallback: number | 'off'): { message: string; fix: string } {
  const after = `${formatDuration(Math.round(elapsedS))} after the kexec`;
  const fits = fallback !== 'off' && elapsedS >= fallback;
  const message = fits
    ? `the host came back ${after} running its installed system, not the rescue: the fallback reboot (${formatDuration(fallback)}) brought it back, because the rescue system was not confirmed in time`
    : `the host came back ${after} running its installed system, not the rescue: it rebooted for another reason (a watchdog reset, a panic in the rescue, or a kexec that failed)` +
      (fallback === 'off' ? '' : `, too early for the fallback reboot (${formatDuration(fallback)})`);
  const fix = fits
    ? "The rescue system was probably up but unreachable (its network did not come back: a missing NIC driver, a changed gateway). Log in as usual; read the rescue's console output if you have it (IPMI/KVM), then run emergency again, or with --fallback-reboot off if you can reach its console."
    : 'Log in as usual and read the kernel log of the previous boot (journalctl -k -b -1, or the console); then run emergency again.';
  return { message, fix };
}
