/**
 * Step 6, the point of no return: the staged kexec-run.sh packs the host keys (on the host), root's keys
 * and the network script into an extra initrd, loads the rescue system and triggers `kexec -e` detached,
 * so this ssh command returns first.
 */
import { StageError } from '../errors.js';
import { parseKeyValues } from '../image.js';
import { renderAuthorizedKeys } from '../keys/authorized-keys.js';
import type { Operation } from '../operation.js';
import { createTar } from '../tar.js';
import { releaseStage } from './stage.js';

/** Runs the image's own copy of kexec-run.sh (the one the image builder substituted and checksummed). */
const RUN_STAGED_KEXEC = 'image_dir=$1\nshift\nexec sh "$image_dir/kexec-run.sh" "$@"';

/** The restore data for the extra initrd (docs/image-layout.md, "The restore interface"). */
export function restoreData(op: Operation): Buffer {
  const facts = op.state.facts!;
  return createTar({
    'network.sh': op.state.restoreScript!,
    authorized_keys: renderAuthorizedKeys(op.state.keys!),
    'restore.env': `hostname=${facts.hostname}\nboot_id=${facts.boot_id}\n`,
  });
}

export async function kexec(op: Operation): Promise<void> {
  const stage = op.state.stage!;
  const hostKeys = op.state.hostKeys!.filter((k) => k.present && k.pub).map((k) => k.path);
  op.roundTrips++;
  const result = await op.remote.run([{ text: RUN_STAGED_KEXEC, args: [stage.imageDir, ...hostKeys] }], { input: restoreData(op) });
  const facts = parseKeyValues(result.stdout);
  if (facts.kexec_triggered !== '1') {
    const cause = facts.kexec_error ?? `kexec-run.sh exited with ${result.code}`;
    const kernelSaid = [facts.kexec_file_load_error, facts.kexec_load_error].filter(Boolean).join(' / ');
    throw new StageError(
      `loading the rescue system failed: ${cause}${kernelSaid ? ` (kernel: ${kernelSaid})` : ''}`,
      'The host keeps running its old system; the staging tmpfs is removed. Fix the cause and run again.',
      result.stderr,
    );
  }
  op.state.kexecTriggeredAt = Date.now();
  releaseStage(op);
  op.ui.info(`rescue system loaded with ${facts.kexec_method}, ${facts.host_keys_packed} host key(s) packed on the host; kexec triggered`);
}
