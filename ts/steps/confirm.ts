/** Before the point of no return: show what will happen and ask, unless --yes. */
import { EmergencyError, ExitCode } from '../errors.js';
import type { Operation } from '../operation.js';
import { describeRescue } from './plan.js';

export async function confirm(op: Operation): Promise<void> {
  const facts = op.state.facts!;
  op.ui.out(`Host ${facts.hostname} (${op.options.destination}): ${facts.arch}, Linux ${facts.kernel}`);
  op.ui.out(`Rescue image: ${op.state.image!.name}`);
  op.ui.out(describeRescue(op));
  if (op.options.yes) return;
  const question =
    `Kexec ${op.options.destination} into the rescue system now? The running system stops at once, without a clean shutdown ` +
    '(filesystems are synced first).';
  if (!(await op.ui.confirm(question))) {
    throw new EmergencyError('declined: nothing was changed on the host', 'Run again and answer y, or pass --yes.', ExitCode.Declined);
  }
}
