/** Step 1: one ControlMaster connection, authenticated once, reused by every later step. */
import type { Remote } from '../remote.js';
import type { Ui } from '../ui.js';

export async function connect(remote: Remote, ui: Ui, connectTimeoutSeconds: number): Promise<void> {
  await remote.connect(connectTimeoutSeconds);
  remote.become = remote.loginUser === 'root' ? 'root' : 'sudo';
  ui.info(`connected to ${remote.destination} as ${remote.loginUser}`);
}
