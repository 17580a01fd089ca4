#!/usr/bin/env node
/**
 * `emergency [options] DESTINATION`: parse the command line, run the rescue, and turn every failure into
 * cause + fix + exit code (stack traces only with --debug).
 */
import { hideBin } from 'yargs/helpers';
import { parseArgs } from './args.js';
import { EmergencyError, ExitCode, RefusedError } from './errors.js';
import type { Operation, Options } from './operation.js';
import { run } from './run.js';
import { SshRemote } from './ssh.js';
import { unstage } from './steps/stage.js';
import { TerminalUi } from './ui.js';

/** Prints an error as cause, fix and detail; returns the exit code. */
export function report(error: unknown, debug: boolean): number {
  if (error instanceof RefusedError) {
    process.stderr.write(`emergency: refused, nothing was changed on the host (${error.reasons.length} problem${error.reasons.length > 1 ? 's' : ''}):\n`);
    for (const reason of error.reasons) process.stderr.write(`  - ${reason.message}\n    fix: ${reason.fix}\n`);
    if (debug) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  if (error instanceof EmergencyError) {
    process.stderr.write(`emergency: ${error.message}\n  fix: ${error.fix}\n`);
    if (error.detail) process.stderr.write(`  the host said:\n${error.detail.replace(/^/gm, '    ')}\n`);
    if (debug) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  process.stderr.write(`emergency: internal error: ${(error as Error)?.message ?? error}\n  fix: run again with --debug and report the output.\n`);
  if (debug) process.stderr.write(`${(error as Error)?.stack}\n`);
  return ExitCode.Internal;
}

async function main(): Promise<void> {
  let options: Options;
  try {
    if (process.argv.slice(2).some((a) => a === '--help' || a === '-h' || a === '--version')) {
      await parseArgs(process.argv.slice(2));
      return;
    }
    options = await parseArgs(hideBin(process.argv));
  } catch (e) {
    process.exitCode = report(e, false);
    return;
  }
  const ui = new TerminalUi();
  let op: Operation;
  try {
    op = {
      options,
      ui,
      remote: new SshRemote({ destination: options.destination, port: options.port, identity: options.identity, options: options.sshOptions, configFile: options.sshConfig }),
      state: {},
      roundTrips: 0,
    };
    if (!options.yes && !options.dryRun && !ui.interactive()) {
      throw new EmergencyError('no terminal to confirm the kexec on', 'Pass --yes to skip the question, or run from a terminal.', ExitCode.Usage);
    }
  } catch (e) {
    process.exitCode = report(e, options.debug);
    return;
  }
  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) return;
    interrupted = true;
    if (op.state.kexecTriggeredAt) {
      process.stderr.write('\ninterrupted: kexec was already triggered, the host is booting the rescue system\n');
      process.exit(ExitCode.Interrupted);
    }
    process.stderr.write('\ninterrupted: removing the staged image from the host…\n');
    // exit() rather than exitCode: the interrupted step may hold timers and sockets open forever.
    void Promise.allSettled([unstage(op, 10000)])
      .then(() => op.remote.close())
      .finally(() => process.exit(ExitCode.Interrupted));
  });
  try {
    await run(op);
  } catch (e) {
    if (!interrupted) process.exitCode = report(e, options.debug);
  }
}

await main();
