/**
 * Fakes at the process boundary: a Remote that answers each script run from a table instead of ssh, and a Ui
 * that records what the operator would see. Every step's failure branch gets a fast unit test with these.
 *
 *   const remote = new FakeRemote('admin', [{ script: 'preflight.sh', as: 'sudo', reply: { code: 1, stderr: 'sudo: a password is required' } }]);
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { HeldConnection } from '../../held-connection.js';
import type { Become, Remote, RemoteProcess, RunOptions, RunResult } from '../../remote.js';
import type { RemoteScript } from '../../shell-quote.js';
import type { Ui } from '../../ui.js';

/** One scripted answer: which call it answers (by the first script's name and how we became root), and what. */
export interface FakeReply {
  /** scripts/NAME of the first script in the call; `inline` for snippets without a name. */
  script: string;
  /** Only answers when the Remote's `become` is this (the sudo/doas ladder). */
  as?: Become;
  reply: Partial<RunResult> | ((call: FakeCall) => Partial<RunResult>);
  /** For start(): lines the process prints before it exits (or keeps running, with `exit: false`). */
  lines?: string[];
  exit?: boolean;
}

/** A call the fake received, for assertions. */
export interface FakeCall {
  script: string;
  args: readonly string[];
  become: Become;
  input?: string | Buffer;
  asRoot: boolean;
}

/** A Remote that answers from `replies`, first match wins, and throws on a call nobody scripted. */
export class FakeRemote implements Remote {
  become: Become = 'root';
  roundTrips = 0;
  readonly destination = 'fake-host';
  readonly calls: FakeCall[] = [];
  readonly probes: string[] = [];
  password?: Buffer;
  closed = false;
  probeReplies: Partial<RunResult>[] = [];
  /** For each probe, whether it was given a banner check's held connection. */
  readonly probesOver: boolean[] = [];
  /**
   * What sshConfig() returns. The default's ProxyJump means no banner check: every poll is a full probe, which is
   * what most tests script; a test that sets a loopback HostName and port gets banner checks against it.
   */
  sshG = 'hostname fake-host\nport 22\nproxyjump jump\n';
  /** Where a probe given a held connection serves it, for a relay to connect (as SshRemote does); unset: none does. */
  relayDir?: string;

  constructor(
    public loginUser: string,
    private readonly replies: FakeReply[],
  ) {}

  async connect(): Promise<void> {
    this.roundTrips++;
  }

  private answer(scripts: RemoteScript[], options: RunOptions): { reply: FakeReply; call: FakeCall } {
    const script = scripts[0]?.name ?? 'inline';
    const input = typeof options.input === 'string' || Buffer.isBuffer(options.input) ? options.input : undefined;
    const call: FakeCall = { script, args: scripts[0]?.args ?? [], become: this.become, input, asRoot: options.asRoot ?? true };
    this.calls.push(call);
    const reply = this.replies.find((r) => r.script === script && (r.as === undefined || r.as === this.become));
    if (!reply) throw new Error(`FakeRemote: no reply scripted for ${script} as ${this.become}`);
    return { reply, call };
  }

  async run(scripts: RemoteScript[], options: RunOptions = {}): Promise<RunResult> {
    this.roundTrips++;
    const { reply, call } = this.answer(scripts, options);
    const r = typeof reply.reply === 'function' ? reply.reply(call) : reply.reply;
    return { code: r.code ?? 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  start(scripts: RemoteScript[], options: RunOptions = {}): RemoteProcess {
    this.roundTrips++;
    const { reply, call } = this.answer(scripts, options);
    const r = typeof reply.reply === 'function' ? reply.reply(call) : reply.reply;
    const stdin = new PassThrough();
    stdin.resume();
    const listeners: ((line: string) => void)[] = [];
    let finish: (result: RunResult) => void = () => {};
    const done = new Promise<RunResult>((resolve) => (finish = resolve));
    const lines = reply.lines ?? [];
    const result = { code: r.code ?? 0, stdout: lines.map((l) => `${l}\n`).join('') + (r.stdout ?? ''), stderr: r.stderr ?? '' };
    setImmediate(() => {
      for (const line of lines) for (const l of listeners) l(line);
      if (reply.exit !== false) finish(result);
    });
    stdin.on('finish', () => finish(result));
    return { stdin, onLine: (l) => listeners.push(l), done, kill: () => finish({ ...result, code: 143 }) };
  }

  setPassword(password: Buffer): void {
    this.password = password;
  }

  async probe(_user: string, command: string, _timeout: number, held?: HeldConnection): Promise<RunResult> {
    this.probes.push(command);
    this.probesOver.push(held !== undefined);
    if (held && this.relayDir) {
      // What ssh's ProxyCommand would do: connect to the served socket (and so take the connection over).
      const path = join(this.relayDir, `relay-${this.probes.length}`);
      await held.serve(path);
      const relay = connect(path);
      // The replayed banner is the first thing a relay receives: the connection is handed over by then.
      await new Promise((resolve) => relay.once('data', resolve).once('close', resolve));
      relay.destroy();
    }
    held?.close();
    const next = this.probeReplies.shift() ?? { code: 255, stderr: 'ssh: connect to host fake-host port 22: Connection refused' };
    return { code: next.code ?? 0, stdout: next.stdout ?? '', stderr: next.stderr ?? '' };
  }

  async sshConfig(): Promise<string> {
    return this.sshG;
  }

  async interactive(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A Ui that records every line and answers prompts from what the test set. */
export class RecordingUi implements Ui {
  readonly lines: string[] = [];
  answer = false;
  passwordAnswer: Buffer | Error = Buffer.from('secret');
  terminal = false;

  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.lines.push(`step ${name}`);
    return fn();
  }
  info(text: string): void {
    this.lines.push(`info ${text}`);
  }
  warn(text: string): void {
    this.lines.push(`warn ${text}`);
  }
  out(text: string): void {
    this.lines.push(`out ${text}`);
  }
  progress(): (done: number) => void {
    return () => {};
  }
  async confirm(question: string): Promise<boolean> {
    this.lines.push(`confirm ${question}`);
    return this.answer;
  }
  async password(question: string): Promise<Buffer> {
    this.lines.push(`password ${question}`);
    if (this.passwordAnswer instanceof Error) throw this.passwordAnswer;
    return this.passwordAnswer;
  }
  interactive(): boolean {
    return this.terminal;
  }
}
