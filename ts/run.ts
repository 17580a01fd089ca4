/**
 * The rescue, top to bottom. Each step is its own module taking the Operation; this list is the whole
 * remote sequence. Round trips before kexec: connect, preflight (+capture), stage, kexec.
 */
import { loadImage } from './image.js';
import type { Operation } from './operation.js';
import { capture, captureWithImageIp } from './steps/capture.js';
import { confirm } from './steps/confirm.js';
import { connect } from './steps/connect.js';
import { kexec } from './steps/kexec.js';
import { describeRescue, plan } from './steps/plan.js';
import { preflight } from './steps/preflight.js';
import { stage, unstage } from './steps/stage.js';
import { waitForRescue } from './steps/wait.js';

/** Runs the whole rescue (or, with --dry-run, steps 1–4). Cleans up the host on any failure before kexec. */
export async function run(op: Operation): Promise<void> {
  const { ui, options } = op;
  if (options.image) op.state.image = await loadImage(options.image);
  try {
    await ui.step('connect', () => connect(op));
    await ui.step('preflight', () => preflight(op));
    await ui.step('capture', () => capture(op));
    await ui.step('plan', () => plan(op));
    if (options.dryRun) {
      ui.out(describeRescue(op));
      ui.info(`dry run: nothing was changed on ${options.destination}; ${op.roundTrips} ssh round trip(s)`);
      return;
    }
    await ui.step('stage', () => stage(op));
    if (op.state.captureDeferred) {
      await ui.step('capture (image ip)', () => captureWithImageIp(op));
      await ui.step('plan', () => plan(op));
    }
    await confirm(op);
    await ui.step('kexec', () => kexec(op));
    ui.info(`${op.roundTrips} ssh round trip(s) before kexec`);
    await ui.step('wait', () => waitForRescue(op));
  } finally {
    if (op.state.stage && !op.state.kexecTriggeredAt) await unstage(op);
    await op.remote.close();
  }
  ui.out(`The rescue system is up: ssh -l root${options.port ? ` -p ${options.port}` : ''} ${options.destination}`);
  if (options.shell) process.exitCode = await op.remote.interactive('root');
}
