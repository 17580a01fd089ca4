/**
 * What the CLI says when a signal stops it (Ctrl-C's SIGINT, SIGTERM from a supervisor, SIGHUP when the
 * operator's terminal goes), by what there is to undo at that moment. Pure: cli.ts's handler does the undoing.
 */

/** The signals that end a run the same way: clean up what the run holds, then exit 130 (ExitCode.Interrupted). */
export const INTERRUPT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type InterruptSignal = (typeof INTERRUPT_SIGNALS)[number];

/** What the run holds when the signal arrives. */
export interface InterruptState {
  kexecTriggered: boolean;
  /** A staged image in a tmpfs on the host. */
  staged: boolean;
  /** This machine's download of a URL image: partial until verified. */
  download?: { url: string; received: number; total: number; verified: boolean };
}

/** How the clean-up went: whether the host's keeper confirmed the tmpfs gone, whether the download was deleted. */
export interface InterruptCleanup {
  stageRemoved: boolean;
  downloadRemoved: boolean;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
// SIGINT keeps the words an operator who pressed Ctrl-C expects; another signal is named, it came from elsewhere.
const interruptedBy = (signal: InterruptSignal) => (signal === 'SIGINT' ? 'interrupted' : `interrupted by ${signal}`);

/** The line printed as the signal arrives: what is being removed (or that nothing has to be). */
export function interruptStarted(signal: InterruptSignal, state: InterruptState): string {
  const interrupted = interruptedBy(signal);
  if (state.kexecTriggered) return `${interrupted}: kexec was already triggered, the host is booting the rescue system`;
  const removing: string[] = [];
  if (state.staged) removing.push('the staged image from the host');
  const download = state.download;
  if (download && !download.verified) {
    removing.push(`the partial download (${mb(download.received)} of ${mb(download.total)} MB of ${download.url}; never used)`);
  } else if (download) removing.push('the downloaded image from this machine');
  if (!removing.length) return `${interrupted} before anything was staged: nothing was changed on the host`;
  return `${interrupted}: removing ${removing.join(' and ')}…`;
}

/** The line printed once the clean-up is done, and the run record's error: what was removed, what may not be. */
export function interruptFinished(signal: InterruptSignal, state: InterruptState, cleanup: InterruptCleanup): string {
  const interrupted = interruptedBy(signal);
  if (state.kexecTriggered) return `${interrupted} after the kexec was triggered`;
  const done: string[] = [];
  if (state.staged) {
    done.push(
      cleanup.stageRemoved
        ? 'the staged image was removed from the host'
        : "the host's keeper did not confirm in time that the staged image is gone (it removes it when the ssh session ends)",
    );
  }
  if (state.download) {
    const what = state.download.verified ? 'the downloaded image' : 'the partial download';
    done.push(cleanup.downloadRemoved ? `${what} was removed` : `${what} could not be removed: delete it yourself`);
  }
  if (!state.staged) done.push('nothing was changed on the host');
  return `${interrupted} before the kexec: ${done.join('; ')}`;
}
