/**
 * Step 2: read-only facts, the network capture and the keys, in one round trip (preflight.sh and
 * capture-network.sh in one `sh -c`). Becomes root through sudo/doas when needed, asking for the sudo password
 * once, on the terminal. Returns what the host said; judging it is the checks step's job.
 */
import { parsePreflight, type PreflightReport } from '../boundary/preflight.js';
import { URL_PROBE_SECTION } from '../boundary/url-probe.js';
import { EmergencyError, ExitCode } from '../errors.js';
import { CAPTURE_SECTIONS } from '../network/capture.js';
import type { Remote, RunResult } from '../remote.js';
import { script } from '../scripts.js';
import { parseScriptOutput, type ScriptOutput } from '../sections.js';
import type { Ui } from '../ui.js';

const NEEDS_PASSWORD = /a password is required|a terminal is required/i;
const NO_SUDO = /sudo: (command )?not found|is not in the sudoers file|may not run sudo|not allowed to execute/i;
/** preflight.sh's first line: its presence means the script ran (as whoever we became). */
const RAN = 'preflight_format=';

/** What the host told preflight: its report, and the whole output (the network capture rides along). */
export interface PreflightOutcome {
  report: PreflightReport;
  output: ScriptOutput;
}

/**
 * With an image URL, probe-url.sh asks whether the host can fetch it itself, in the same round trip. `firmware`:
 * MODULE:FILE names the image's network drivers declare (firmwareCandidates), looked up on the host.
 */
function runFacts(remote: Remote, imageUrl?: string, firmware: readonly string[] = []): Promise<RunResult> {
  return remote.run([
    script('preflight.sh', remote.loginUser, ...firmware),
    script('capture-network.sh'),
    ...(imageUrl ? [script('probe-url.sh', imageUrl)] : []),
  ]);
}

/** Runs the facts script as root, finding out how: root, sudo -n, sudo with a password, doas -n. */
async function factsAsRoot(remote: Remote, ui: Ui, imageUrl?: string, firmware: readonly string[] = []): Promise<RunResult> {
  const host = remote.destination;
  const ask = () => runFacts(remote, imageUrl, firmware);
  let result = await ask();
  if (remote.become === 'root' || result.stdout.includes(RAN)) return result;
  if (NEEDS_PASSWORD.test(result.stderr)) {
    if (!ui.interactive()) {
      // sudo says the same for a user it would refuse anyway: it asks for the password before it looks the user up.
      throw new EmergencyError(
        `${remote.loginUser} cannot become root on ${host} without a password (sudo -n: "a password is required"; ` +
          'the user may also have no sudo rights at all), and there is no terminal to ask for it',
        'Run emergency from a terminal to type the sudo password, log in as root, or allow this user passwordless sudo. Nothing was changed on the host.',
        ExitCode.Refused,
        result.stderr,
      );
    }
    remote.become = 'sudo-password';
    remote.setPassword(await ui.password(`[sudo] password for ${remote.loginUser}@${host}: `));
    result = await ask();
    if (result.stdout.includes(RAN)) return result;
    if (NO_SUDO.test(result.stderr)) throw notRoot(remote, result);
    throw new EmergencyError(
      `sudo on ${host} refused the password of ${remote.loginUser}`,
      'Run again and type the login password of that user; if it has none (key-only) or no sudo rights, log in as root. Nothing was changed on the host.',
      ExitCode.Refused,
      result.stderr,
    );
  }
  if (NO_SUDO.test(result.stderr)) {
    remote.become = 'doas';
    result = await ask();
    if (result.stdout.includes(RAN)) return result;
  }
  throw notRoot(remote, result);
}

function notRoot(remote: Remote, result: RunResult): EmergencyError {
  return new EmergencyError(
    `${remote.loginUser} cannot become root on ${remote.destination}: no sudo or doas rights`,
    'Log in as root, or as a user allowed to run sudo (a password is fine) or doas with nopass.',
    ExitCode.Refused,
    result.stderr,
  );
}

export async function preflight(remote: Remote, ui: Ui, imageUrl?: string, firmware: readonly string[] = []): Promise<PreflightOutcome> {
  const result = await factsAsRoot(remote, ui, imageUrl, firmware);
  const output = parseScriptOutput(result.stdout);
  const report = parsePreflight(output, [...CAPTURE_SECTIONS, URL_PROBE_SECTION]);
  const { facts } = report;
  ui.info(`${facts.hostname}: ${facts.arch}, Linux ${facts.kernel}, ${Math.round(facts.mem_total_kb / 1024)} MiB RAM`);
  for (const u of report.unreadable) ui.warn(`cannot read ${u.file} of ${u.user}`);
  return { report, output };
}
