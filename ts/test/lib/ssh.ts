/**
 * ssh from the tests' side: keys made with ssh-keygen, known_hosts files, and one command run with strict host
 * key checking and nothing from the operator's own ssh configuration.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const exec = promisify(execFile);

/** Key types the harness makes. */
export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';

/** A key pair on disk: `path` is the private key, `path.pub` the public one. */
export interface KeyPair {
  path: string;
  publicKey: string;
}

/** Makes a key pair with no passphrase. */
export async function makeKey(path: string, type: KeyType, comment: string): Promise<KeyPair> {
  await exec('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', comment, '-f', path]);
  return { path, publicKey: (await readFile(`${path}.pub`, 'utf8')).trim() };
}

/** known_hosts lines for host keys served at 127.0.0.1:port (`[127.0.0.1]:PORT type base64`). */
export function knownHostsLines(port: number, publicKeys: string[]): string {
  return publicKeys.map((k) => `[127.0.0.1]:${port} ${k.split(/\s+/).slice(0, 2).join(' ')}\n`).join('');
}

/** Writes a known_hosts file. */
export async function writeKnownHosts(file: string, port: number, publicKeys: string[]): Promise<void> {
  await writeFile(file, knownHostsLines(port, publicKeys));
}

/** Result of one ssh command; code 255 is ssh's own failure (connection, host key, authentication). */
export interface SshResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** ssh options that make a test independent of ~/.ssh: strict host keys, BatchMode, only the given key. */
export function sshArgs(opts: { port: number; knownHostsFile: string; identity: string }): string[] {
  return [
    '-F',
    '/dev/null',
    '-p',
    String(opts.port),
    '-i',
    opts.identity,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${opts.knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'ConnectTimeout=20',
    '-o',
    'LogLevel=ERROR',
  ];
}

/** Runs one command as `user` on 127.0.0.1:port; never throws for a non-zero exit. */
export async function sshRun(opts: {
  port: number;
  knownHostsFile: string;
  identity: string;
  user: string;
  command: string;
  input?: string;
  timeoutMs?: number;
}): Promise<SshResult> {
  return new Promise((resolve) => {
    const child = execFile(
      'ssh',
      [...sshArgs(opts), `${opts.user}@127.0.0.1`, opts.command],
      { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 255) : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
    child.stdin?.on('error', () => {}); // ssh may exit before reading its input
    child.stdin?.end(opts.input ?? '');
  });
}
