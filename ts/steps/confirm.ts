/** Before the point of no return: show what will happen and ask, unless --yes. */
import type { PreflightFacts } from '../boundary/preflight.js';
import { EmergencyError, ExitCode } from '../errors.js';
import type { Image } from '../image.js';
import type { Ui } from '../ui.js';

/** What the operator is shown before saying yes. */
export interface Confirmation {
  destination: string;
  facts: Pick<PreflightFacts, 'hostname' | 'arch' | 'kernel'>;
  image: Pick<Image, 'name'>;
  /** The plan and keys (describeRescue). */
  rescue: string;
  yes: boolean;
}

export async function confirm(ui: Ui, c: Confirmation): Promise<void> {
  ui.out(`Host ${c.facts.hostname} (${c.destination}): ${c.facts.arch}, Linux ${c.facts.kernel}`);
  ui.out(`Rescue image: ${c.image.name}`);
  ui.out(c.rescue);
  if (c.yes) return;
  const question = `Kexec ${c.destination} into the rescue system now? The running system stops at once, without a clean shutdown (filesystems are synced first).`;
  if (!(await ui.confirm(question))) {
    throw new EmergencyError('declined: nothing was changed on the host', 'Run again and answer y, or pass --yes.', ExitCode.Declined);
  }
}
