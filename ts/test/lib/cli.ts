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
  return [
    '-p', String(server.port),
    '-i', server.keys[user],
    '-F', '/dev/null',
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', `UserKnownHostsFile=${server.knownHostsFile}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    `${user}@127.0.0.1`,
  ];
}
