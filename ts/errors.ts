/**
 * Exit codes and typed errors. Every error a user can meet says what happened (`message`) and what to do
 * (`fix`); the single handler in cli.ts prints both, plus the remote stderr when there is one.
 */

/** Process exit codes, stable for scripts that call `emergency`. */
export enum ExitCode {
  Ok = 0,
  /** Unexpected internal failure (a bug): run with --debug and report it. */
  Internal = 1,
  /** Bad command line or local input (image missing, bad option). */
  Usage = 2,
  /** ssh could not connect or authenticate, or the connection dropped. */
  Connection = 3,
  /** Preflight refused the host: rescue is impossible or unsafe; nothing was changed. */
  Refused = 4,
  /** Staging or loading failed before kexec; the host was left as it was. */
  StageFailed = 5,
  /** The operator declined the confirmation. */
  Declined = 6,
  /** kexec was triggered but the rescue system did not come back in time. */
  NotBack = 7,
  /** Something answered at the host's address with a different host key. */
  HostKeyChanged = 8,
  /** Interrupted (Ctrl-C, SIGTERM, SIGHUP) before kexec; the host and this machine's download were cleaned up. */
  Interrupted = 130,
}

/** An error meant for the operator: cause, fix, exit code, and optional remote stderr. */
export class EmergencyError extends Error {
  constructor(
    message: string,
    readonly fix: string,
    readonly exitCode: ExitCode,
    readonly detail?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class UsageError extends EmergencyError {
  constructor(message: string, fix: string) {
    super(message, fix, ExitCode.Usage);
  }
}

export class ConnectionError extends EmergencyError {
  constructor(message: string, fix: string, detail?: string) {
    super(message, fix, ExitCode.Connection, detail);
  }
}

/** Preflight said no; `reasons` lists every failed check, not only the first, each under its check's name. */
export class RefusedError extends EmergencyError {
  constructor(readonly reasons: { check?: string; message: string; fix: string }[]) {
    super(reasons.map((r) => r.message).join('; '), reasons.map((r) => r.fix).join(' '), ExitCode.Refused);
  }
}

export class StageError extends EmergencyError {
  constructor(message: string, fix: string, detail?: string) {
    super(message, fix, ExitCode.StageFailed, detail);
  }
}

export class HostKeyChangedError extends EmergencyError {
  constructor(host: string, detail?: string) {
    super(
      `${host} answered with a different SSH host key than before the rescue`,
      'This is not the rescue system carrying the old host key: it may be another machine at that address or an ' +
        'attack. Do not log in. Check the console (IPMI/KVM) of the server; if you know why the key changed, ' +
        'remove the old entry with `ssh-keygen -R HOST` and connect with plain ssh.',
      ExitCode.HostKeyChanged,
      detail,
    );
  }
}

/** The operator pressed Ctrl-C (at a prompt, say) before kexec; nothing stays changed on the host. */
export class InterruptedError extends EmergencyError {
  constructor(where: string) {
    super(`interrupted ${where}`, 'Nothing was changed on the host; run again when ready.', ExitCode.Interrupted);
  }
}
