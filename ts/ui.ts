/**
 * Everything the operator sees and types: step lines with durations, the upload progress bar, the
 * confirmation and the hidden password prompt. Progress goes to stderr, results (plan, summary) to stdout.
 */
import { closeSync, openSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { EmergencyError, ExitCode, InterruptedError } from './errors.js';

/** The operator-facing output channel; tests and --json could swap it. */
export interface Ui {
  /** Runs `fn` as a named step and prints its name and duration. */
  step<T>(name: string, fn: () => Promise<T>): Promise<T>;
  info(text: string): void;
  warn(text: string): void;
  /** Prints a result block to stdout. */
  out(text: string): void;
  /** A progress reporter for `total` bytes, drawn only on a TTY. */
  progress(label: string, total: number): (done: number) => void;
  confirm(question: string): Promise<boolean>;
  password(question: string): Promise<Buffer>;
  /** Whether the operator can answer prompts. */
  interactive(): boolean;
}

const fmtSeconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Formats a byte count as MiB with one decimal. */
export function fmtMiB(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Opens the operator's terminal even when stdin is a pipe. */
function openTerminal(): ReadStream | undefined {
  if (process.stdin.isTTY) return process.stdin as ReadStream;
  try {
    return new ReadStream(openSync('/dev/tty', 'r'));
  } catch {
    return undefined;
  }
}

/** Reads one line from the terminal; with `hidden`, nothing is echoed. Bytes stay in a Buffer. */
function readLine(question: string, hidden: boolean): Promise<Buffer> {
  const tty = openTerminal();
  if (!tty) {
    return Promise.reject(
      new EmergencyError(
        'no terminal to ask on',
        'Run emergency from a terminal, or pass --yes (and log in as root or with passwordless sudo).',
        ExitCode.Usage,
      ),
    );
  }
  process.stderr.write(question);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const wasRaw = tty.isRaw;
    if (hidden) tty.setRawMode(true);
    const finish = (error?: Error) => {
      tty.off('data', onData);
      if (hidden) tty.setRawMode(wasRaw);
      tty.pause();
      if (tty !== process.stdin) tty.destroy();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (data: Buffer) => {
      for (const byte of data) {
        // Ctrl-C in raw mode arrives as a byte, not as SIGINT: the same outcome as SIGINT (exit 130).
        if (byte === 3) return finish(new InterruptedError('at the prompt'));
        if (byte === 13 || byte === 10) return finish();
        if (byte === 127 || byte === 8) {
          const last = chunks.pop();
          if (last && last.length > 1) chunks.push(last.subarray(0, -1));
        } else {
          chunks.push(Buffer.from([byte]));
        }
      }
    };
    tty.on('data', onData);
    tty.resume();
  });
}

/** The terminal Ui. */
export class TerminalUi implements Ui {
  private readonly started = Date.now();

  async step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const start = Date.now();
    process.stderr.write(`» ${name}\n`);
    try {
      const result = await fn();
      process.stderr.write(`✓ ${name} ${fmtSeconds(Date.now() - start)}  (total ${fmtSeconds(Date.now() - this.started)})\n`);
      return result;
    } catch (e) {
      process.stderr.write(`✗ ${name} failed after ${fmtSeconds(Date.now() - start)}\n`);
      throw e;
    }
  }

  info(text: string): void {
    process.stderr.write(`  ${text}\n`);
  }

  warn(text: string): void {
    process.stderr.write(`  warning: ${text}\n`);
  }

  out(text: string): void {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  progress(label: string, total: number): (done: number) => void {
    if (!process.stderr.isTTY) return () => {};
    const start = Date.now();
    let last = 0;
    return (done: number) => {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const fraction = total ? done / total : 1;
      const width = 30;
      const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.');
      const rate = done / Math.max(0.001, (now - start) / 1000);
      process.stderr.write(`\r  ${label} [${bar}] ${fmtMiB(done)} / ${fmtMiB(total)} ${fmtMiB(rate)}/s `);
      if (done >= total) process.stderr.write('\n');
    };
  }

  interactive(): boolean {
    return openTerminalAvailable();
  }

  async confirm(question: string): Promise<boolean> {
    const answer = (await readLine(`${question} [y/N] `, false)).toString('utf8').trim().toLowerCase();
    return answer === 'y' || answer === 'yes';
  }

  password(question: string): Promise<Buffer> {
    return readLine(question, true);
  }
}

function openTerminalAvailable(): boolean {
  if (process.stdin.isTTY) return true;
  try {
    closeSync(openSync('/dev/tty', 'r'));
    return true;
  } catch {
    return false;
  }
}
