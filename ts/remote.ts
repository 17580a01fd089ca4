/**
 * The one interface every step uses to act on the host. Implemented once over OpenSSH (ts/ssh.ts); steps
 * never build ssh command lines themselves.
 */
import type { Readable, Writable } from 'node:stream';
import type { HeldConnection } from './held-connection.js';
import type { RemoteScript } from './shell-quote.js';

/** How a script leaves the host. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What to run and how. */
export interface RunOptions {
  /** Data for the script's stdin (after the sudo password, which Remote adds itself). */
  input?: string | Buffer | Readable;
  /** Run as root (through sudo/doas when the login user is not root). Default true. */
  asRoot?: boolean;
}

/** A script that keeps running while the orchestrator streams to it (the stage keeper). */
export interface RemoteProcess {
  stdin: Writable;
  /** Resolves with each stdout line as it arrives, until `done`. */
  onLine(listener: (line: string) => void): void;
  done: Promise<RunResult>;
  /** Stops the local ssh client: the remote side sees EOF and the session end. */
  kill(): void;
}

/** How the login user becomes root on the host. */
export type Become = 'root' | 'sudo' | 'sudo-password' | 'doas';

/** The host as the steps see it. Tests swap in a fake (ts/test/lib/fake-remote.ts). */
export interface Remote {
  /** How the operator named the host (for messages). */
  readonly destination: string;
  /** The user ssh logs in as (known after connect). */
  readonly loginUser: string;
  become: Become;
  /** ssh round trips so far: the connection, then each run or start on it (probes are not counted). */
  readonly roundTrips: number;
  /** Opens the one authenticated connection every later call reuses. */
  connect(connectTimeoutSeconds: number): Promise<void>;
  /** Runs whole script files, each with its own arguments, in one ssh round trip. */
  run(scripts: RemoteScript[], options?: RunOptions): Promise<RunResult>;
  /** Like run, but returns at once with the script's stdin open for streaming. */
  start(scripts: RemoteScript[], options?: RunOptions): RemoteProcess;
  /** Sets the sudo password (held in memory only, sent on sudo's stdin). */
  setPassword(password: Buffer): void;
  /**
   * One fresh connection as `user` (no shared connection), for polling across the kexec; never throws for ssh
   * failures. Over `held` (a banner check's connection to sshd) when given, which it closes after.
   */
  probe(user: string, command: string, connectTimeoutSeconds: number, held?: HeldConnection): Promise<RunResult>;
  /** What `ssh -G` resolves for the destination (hostname, port, proxies). */
  sshConfig(): Promise<string>;
  /** An interactive session as `user` on the operator's terminal; resolves with ssh's exit code. */
  interactive(user: string): Promise<number>;
  /** Closes the shared connection. */
  close(): Promise<void>;
}
