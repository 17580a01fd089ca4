/**
 * The link to a test server as the CLI sees it, for the benchmark: one ssh ControlMaster (as the CLI opens),
 * round trips over it, a stream of bytes into the VM, and a long-running command whose lines are timestamped.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from './bench-report.js';
import type { TestServer } from './server.js';
import { sshArgs } from './ssh.js';

/** One ssh client's outcome. */
export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A ControlMaster to `user`@server and commands multiplexed over it. */
export class Link {
  private constructor(
    private readonly dir: string,
    private readonly args: string[],
  ) {}

  /** Opens the master (one authentication, like the CLI's connect step). */
  static async open(server: TestServer, user: string): Promise<Link> {
    const dir = await mkdtemp(join(tmpdir(), 'emergency-bench-ssh-'));
    const base = [...sshArgs({ port: server.port, knownHostsFile: server.knownHostsFile, identity: server.keys[user] }), '-S', join(dir, 'ctl')];
    const link = new Link(dir, [...base, `${user}@127.0.0.1`]);
    const master = await link.exec(['-M', '-f', '-N', '-o', 'ControlPersist=yes'], undefined, true);
    if (master.code !== 0) throw new Error(`ssh master to ${user}@127.0.0.1:${server.port} failed: ${master.stderr}`);
    return link;
  }

  /** Runs `command` over the master; `input` is a file streamed to its stdin. */
  exec(extra: string[], command?: string, noCommand = false, input?: string): Promise<Exec> {
    const started = Date.now();
    return new Promise((resolve) => {
      const args = noCommand ? [...extra, ...this.args] : [...extra, ...this.args, '--', command ?? 'true'];
      const child = spawn('ssh', args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      if (input) {
        child.stdin!.on('error', () => {});
        createReadStream(input, { highWaterMark: 1 << 20 }).pipe(child.stdin!);
      }
      child.on('close', (code) => resolve({ code: code ?? 255, stdout, stderr, ms: Date.now() - started }));
    });
  }

  /** Runs one command over the master and fails loudly if it fails. */
  async run(command: string, input?: string): Promise<Exec> {
    const result = await this.exec([], command, false, input);
    if (result.code !== 0) throw new Error(`${command}: exit ${result.code}: ${result.stderr}`);
    return result;
  }

  /** Median wall time of `count` trivial commands: one ssh round trip over an open connection (channel open + exec + exit). */
  async roundTripMs(count = 5): Promise<number> {
    const times: number[] = [];
    for (let i = 0; i < count; i++) times.push((await this.run('true')).ms);
    return median(times);
  }

  /**
   * Starts `command` and calls `onLine(line, ms)` for each stdout line as it arrives; returns a stopper that
   * kills the client (the remote side dies with the channel, or with the kernel it ran on).
   */
  watch(command: string, onLine: (line: string, atMs: number) => void): { stop: () => void; done: Promise<void> } {
    const child = spawn('ssh', [...this.args, '--', command], { stdio: ['ignore', 'pipe', 'ignore'] });
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) onLine(line, Date.now());
    });
    const done = new Promise<void>((resolve) => child.on('close', () => resolve()));
    return { stop: () => child.kill('SIGTERM'), done };
  }

  /** Ends the master. */
  async close(): Promise<void> {
    await this.exec(['-O', 'exit'], undefined, true);
    await rm(this.dir, { recursive: true, force: true });
  }
}
