/**
 * The one object every step takes: the options, the remote, the Ui, and the state that earlier steps
 * filled in. Steps read what they need and return early when they have nothing to do.
 */
import type { Image } from './image.js';
import type { KeySelection } from './keys/authorized-keys.js';
import type { NetworkCapture } from './network/capture.js';
import type { NetworkPlan } from './network/plan.js';
import type { Verdict } from './preflight/verdict.js';
import type { RemoteProcess } from './remote.js';
import type { ScriptOutput } from './sections.js';
import type { SshRemote } from './ssh.js';
import type { Ui } from './ui.js';

/** The command line, parsed. */
export interface Options {
  destination: string;
  image?: string;
  port?: number;
  identity?: string;
  sshOptions: string[];
  sshConfig?: string;
  dryRun: boolean;
  dumpNetwork: boolean;
  yes: boolean;
  /** Seconds to wait for the rescue system to answer after kexec. */
  timeout: number;
  connectTimeout: number;
  shell: boolean;
  debug: boolean;
  /** The flake that builds the image when --image is not given. */
  flake: string;
}

/** A host key as preflight found it (public half only). */
export interface HostKey {
  path: string;
  present: boolean;
  pub: string;
}

/** What the steps learn, in order. */
export interface State {
  image?: Image;
  preflight?: ScriptOutput;
  facts?: Record<string, string>;
  verdict?: Verdict;
  hostKeys?: HostKey[];
  keys?: KeySelection;
  /** Set when the host's ip cannot capture (no iproute2/JSON): capture again with the image's ip after staging. */
  captureDeferred?: boolean;
  capture?: NetworkCapture;
  plan?: NetworkPlan;
  restoreScript?: string;
  stage?: { keeper: RemoteProcess; dir: string; imageDir: string };
  kexecTriggeredAt?: number;
  rescueBootId?: string;
}

/** The operation: options, the remote, the Ui and the state. */
export interface Operation {
  options: Options;
  remote: SshRemote;
  ui: Ui;
  state: State;
  /** Counts ssh round trips (connect + each script run) until kexec; the benchmark reports it. */
  roundTrips: number;
}
