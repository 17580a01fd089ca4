/**
 * Step 3: the network state, from the output preflight already brought back. On a host whose `ip` cannot
 * print JSON (busybox-only), capture waits until the image is staged and runs with the image's own ip.
 */
import { captureNeedsImageIp, parseNetworkCapture, type NetworkCapture } from '../network/capture.js';
import type { Remote } from '../remote.js';
import { script } from '../scripts.js';
import { parseScriptOutput, type ScriptOutput } from '../sections.js';
import type { Ui } from '../ui.js';

/** The capture, or undefined when it must wait for the image's ip (captureWithImageIp after staging). */
export function capture(output: ScriptOutput, ui: Ui): NetworkCapture | undefined {
  if (captureNeedsImageIp(output)) {
    ui.info("the host's ip cannot print JSON (no iproute2): the network is captured with the image's ip after staging");
    return undefined;
  }
  return parseNetworkCapture(output);
}

/** The deferred capture, run on the host with the staged image's ip through its run-tool.sh (one more round trip). */
export async function captureWithImageIp(remote: Remote, imageDir: string): Promise<NetworkCapture> {
  const result = await remote.run([script('capture-network.sh', 'sh', `${imageDir}/run-tool.sh`, 'ip')]);
  return parseNetworkCapture(parseScriptOutput(result.stdout));
}
