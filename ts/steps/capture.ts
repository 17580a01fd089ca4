/**
 * Step 3: the network state, from the output preflight already brought back. On a host whose `ip` cannot
 * print JSON (busybox-only), capture waits until the image is staged and runs with the image's own ip.
 */
import { captureNeedsImageIp, parseNetworkCapture } from '../network/capture.js';
import type { Operation } from '../operation.js';
import { script } from '../scripts.js';
import { parseScriptOutput } from '../sections.js';

export async function capture(op: Operation): Promise<void> {
  const output = op.state.preflight!;
  if (captureNeedsImageIp(output)) {
    op.state.captureDeferred = true;
    op.ui.info("the host's ip cannot print JSON (no iproute2): the network is captured with the image's ip after staging");
    return;
  }
  op.state.capture = parseNetworkCapture(output);
}

/** The deferred capture, run on the host with the staged image's ip. */
export async function captureWithImageIp(op: Operation): Promise<void> {
  const { imageDir } = op.state.stage!;
  const result = await op.remote.run([script('capture-network.sh', 'sh', `${imageDir}/run-tool.sh`, 'ip')]);
  op.state.capture = parseNetworkCapture(parseScriptOutput(result.stdout));
  op.state.captureDeferred = false;
}
