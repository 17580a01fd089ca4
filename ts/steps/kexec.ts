/**
 * Step 6, the point of no return: the staged kexec-run.sh packs the host keys (on the host), root's keys
 * and the network script into an extra initrd, loads the rescue system and triggers `kexec -e` detached,
 * so this ssh command returns first.
 */
import { parseKexecFacts } from '../boundary/stage.js';
import { withDeadline } from '../deadline.js';
import { EmergencyError, ExitCode, StageError } from '../errors.js';
import { explainKexecFailure } from '../kexec-failure.js';
import type { Remote } from '../remote.js';
import { parseScriptOutput } from '../sections.js';
import { createTar } from '../tar.js';
import type { Ui } from '../ui.js';

/** Runs the image's own copy of kexec-run.sh (the one the image builder substituted and checksummed). */
const RUN_STAGED_KEXEC = 'image_dir=$1\nshift\nexec sh "$image_dir/kexec-run.sh" "$@"';

/** What the rescue system restores (docs/image-layout.md, "The restore interface"), chosen on this side. */
export interface RestoreData {
  networkScript: string;
  authorizedKeys: string;
  /** restore.env facts about the old system. */
  env: Record<string, string>;
  /** The old system's root, mounts and disks for the login banner (ts/rescue-summary.ts, renderOldSystem). */
  oldSystem: string;
}

/** The restore data as the tar kexec-run.sh reads on its stdin. */
export function restoreTar(data: RestoreData): Buffer {
  return createTar({
    'network.sh': data.networkScript,
    authorized_keys: data.authorizedKeys,
    'restore.env': Object.entries(data.env)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
    'old-system.txt': data.oldSystem,
  });
}

/**
 * How long kexec-run.sh may take: packing the keys and loading from the tmpfs take seconds. Without a deadline a
 * host stuck in its kernel (measured: kexec-tools' own sync() on a dying disk) held this step for good.
 */
export const KEXEC_STEP_DEADLINE_MS = 90_000;

/** Loads the rescue system and triggers the jump; returns when the host confirmed the trigger. */
export async function kexec(
  remote: Remote,
  ui: Ui,
  imageDir: string,
  hostKeyPaths: readonly string[],
  data: RestoreData,
  deadlineMs = KEXEC_STEP_DEADLINE_MS,
): Promise<void> {
  const result = await withDeadline(
    remote.run([{ text: RUN_STAGED_KEXEC, args: [imageDir, ...hostKeyPaths] }], { input: restoreTar(data) }),
    deadlineMs,
    () =>
      new EmergencyError(
        `the kexec step did not finish within ${deadlineMs / 1000} s: kexec-run.sh on ${remote.destination} is stuck, most likely in the kernel (a dying disk, a hung driver)`,
        'The host may still jump into the rescue system, or keep running its old system with the rescue loaded. Wait a minute, then ssh in: ' +
          'the rescue answers with the same host key; on the old system `cat /sys/kernel/kexec_loaded` and `dmesg` say what happened (`kexec -u` unloads it, `umount` the emergency.* tmpfs).',
        ExitCode.NotBack,
      ),
  );
  const output = parseScriptOutput(result.stdout);
  const facts = parseKexecFacts(output);
  if (!facts.kexec_triggered) {
    const cause = output.errors.join('; ') || `kexec-run.sh exited with ${result.code}`;
    // One readable line instead of kexec's raw output (kexec_load prints its whole segment table).
    const kernelSaid = explainKexecFailure(facts.kexec_file_load_error, facts.kexec_load_error);
    throw new StageError(
      `loading the rescue system failed: ${cause}${kernelSaid ? ` (${kernelSaid})` : ''}`,
      'The host keeps running its old system; the staging tmpfs is removed. Fix the cause and run again.',
      result.stderr || undefined,
    );
  }
  ui.info(`rescue system loaded with ${facts.kexec_method}, ${facts.host_keys_packed} host key(s) packed on the host; kexec triggered`);
}
