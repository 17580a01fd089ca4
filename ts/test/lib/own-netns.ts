/**
 * Runs a test file in a network namespace of its own, so one URL means the same server to the operator's side
 * and, through QEMU's guestfwd, to the test server: the namespace's loopback also holds the guestfwd address.
 * QEMU, its hostfwd, ssh and the CLI all live in there; nothing reaches any other address (no other interface).
 *
 *   const ns = await ownNetns(import.meta.url, ['10.0.2.100']);
 *   if (ns === 'parent') return;   // the file ran again inside; its exit code is this process's
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MARK = 'EMERGENCY_OWN_NETNS';

/** Why the namespace cannot be made here, or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.env[MARK] === '1') return undefined;
  if (process.getuid?.() !== 0) return 'needs root for a network namespace of its own (unshare -n)';
  if (spawnSync('unshare', ['-n', 'true']).status !== 0) return 'unshare -n does not work here';
  return undefined;
}

/**
 * In the parent: runs the file again under `unshare -n` (test runner flags, env and stdout inherited, so the
 * runner reads the child's results) and returns 'parent'. In the child: brings lo up with `addresses` and
 * returns 'inside'. `prepare` runs in the parent first, with the network (downloads, image builds).
 */
export async function ownNetns(moduleUrl: string, addresses: string[], prepare: () => Promise<void> = async () => {}): Promise<'inside' | 'parent'> {
  if (process.env[MARK] === '1') {
    for (const args of [['link', 'set', 'lo', 'up'], ...addresses.map((a) => ['addr', 'add', `${a}/32`, 'dev', 'lo'])]) {
      const r = spawnSync('ip', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed in the test's namespace: ${r.stderr}`);
    }
    return 'inside';
  }
  await prepare();
  const args = [...process.execArgv, fileURLToPath(moduleUrl), ...process.argv.slice(2)];
  const child = spawnSync('unshare', ['-n', '--', process.execPath, ...args], { stdio: 'inherit', env: { ...process.env, [MARK]: '1' } });
  process.exitCode = child.status ?? 1;
  return 'parent';
}
