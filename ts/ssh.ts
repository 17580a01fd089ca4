/**
 * Remote over the operator's own OpenSSH client: one ControlMaster connection that every step reuses, so
 * ~/.ssh/config, the agent, ProxyJump and known_hosts behave exactly as with plain `ssh`.
 * Host keys are always checked strictly; options that would weaken that are refused.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import { ConnectionError, EmergencyError, ExitCode, HostKeyChangedError, UsageError } from './errors.js';
import type { HeldConnection } from './held-connection.js';
import type { Become, Remote, RemoteProcess, RunOptions, RunResult } from './remote.js';
import { scriptCommand, shellJoin, type RemoteScript } from './shell-quote.js';

/** How to reach the host, from the command line. */
export interface SshTarget {
  destination: string;
  port?: number;
  identity?: string;
  /** Extra `-o` options, passed to every ssh invocation. */
  options: string[];
  /** An ssh_config file (-F). */
  configFile?: string;
}

/**
 * The command the operator runs to log in to the rescue system as `user`, with the ssh settings they gave the CLI
 * (config file, port, identity, -o options), quoted for a POSIX shell: what the CLI prints when the rescue is up.
 */
export function loginCommand(target: SshTarget, user: string): string {
  const args = ['ssh'];
  if (target.configFile) args.push('-F', target.configFile);
  if (target.port) args.push('-p', String(target.port));
  if (target.identity) args.push('-i', target.identity);
  for (const option of target.options) args.push('-o', option);
  // user@host with the login user replaced; a Host alias keeps its name and gets -l (before it: ssh keeps the first).
  const at = target.destination.lastIndexOf('@');
  if (at >= 0) return shellJoin([...args, `${user}@${target.destination.slice(at + 1)}`]);
  return shellJoin([...args, '-l', user, target.destination]);
}

/**
 * The ProxyCommand that joins ssh to a HeldConnection served on the unix socket `socketPath`: this very node and
 * dist/ssh-relay.js beside this module (so `nix run` and an npm install carry it), quoted for the shell ssh runs it
 * with (`$SHELL -c 'exec COMMAND'`: ssh adds the exec), `%` doubled because ssh expands %h, %p… in it.
 */
export function relayProxyCommand(socketPath: string, node = process.execPath): string {
  const relay = fileURLToPath(new URL('./ssh-relay.js', import.meta.url));
  return shellJoin([node, relay, socketPath]).replaceAll('%', '%%');
}

/** ssh exits 255 for its own failures; our scripts never use that code. */
export const SSH_FAILED = 255;

const FORBIDDEN_OPTIONS: Record<string, (value: string) => boolean> = {
  stricthostkeychecking: (v) => !/^(yes|true)$/i.test(v),
  // With strict checking an empty known_hosts only makes every host unknown; say why up front instead.
  userknownhostsfile: (v) => /^\/dev\/null$/i.test(v.trim()),
  controlmaster: () => true,
  controlpath: () => true,
};

/** Refuses -o options that would disable host key checking or fight our ControlMaster. */
export function checkSshOptions(options: string[]): void {
  for (const option of options) {
    const match = /^\s*([A-Za-z]+)\s*[= ]\s*(.*)$/.exec(option);
    if (!match) throw new UsageError(`ssh option "${option}" is not of the form Name=value`, 'Pass options as -o Name=value, as with ssh.');
    const forbidden = FORBIDDEN_OPTIONS[match[1].toLowerCase()];
    if (forbidden?.(match[2])) {
      throw new UsageError(
        `ssh option "${option}" is not allowed`,
        /control/i.test(match[1])
          ? 'emergency manages its own ControlMaster connection; drop this option.'
          : 'Host key checking stays strict: the rescue system proves it is your server by presenting the same host key. Add the host to known_hosts (connect once with plain ssh and compare the fingerprint) instead.',
      );
    }
  }
}

/** Turns ssh's own failure output into an error that says cause and fix. */
export function classifySshFailure(destination: string, stderr: string): Error {
  const detail = stderr.trim();
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) return new HostKeyChangedError(destination, detail);
  if (/No .* host key is known|Host key verification failed/i.test(stderr)) {
    return new ConnectionError(
      `the host key of ${destination} is not in your known_hosts`,
      `Connect once with plain \`ssh ${destination}\`, compare the fingerprint with one you trust, and accept it; emergency never accepts unknown host keys because it must recognise the rescue system by that key.`,
      detail,
    );
  }
  if (/Permission denied|Too many authentication failures/i.test(stderr)) {
    return new ConnectionError(
      `${destination} refused the login`,
      'Check the user (user@host or -l in ~/.ssh/config), the key (-i PATH) and that your agent holds it (ssh-add -l).',
      detail,
    );
  }
  if (/Could not resolve hostname/i.test(stderr)) {
    return new ConnectionError(`the name in ${destination} does not resolve`, 'Check the spelling or your ~/.ssh/config alias, or use the IP address.', detail);
  }
  if (/Connection refused|timed out|No route to host|Network is unreachable|Connection closed|Connection reset|kex_exchange_identification/i.test(stderr)) {
    return new ConnectionError(
      `cannot reach sshd on ${destination}`,
      'Check that the host is up and sshd listens on that port (-p); try plain `ssh` with the same options.',
      detail,
    );
  }
  return new ConnectionError(`ssh to ${destination} failed`, 'Run the same with plain `ssh -v` to see why.', detail);
}

/**
 * `command` wrapped so it runs as root the way `become` says. The sudo password is never part of it: it goes
 * on sudo's stdin, ahead of the script's own input (SshRemote.stdinFor).
 */
export function becomeRoot(become: Become, command: string[]): string[] {
  if (become === 'root') return command;
  if (become === 'doas') return ['doas', '-n', ...command];
  if (become === 'sudo') return ['sudo', '-n', '--', ...command];
  // -S reads the password from stdin, -p '' keeps sudo's prompt out of our output. -k ignores cached
  // credentials, so sudo always reads that line: with a cached timestamp (timestamp_type=global, say) it would
  // not, and the password would flow on into the script's stdin, ahead of the image or the restore data.
  return ['sudo', '-k', '-S', '-p', '', '--', ...command];
}

/** The Remote implementation: an ssh ControlMaster and clients multiplexed over it. */
export class SshRemote implements Remote {
  become: Become = 'root';
  loginUser = 'root';
  roundTrips = 0;
  private controlDir = '';
  private password?: Buffer;
  private resolvedConfig = '';

  constructor(private readonly target: SshTarget) {
    checkSshOptions(target.options);
  }

  get destination(): string {
    return this.target.destination;
  }

  /** Options every ssh invocation gets; ours first, because ssh keeps the first value it sees. */
  baseArgs(): string[] {
    const args = ['-o', 'StrictHostKeyChecking=yes', '-o', 'UpdateHostKeys=no'];
    if (this.target.configFile) args.push('-F', this.target.configFile);
    if (this.target.port) args.push('-p', String(this.target.port));
    if (this.target.identity) args.push('-i', this.target.identity);
    for (const option of this.target.options) args.push('-o', option);
    return args;
  }

  private muxArgs(): string[] {
    return ['-S', join(this.controlDir, 'ctl'), ...this.baseArgs()];
  }

  /** Opens the ControlMaster: the one authentication of the whole run (round trip 1). */
  async connect(connectTimeoutSeconds: number): Promise<void> {
    this.loginUser = await this.effectiveUser();
    this.controlDir = await mkdtemp(join(tmpdir(), 'emergency-ssh-'));
    const logFile = join(this.controlDir, 'master.log');
    const log = await open(logFile, 'w');
    // -f daemonizes after authentication; its stdio goes to a file so no pipe of ours stays open,
    // and prompts (passphrase, password) still reach the terminal through /dev/tty.
    const master = spawn(
      'ssh',
      [
        '-M',
        '-f',
        '-N',
        '-o',
        'ControlPersist=yes',
        '-o',
        `ConnectTimeout=${connectTimeoutSeconds}`,
        '-o',
        'ServerAliveInterval=2',
        '-o',
        'ServerAliveCountMax=3',
        ...this.muxArgs(),
        this.target.destination,
      ],
      { stdio: ['inherit', 'ignore', log.fd] },
    );
    const code: number = await new Promise((resolve) => master.on('exit', (c) => resolve(c ?? SSH_FAILED)));
    await log.close();
    if (code !== 0) throw classifySshFailure(this.target.destination, await readFile(logFile, 'utf8'));
    this.roundTrips++;
    this.watchOverMaster();
  }

  /**
   * ControlPersist=yes keeps the master (and an idle login on the host) alive after we are gone, e.g. when this
   * process is SIGKILLed and close() never runs. A detached watchdog closes it once our process has exited.
   */
  private watchOverMaster(): void {
    const watchdog = spawn(
      'sh',
      [
        '-c',
        'while kill -0 "$1" 2>/dev/null; do sleep 1; done; ssh -S "$2/ctl" -O exit emergency-watchdog 2>/dev/null; rm -rf "$2"',
        'emergency-watchdog',
        String(process.pid),
        this.controlDir,
      ],
      { detached: true, stdio: 'ignore' },
    );
    watchdog.unref();
  }

  /** What `ssh -G` resolves for the destination (hostname, port, proxies…); read once, by connect() or here. */
  async sshConfig(): Promise<string> {
    if (!this.resolvedConfig) await this.effectiveUser();
    return this.resolvedConfig;
  }

  /** The user ssh will log in as after ~/.ssh/config, without connecting (`ssh -G`). */
  private async effectiveUser(): Promise<string> {
    const config = await $({ quiet: true, nothrow: true })`ssh -G ${this.baseArgs()} ${this.target.destination}`;
    if (config.exitCode === 127) {
      throw new UsageError(
        "OpenSSH's `ssh` client is not installed or not on PATH",
        'Install it (Debian: apt install openssh-client) or run emergency through `nix run`, which brings it.',
      );
    }
    if (config.exitCode !== 0) {
      throw new UsageError(
        `ssh rejects the destination or options: ${config.stderr.trim()}`,
        'Check DESTINATION and the -o/-p/-i options; they are passed to ssh as they are.',
      );
    }
    this.resolvedConfig = config.stdout;
    return /^user (.+)$/m.exec(config.stdout)?.[1] ?? 'root';
  }

  private remoteCommand(scripts: RemoteScript[], asRoot: boolean): string {
    const command = scriptCommand(scripts);
    return shellJoin(asRoot ? becomeRoot(this.become, command) : command);
  }

  private stdinFor(options: RunOptions): Readable | string | Buffer | undefined {
    const asRoot = options.asRoot ?? true;
    if (!asRoot || this.become !== 'sudo-password') return options.input;
    // A bug, not a host problem: the preflight step sets the password before it switches to sudo-password.
    if (!this.password)
      throw new EmergencyError('sudo needs a password but none was set', 'This is a bug in emergency: run with --debug and report it.', ExitCode.Internal);
    const password = Buffer.concat([this.password, Buffer.from('\n')]);
    const input = options.input;
    if (input === undefined) return password;
    if (typeof input === 'string' || Buffer.isBuffer(input)) return Buffer.concat([password, Buffer.from(input)]);
    return Readable.from(
      (async function* () {
        yield password;
        yield* input;
      })(),
    );
  }

  private clientArgs(scripts: RemoteScript[], options: RunOptions): string[] {
    return [...this.muxArgs(), '-T', this.target.destination, '--', this.remoteCommand(scripts, options.asRoot ?? true)];
  }

  async run(scripts: RemoteScript[], options: RunOptions = {}): Promise<RunResult> {
    const input = this.stdinFor(options);
    this.roundTrips++;
    const out = await $({ quiet: true, nothrow: true, input: input ?? '' })`ssh ${this.clientArgs(scripts, options)}`;
    const result = { code: out.exitCode ?? SSH_FAILED, stdout: out.stdout, stderr: out.stderr };
    if (result.code === SSH_FAILED) throw classifySshFailure(this.target.destination, result.stderr);
    return result;
  }

  start(scripts: RemoteScript[], options: RunOptions = {}): RemoteProcess {
    this.roundTrips++;
    const child = spawn('ssh', this.clientArgs(scripts, options), { stdio: ['pipe', 'pipe', 'pipe'] });
    const first = this.stdinFor({ ...options, input: undefined });
    if (first) child.stdin.write(first);
    let stdout = '';
    let stderr = '';
    let partial = '';
    const listeners: ((line: string) => void)[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) for (const l of listeners) l(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // Writes after the remote side has gone fail with EPIPE; the exit code tells the story.
    child.stdin.on('error', () => {});
    const done = new Promise<RunResult>((resolve) => child.on('close', (code) => resolve({ code: code ?? SSH_FAILED, stdout, stderr })));
    return {
      stdin: child.stdin,
      onLine: (listener) => listeners.push(listener),
      done,
      kill: () => child.kill('SIGTERM'),
    };
  }

  setPassword(password: Buffer): void {
    this.password = password;
  }

  /**
   * One fresh connection (no ControlMaster) as `user`, for polling the host across the kexec; over `held`, the
   * connection a banner check opened, when given. Never throws for ssh failures: the caller decides what each
   * outcome means.
   */
  async probe(user: string, command: string, connectTimeoutSeconds: number, held?: HeldConnection): Promise<RunResult> {
    if (!held) return this.probeWith([], user, command, connectTimeoutSeconds);
    // The relay's socket in a directory of its own (mkdtemp: mode 0700, so only this user can connect), inside
    // the control directory when there is one (the watchdog removes that if we die), removed after the probe.
    const dir = await mkdtemp(join(this.controlDir || tmpdir(), 'relay-'));
    try {
      const socketPath = join(dir, 's');
      // Listening can fail (TMPDIR too long for a unix socket path): then the probe makes its own connection.
      const served = await held.serve(socketPath).then(
        () => true,
        () => false,
      );
      return await this.probeWith(served ? ['-o', `ProxyCommand=${relayProxyCommand(socketPath)}`] : [], user, command, connectTimeoutSeconds);
    } finally {
      held.close();
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async probeWith(proxy: string[], user: string, command: string, connectTimeoutSeconds: number): Promise<RunResult> {
    const out = await $({ quiet: true, nothrow: true, input: '' })`ssh ${[
      ...proxy,
      '-o',
      'ControlMaster=no',
      '-o',
      'ControlPath=none',
      '-o',
      'BatchMode=yes',
      '-o',
      `ConnectTimeout=${connectTimeoutSeconds}`,
      '-l',
      user,
      ...this.baseArgs(),
      '-T',
      this.target.destination,
      '--',
      command,
    ]}`.timeout(`${connectTimeoutSeconds * 2 + 2}s`);
    return { code: out.exitCode ?? SSH_FAILED, stdout: out.stdout, stderr: out.stderr };
  }

  /** An interactive session as `user`, on the operator's terminal. */
  async interactive(user: string): Promise<number> {
    const child = spawn('ssh', ['-o', 'ControlMaster=no', '-o', 'ControlPath=none', '-l', user, ...this.baseArgs(), this.target.destination], {
      stdio: 'inherit',
    });
    return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? SSH_FAILED)));
  }

  async close(): Promise<void> {
    if (!this.controlDir) return;
    await $({ quiet: true, nothrow: true })`ssh ${['-S', join(this.controlDir, 'ctl'), '-O', 'exit', this.target.destination]}`.timeout('5s');
    await rm(this.controlDir, { recursive: true, force: true });
    this.controlDir = '';
  }
}
