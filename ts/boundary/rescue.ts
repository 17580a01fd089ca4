/**
 * The rescue system's two answers to the CLI after it verified the rescue (docs/image-layout.md): the fallback
 * reboot's state lines (scripts/fallback-reboot.sh `confirm`/`status`) and the restore report
 * (scripts/restore.sh). Each shape is declared once here and parsed once.
 */
import { z } from 'zod';
import { parseScriptOutput, SECTION_MARKER, type ScriptOutput } from '../sections.js';
import { parseBoundary, describeIssues } from './schema.js';

/** Where both rescue images keep the shared script and the report (docs/image-layout.md). */
export const FALLBACK_SCRIPT = '/etc/emergency/fallback-reboot.sh';
export const RESTORE_REPORT = '/var/log/emergency-restore.report';

const seconds = z.coerce.number().int().nonnegative();
/** scripts/fallback-reboot.sh's state lines (`confirm` and `status`). */
export const fallbackStateSchema = z.discriminatedUnion('fallback_state', [
  z.strictObject({ fallback_state: z.literal('off') }),
  z.strictObject({ fallback_state: z.literal('not-armed') }),
  z.strictObject({
    fallback_state: z.literal('armed'),
    fallback_seconds: seconds,
    fallback_remaining_s: seconds,
  }),
  z.strictObject({
    fallback_state: z.literal('confirmed'),
    fallback_seconds: seconds,
    fallback_confirmed_by: z.string().min(1),
    fallback_confirmed_after_s: seconds,
  }),
  z.strictObject({ fallback_state: z.literal('rebooting'), fallback_seconds: seconds }),
]);
export type FallbackState = z.infer<typeof fallbackStateSchema>;

const reportStatus = z.enum(['ok', 'failed', 'skipped']);
/** One line of the restore report, by kind (docs/image-layout.md, "The restore report"). */
const reportLine = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('format'), name: z.literal('1'), status: z.literal('-'), message: z.string() }),
  z.strictObject({ kind: z.literal('step'), name: z.string().regex(/^[a-z0-9-]+$/), status: reportStatus, message: z.string() }),
  z.strictObject({ kind: z.literal('network'), name: z.literal('-'), status: z.enum(['failed', 'skipped']), message: z.string() }),
  z.strictObject({ kind: z.literal('done'), name: z.literal('-'), status: reportStatus, message: z.string() }),
]);

/** scripts/restore.sh's report: format line first, `done` last, steps and network items between. */
export const restoreReportSchema = z
  .array(reportLine)
  .min(2)
  .refine((lines) => lines[0].kind === 'format', { message: 'the first line must be the format line' })
  .refine((lines) => lines.at(-1)!.kind === 'done', { message: 'the last line must be `done`: restore.sh did not finish' })
  .transform((lines) => ({
    steps: lines.flatMap((l) => (l.kind === 'step' ? [{ name: l.name, status: l.status, message: l.message }] : [])),
    network: lines.flatMap((l) => (l.kind === 'network' ? [{ status: l.status, message: l.message }] : [])),
    result: lines.at(-1)!.status,
  }));
export type RestoreReport = z.infer<typeof restoreReportSchema>;

/** restore.sh's report while it is being written: present from before sshd starts until the report is (docs/image-layout.md). */
const RESTORE_REPORT_TMP = `${RESTORE_REPORT}.tmp`;
/**
 * How long the rescue side waits for the report while the network restore still runs (sshd answers before it
 * ends). The probe's ssh run is killed after 2 × its 5 s ConnectTimeout + 2 s (ssh.ts `probe`), and connecting may
 * take up to 5 of those 12 s: 6 s leaves a second to spare. A network phase with a gateway that answers takes
 * about 0.4 s under TCG; one whose gateways never answer ~20 s (however many: they are probed at once), which no
 * bound under 12 s could cover.
 */
export const REPORT_WAIT_S = 6;
/** Between two looks for the report: each is one `sleep` process on the rescue (busybox's and coreutils' take 0.2). */
const REPORT_POLL_S = 0.2;

/**
 * sh that waits up to `seconds` while restore.sh's network phase runs (its .tmp, no report), then prints the report
 * as a `restore-report` section, or an empty `restore-running` section when it still runs, or nothing (no restore).
 */
function reportAfterWaiting(seconds: number): string {
  return (
    `i=0; while [ ! -f ${RESTORE_REPORT} ] && [ -e ${RESTORE_REPORT_TMP} ] && [ $i -lt ${Math.round(seconds / REPORT_POLL_S)} ]; ` +
    `do sleep ${REPORT_POLL_S}; i=$((i + 1)); done; ` +
    `if [ -f ${RESTORE_REPORT} ]; then echo '${SECTION_MARKER} restore-report'; cat ${RESTORE_REPORT}; ` +
    `elif [ -e ${RESTORE_REPORT_TMP} ]; then echo '${SECTION_MARKER} restore-running'; fi`
  );
}

/**
 * The one ssh command after the verified probe: confirm the fallback first (the wait for the report must never
 * delay it: the fallback deadline keeps running), then the restore report as a section, present only when the
 * file exists (an empty report and no report are told apart, as the banner does). While restore.sh's network phase
 * still runs (its .tmp file, no report yet) it waits up to REPORT_WAIT_S for the report; still running after that,
 * it says so with an empty `restore-running` section.
 */
export const CONFIRM_AND_REPORT = `if [ -f ${FALLBACK_SCRIPT} ]; then sh ${FALLBACK_SCRIPT} confirm cli; else echo fallback_state=not-armed; fi; ${reportAfterWaiting(REPORT_WAIT_S)}`;

/**
 * How long the second, later read of the report (LATE_REPORT) may wait: when no default gateway answers, the network
 * phase takes ~20 s under TCG (8 rounds of ~2 s: one ping of every gateway at once, up to 1 s, and 1 s of sleep; 2 s
 * for carrier; the last-chance DHCP's start), and exactly then the report is what the operator needs to read. The
 * gateways are probed at once, so their number hardly adds to it: measured in the rescue, 20.0 s with one dead
 * gateway, 21.8 s with four, 25.8 s with eight (in turn: 48.1 s with four, 81.4 s with eight). Beside sshd's start
 * and the CLI's logins (ts/test/e2e/dead-gateway.test.ts: a dead IPv4 and a dead IPv6 gateway, load 0.4–3) the
 * report came 21–28 s after sshd started, well inside this wait.
 */
export const LATE_REPORT_WAIT_S = 40;

/**
 * The report once the network phase is over, for a rescue whose restore was still running when CONFIRM_AND_REPORT
 * gave up waiting: the same section, after waiting up to LATE_REPORT_WAIT_S; no confirmation (that one was done).
 */
export const LATE_REPORT = reportAfterWaiting(LATE_REPORT_WAIT_S);

/** What the rescue said to CONFIRM_AND_REPORT: the fallback's state and the report (undefined: none found). */
export interface RescueAnswer {
  fallback: FallbackState;
  report?: RestoreReport;
  /** Why the report could not be read, when it could not. */
  reportProblem?: string;
  /** The report file's text as it is (the login banner's input too); undefined when there is no file. */
  reportText?: string;
  /** The restore's network phase was still running after REPORT_WAIT_S: no report yet. */
  restoreRunning?: boolean;
}

/** Parses CONFIRM_AND_REPORT's output; a broken fallback state throws (naming the field), a broken report is noted. */
export function parseRescueAnswer(output: string): RescueAnswer {
  const { facts, sections } = parseScriptOutput(output);
  const fallback = parseBoundary('fallback-reboot.sh', fallbackStateSchema, facts);
  return { fallback, ...parseReportSections(sections, REPORT_WAIT_S) };
}

/**
 * Parses LATE_REPORT's output into `earlier` (the answer whose restore was still running): its fallback state
 * stays, the report part is the new one.
 */
export function parseLateReport(output: string, earlier: RescueAnswer): RescueAnswer {
  return { fallback: earlier.fallback, ...parseReportSections(parseScriptOutput(output).sections, REPORT_WAIT_S + LATE_REPORT_WAIT_S) };
}

/** The report part of an answer, from its sections; `waitedS`: how long the rescue side waited, for the message. */
function parseReportSections(sections: ScriptOutput['sections'], waitedS: number): Omit<RescueAnswer, 'fallback'> {
  const reportText = sections.find((s) => s.name === 'restore-report')?.body;
  if (reportText === undefined && sections.some((s) => s.name === 'restore-running')) {
    return { reportProblem: `the restore was still running after ${waitedS} s: no report at ${RESTORE_REPORT} yet`, restoreRunning: true };
  }
  const body = reportText ?? '';
  if (!body.trim()) return { reportProblem: `no report at ${RESTORE_REPORT}`, reportText };
  const lines = body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [kind, name, status, ...message] = l.split('\t');
      return { kind, name, status, message: message.join('\t') };
    });
  const report = restoreReportSchema.safeParse(lines);
  if (!report.success) {
    return {
      reportProblem: `the report at ${RESTORE_REPORT} is not understood: ${describeIssues(report.error.issues, 'line').join('; ')}`,
      reportText,
    };
  }
  return { report: report.data, reportText };
}
