#!/usr/bin/env node
/**
 * `emergency [options] DESTINATION`: parse the command line, run the rescue, and turn every failure into
 * cause + fix + exit code (stack traces only with --debug).
 */
import { hideBin } from 'yargs/helpers';
import { commandLine, parseArgs, VERSION } from './args.js';
import { EmergencyError, ExitCode, RefusedError } from './errors.js';
import { CHECKS } from './preflight/checks.js';
import { INTERRUPT_SIGNALS, interruptFinished, interruptStarted, type InterruptSignal } from './interrupt.js';
import type { Image } from './image.js';
import type { Options, Session } from './operation.js';
import { run } from './run.js';
import { SshRemote } from './ssh.js';
import { unstage } from './steps/stage.js';
import { RunRecorder, writeRunRecordSync } from './run-record.js';
import { TerminalUi } from './ui.js';
import { validateInputs } from './validate.js';

/** Prints an error as cause, fix and detail; returns the exit code. */
export function report(error: unknown, debug: boolean): number {
  if (error instanceof RefusedError) {
    process.stderr.write(`emergency: refused, nothing was changed on the host (${error.reasons.length} problem${error.reasons.length > 1 ? 's' : ''}):\n`);
    for (const reason of error.reasons) process.stderr.write(`  - ${reason.check ? `[${reason.check}] ` : ''}${reason.message}\n    fix: ${reason.fix}\n`);
    const ignorable = error.reasons.filter((r) => r.check && CHECKS.find((c) => c.name === r.check)?.ignorable).map((r) => r.check);
    if (ignorable.length) {
      process.stderr.write(
        `  If you know better, --ignore-preflight-errors ${[...new Set(ignorable)].join(',')} turns ${ignorable.length > 1 ? 'these' : 'this'} into a warning.\n`,
      );
    }
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
    const argv = hideBin(process.argv);
    // Help, version and completion print and are done: yargs answers them without a DESTINATION.
    if (argv[0] === 'completion' || argv.some((a) => a === '--help' || a === '-h' || a === '--version' || a === '--get-yargs-completions')) {
      await commandLine(argv).parse();
      return;
    }
    options = await parseArgs(argv);
  } catch (e) {
    process.exitCode = report(e, false);
    return;
  }
  // --json: every step is timed through the recorder's Ui, and the record is written however the run ends.
  const record = options.json ? new RunRecorder(options, VERSION) : undefined;
  const recordFile = options.json;
  const finishRecord = (exitCode: number, error?: unknown) => {
    if (!record || !recordFile) return;
    try {
      writeRunRecordSync(recordFile, record.finish(exitCode, error));
    } catch (e) {
      process.stderr.write(`emergency: the run record was not written to ${recordFile}: ${(e as Error).message}\n`);
    }
  };
  const terminal = new TerminalUi();
  const ui = record ? record.wrap(terminal) : terminal;
  const session: Session = {};
  let remote: SshRemote;
  let image: Image | undefined;
  try {
    // Everything local first: a bad image or option, or no Nix to build one, is a usage error before anything
    // connects (and before the terminal check: a missing file is the operator's first problem).
    image = await validateInputs(options);
    remote = new SshRemote({
      destination: options.destination,
      port: options.port,
      identity: options.identity,
      options: options.sshOptions,
      configFile: options.sshConfig,
    });
    if (!options.yes && !options.dryRun && !ui.interactive()) {
      throw new EmergencyError('no terminal to confirm the kexec on', 'Pass --yes to skip the question, or run from a terminal.', ExitCode.Usage);
    }
  } catch (e) {
    process.exitCode = report(e, options.debug);
    finishRecord(Number(process.exitCode), e);
    return;
  }
  let interrupted = false;
  const onSignal = (signal: InterruptSignal) => {
    if (interrupted) return;
    interrupted = true;
    // After SIGHUP the terminal may be gone: a failed write must not stop the clean-up.
    process.stderr.on('error', () => {});
    const download = session.download;
    const state = {
      kexecTriggered: session.kexecTriggeredAt !== undefined,
      staged: session.stage !== undefined,
      download: download && { url: download.url, received: download.received(), total: download.total, verified: download.verified() },
    };
    process.stderr.write(`\n${interruptStarted(signal, state)}\n`);
    if (state.kexecTriggered) {
      finishRecord(ExitCode.Interrupted, new Error(interruptFinished(signal, state, { stageRemoved: false, downloadRemoved: false })));
      process.exit(ExitCode.Interrupted);
    }
    // exit() rather than exitCode: the interrupted step may hold timers and sockets open forever. The download's
    // remove() stops the transfer before it deletes the file, so nothing is written after.
    void Promise.allSettled([unstage(session, 10000), download?.remove()])
      .then(async ([unstaged, removed]) => {
        await remote.close().catch(() => {});
        const cleanup = { stageRemoved: unstaged.status === 'fulfilled' && unstaged.value, downloadRemoved: removed.status === 'fulfilled' };
        const done = interruptFinished(signal, state, cleanup);
        process.stderr.write(`${done}\n`);
        finishRecord(ExitCode.Interrupted, new Error(done));
      })
      .finally(() => process.exit(ExitCode.Interrupted));
  };
  for (const signal of INTERRUPT_SIGNALS) process.on(signal, () => onSignal(signal));
  try {
    await run(options, remote, ui, session, image, record);
    if (!interrupted) finishRecord(Number(process.exitCode ?? 0));
  } catch (e) {
    if (!interrupted) {
      process.exitCode = report(e, options.debug);
      finishRecord(Number(process.exitCode), e);
    }
  }
}

await main();
