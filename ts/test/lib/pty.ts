/**
 * Runs the CLI on a pseudo-terminal, as an operator at a terminal would, and answers one kind of prompt (the sudo
 * password) with a secret. The secret reaches the helper on a pipe (its stdin), never in argv, the environment or
 * a file; the helper (python3's `pty`) types it only once the CLI has switched the terminal's echo off.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { CliResult } from './cli.js';

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url));

/**
 * argv: PROMPT_REGEX HIDDEN(1|0) COMMAND...; stdin: the answer, one line. Prints the terminal's output; exits with
 * the child's code. HIDDEN=1 types only once echo is off (a password prompt); 0 answers a visible question.
 */
const HELPER = String.raw`
import os, pty, re, select, sys, termios, time
prompt = re.compile(sys.argv[1].encode())
hidden = sys.argv[2] == '1'
secret = sys.stdin.buffer.readline().rstrip(b'\n')
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[3], sys.argv[3:])
seen, answered, status = b'', 0, None
while True:
    ready, _, _ = select.select([fd], [], [], 0.3)
    data = b''
    if ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b''
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        seen += data
        if prompt.search(seen):
            seen = b''
            # Type only once the CLI has turned echo off, as a person would (they read the prompt first).
            deadline = time.time() + (10 if hidden else 0)
            while termios.tcgetattr(fd)[3] & termios.ECHO and time.time() < deadline:
                time.sleep(0.01)
            os.write(fd, secret + b'\r')
            answered += 1
        continue
    if ready:
        time.sleep(0.05)  # the terminal is closed (EIO) while the child exits
    if status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    elif not ready or not data:
        break
sys.stderr.write('pty-helper: answered %d prompt(s)\n' % answered)
sys.exit(os.waitstatus_to_exitcode(status))
`;

/** What the terminal showed (stdout and stderr of the CLI, interleaved as on a screen). */
export interface PtyResult extends CliResult {
  /** How many times the helper typed the secret. */
  answered: number;
}

/**
 * Runs `emergency ARGS` on a pty and types `secret` + Enter whenever the output matches `prompt` — once the
 * terminal's echo is off, unless `visible` (a y/N question rather than a password).
 */
export function runCliInPty(
  args: string[],
  opts: { prompt: RegExp; secret: string; visible?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv; onStart?: (pid: number) => void },
): Promise<PtyResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('python3', ['-c', HELPER, opts.prompt.source, opts.visible ? '0' : '1', process.execPath, CLI, ...args], {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {});
    child.stdin.end(`${opts.secret}\n`);
    opts.onStart?.(child.pid!);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const answered = Number(/pty-helper: answered (\d+)/.exec(stderr)?.[1] ?? 0);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started, answered });
    });
  });
}

/**
 * Runs any command on a pty (an interactive `ssh -tt`, say) and types `answer` + Enter once its output matches
 * `prompt`, as a person at a terminal would; `answer` reaches the helper on its stdin.
 */
export function runInPty(command: string, args: string[], opts: { prompt: RegExp; answer: string; timeoutMs?: number }): Promise<PtyResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('python3', ['-c', HELPER, opts.prompt.source, '0', command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.on('error', () => {});
    child.stdin.end(`${opts.answer}\n`);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const answered = Number(/pty-helper: answered (\d+)/.exec(stderr)?.[1] ?? 0);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - started, answered });
    });
  });
}

/** Process ids in the tree under `root` (itself included), from /proc. */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name is in parentheses and may hold spaces: the ppid is the second field after it.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parent.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

/** Which processes under `root` carry `needle` in their argv or environment ("PID argv", "PID environ"). */
export function findInProcessTree(root: number, needle: string): string[] {
  const hits: string[] = [];
  for (const pid of processTree(root)) {
    for (const part of ['cmdline', 'environ']) {
      try {
        if (readFileSync(`/proc/${pid}/${part}`).includes(needle)) hits.push(`${pid} ${part}`);
      } catch {
        // gone meanwhile, or not ours to read
      }
    }
  }
  return hits;
}
