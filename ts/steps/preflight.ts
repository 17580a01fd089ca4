/**
 * Step 2: read-only facts, the network capture and the keys, in one round trip (preflight.sh and
 * capture-network.sh in one `sh -c`), then the verdict. Becomes root through sudo/doas when needed,
 * asking for the sudo password once, on the terminal.
 */
import { ConnectionError, EmergencyError, ExitCode, RefusedError } from '../errors.js';
import { buildImageWithNix, loadImage } from '../image.js';
import { selectAuthorizedKeys } from '../keys/authorized-keys.js';
import type { HostKey, Operation } from '../operation.js';
import { judgeHost } from '../preflight/verdict.js';
import type { RunResult } from '../remote.js';
import { script } from '../scripts.js';
import { parseScriptOutput } from '../sections.js';

const NEEDS_PASSWORD = /a password is required|a terminal is required/i;
const NO_SUDO = /sudo: (command )?not found|is not in the sudoers file|may not run sudo|not allowed to execute/i;

async function runFacts(op: Operation): Promise<RunResult> {
  op.roundTrips++;
  return op.remote.run([script('preflight.sh', op.remote.loginUser), script('capture-network.sh')]);
}

/** Runs the facts script as root, finding out how: root, sudo -n, sudo with a password, doas -n. */
async function factsAsRoot(op: Operation): Promise<RunResult> {
  let result = await runFacts(op);
  if (op.remote.become === 'root' || result.stdout.includes('preflight_format=')) return result;
  if (NEEDS_PASSWORD.test(result.stderr)) {
    if (!op.ui.interactive()) {
      // sudo says the same for a user it would refuse anyway: it asks for the password before it looks the user up.
      throw new EmergencyError(
        `${op.remote.loginUser} cannot become root on ${op.options.destination} without a password (sudo -n: "a password is required"; ` +
          'the user may also have no sudo rights at all), and there is no terminal to ask for it',
        'Run emergency from a terminal to type the sudo password, log in as root, or allow this user passwordless sudo. Nothing was changed on the host.',
        ExitCode.Refused,
        result.stderr,
      );
    }
    op.remote.become = 'sudo-password';
    op.remote.setPassword(await op.ui.password(`[sudo] password for ${op.remote.loginUser}@${op.options.destination}: `));
    result = await runFacts(op);
    if (result.stdout.includes('preflight_format=')) return result;
    if (NO_SUDO.test(result.stderr)) throw notRoot(op, result);
    throw new EmergencyError(
      `sudo on ${op.options.destination} refused the password of ${op.remote.loginUser}`,
      'Run again and type the login password of that user; if it has none (key-only) or no sudo rights, log in as root. Nothing was changed on the host.',
      ExitCode.Refused,
      result.stderr,
    );
  }
  if (NO_SUDO.test(result.stderr)) {
    op.remote.become = 'doas';
    result = await runFacts(op);
    if (result.stdout.includes('preflight_format=')) return result;
  }
  throw notRoot(op, result);
}

function notRoot(op: Operation, result: RunResult): EmergencyError {
  return new EmergencyError(
    `${op.remote.loginUser} cannot become root on ${op.options.destination}: no sudo or doas rights`,
    'Log in as root, or as a user allowed to run sudo (a password is fine) or doas with nopass.',
    ExitCode.Refused,
    result.stderr,
  );
}

export async function preflight(op: Operation): Promise<void> {
  const result = await factsAsRoot(op);
  const output = parseScriptOutput(result.stdout);
  if (!output.sections.some((s) => s.name === 'preflight-end')) {
    throw new ConnectionError('the preflight output from the host was cut short', 'Run again; if it repeats, run with --debug and report the output.', result.stderr);
  }
  op.state.preflight = output;
  op.state.facts = output.facts;
  const facts = output.facts;
  op.ui.info(`${facts.hostname}: ${facts.arch}, Linux ${facts.kernel}, ${Math.round(Number(facts.mem_total_kb) / 1024)} MiB RAM`);

  if (!op.state.image) {
    op.ui.info(`building the image for ${facts.arch} with Nix (${op.options.flake})`);
    op.state.image = await loadImage(await buildImageWithNix(facts.arch, op.options.flake));
  }

  const hostKeys: HostKey[] = output.sections
    .filter((s) => s.name === 'host-key')
    .map((s) => ({ path: s.args[0], present: s.args[1] === 'present', pub: s.body.trim() }));
  op.state.hostKeys = hostKeys;
  op.state.keys = selectAuthorizedKeys(
    output.sections.filter((s) => s.name === 'authorized-keys').map((s) => ({ user: s.args[0], file: s.args.slice(1).join(' '), content: s.body })),
  );
  for (const s of output.sections.filter((s) => s.name === 'unreadable')) op.ui.warn(`cannot read ${s.args.slice(1).join(' ')} of ${s.args[0]}`);

  const verdict = judgeHost(facts, op.state.image, hostKeys, op.state.keys.keys.length);
  op.state.verdict = verdict;
  for (const w of verdict.warnings) op.ui.warn(`${w.message}. ${w.fix}`);
  if (verdict.refusals.length) throw new RefusedError(verdict.refusals);
}
