/**
 * What a refused or interrupted run must leave exactly as it was on a test server, read as root over ssh.
 * rescue.test.ts and faults.test.ts compare one snapshot before and one after.
 */
import type { TestServer } from './server.js';

/**
 * Everything on the host that must not change without a kexec: mounts, stage dirs, kexec state, boot, network.
 * Every entry of the places a stage can go is listed with its metadata (`ls -lA`); the directories' own
 * timestamps are not, because making and removing a stage dir in them touches those and nothing else.
 * sshd's own login records (utmp) are left out: any ssh login, ours or not, touches them.
 */
export const HOST_SNAPSHOT =
  'cat /proc/sys/kernel/random/boot_id; cat /sys/kernel/kexec_loaded; cat /proc/mounts; ls -lA /run /tmp /dev/shm /mnt 2>&1 | grep -v utmp; ip -j addr; ip -j route';

/** Prints one line per staging leftover: a tmpfs of ours, a stage dir, a keeper still running. Nothing when clean. */
export const STAGE_LEFTOVERS =
  "grep ' emergency-stage\\| /run/emergency\\.' /proc/mounts; ls -d /run/emergency.* /dev/shm/emergency.* /tmp/emergency.* /var/tmp/emergency.* 2>/dev/null; " +
  // The keeper is a shell whose argv holds stage.sh's text; the pattern is assembled so this probe does not match itself.
  'k=keeper; k=$k.pid; for p in /proc/[0-9]*; do case $(tr \'\\0\' \' \' <$p/cmdline 2>/dev/null) in *"$k"*) echo "keeper ${p#/proc/}";; esac; done; true';

/** The snapshot as root; throws when the server cannot be read. */
export async function hostSnapshot(server: TestServer): Promise<string> {
  const result = await server.ssh('root', HOST_SNAPSHOT);
  if (result.code !== 0) throw new Error(`cannot snapshot the host: ${result.stderr}`);
  return result.stdout;
}

/** Polls until the host has no staging leftovers (the keeper cleans up asynchronously); returns what is left at the deadline. */
export async function waitForNoStage(server: TestServer, timeoutMs = 20_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await server.ssh('root', STAGE_LEFTOVERS);
    if (result.code !== 0) throw new Error(`cannot read the host: ${result.stderr}`);
    if (!result.stdout.trim() || Date.now() > deadline) return result.stdout.trim();
    await new Promise((r) => setTimeout(r, 250));
  }
}
