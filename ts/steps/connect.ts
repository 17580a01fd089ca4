/** Step 1: one ControlMaster connection, authenticated once, reused by every later step. */
import type { Operation } from '../operation.js';

export async function connect(op: Operation): Promise<void> {
  await op.remote.connect(op.options.connectTimeout);
  op.roundTrips++;
  op.remote.become = op.remote.loginUser === 'root' ? 'root' : 'sudo';
  op.ui.info(`connected to ${op.options.destination} as ${op.remote.loginUser}`);
}
