/** Runs the built CLI (dist/cli.js) as a user would, against a test server. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestServer } from './server.js';

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));

/** What the CLI did. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `emergency ARGS` with a timeout; never throws for a non-zero exit. */
export function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The ssh arguments that point the CLI at a test server as `user`, with that user's key and known_hosts. */
export function targetArgs(server: TestServer, user: string): string[] {
  return sshTargetArgs(server.port, user, server.keys[user], server.knownHostsFile);
}

/** The CLI's ssh arguments for a test server's port with a chosen user, key and known_hosts (for the faults that need a wrong one). */
export function sshTargetArgs(port: number, user: string, identity: string, knownHostsFile: string): string[] {
  return [
    '-p',
    String(port),
    '-i',
    identity,
    '-F',
    '/dev/null',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    `UserKnownHostsFile=${knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    `${user}@127.0.0.1`,
  ];
}

/** A CLI run in progress, in its own session and process group (no controlling terminal, as under cron or CI). */
export interface CliRun {
  pid: number;
  /** Resolves with each line the CLI writes to stderr (step lines, info) as it comes. */
  onStderrLine(listener: (line: string) => void): void;
  /** Sends a signal to the CLI alone, or with `group` to its whole process group, as a terminal's Ctrl-C does. */
  signal(signal: NodeJS.Signals, opts?: { group?: boolean }): void;
  done: Promise<CliResult>;
}

/** Starts `emergency ARGS` detached; unlike runCli, the caller can watch it and signal it mid-step. */
export function startCli(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): CliRun {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const listeners: ((line: string) => void)[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const line of lines) for (const l of listeners) l(line);
  });
  const signal = (sig: NodeJS.Signals, o: { group?: boolean } = {}) => {
    try {
      process.kill(o.group ? -child.pid! : child.pid!, sig);
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => signal('SIGKILL', { group: true }), opts.timeoutMs ?? 300_000);
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (sig ? 128 + (({ SIGKILL: 9, SIGINT: 2, SIGTERM: 15 } as Record<string, number>)[sig] ?? 0) : -1),
        stdout,
        stderr,
        ms: Date.now() - started,
      });
    }),
  );
  return { pid: child.pid!, onStderrLine: (l) => listeners.push(l), signal, done };
}
