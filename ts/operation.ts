/**
 * The command line, parsed, and the one piece of mutable state of a run: what must be undone if it stops
 * before the kexec (the staged image), and whether the kexec was triggered. Everything else flows from step
 * to step as return values (ts/run.ts).
 */
import type { DownloadInProgress } from './image-url.js';
import type { Stage } from './steps/stage.js';

/** The command line, parsed. */
export interface Options {
  destination: string;
  image?: string;
  /** --image-sha256: the pinned hash (a URL may carry it as #sha256= instead). */
  imageSha256?: string;
  port?: number;
  identity?: string;
  sshOptions: string[];
  sshConfig?: string;
  dryRun: boolean;
  dumpNetwork: boolean;
  yes: boolean;
  /** Seconds to wait for the rescue system to answer after kexec. */
  timeout: number;
  /** Seconds after which an unconfirmed rescue system reboots into the installed system, or 'off'. */
  fallbackReboot: number | 'off';
  connectTimeout: number;
  shell: boolean;
  debug: boolean;
  /** Where to write the run record (--json FILE). */
  json?: string;
  /** The flake that builds the image when --image is not given. */
  flake: string;
  /** Names of preflight checks whose refusals become warnings (--ignore-preflight-errors). */
  ignorePreflightErrors: string[];
}

/** What an interrupted or failed run must clean up; owned by run(), read by the SIGINT handler. */
export interface Session {
  /** The staged image while its keeper holds the tmpfs; unset once released or removed. */
  stage?: Stage;
  /** When `kexec -e` was triggered on the host: from then on there is nothing to undo. */
  kexecTriggeredAt?: number;
  /**
   * A URL image this machine downloads (the host cannot): a temporary file from its first byte on, partial until
   * verified, removed when the run ends however it ends.
   */
  download?: DownloadInProgress;
}
