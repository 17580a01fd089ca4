/**
 * The rescue, top to bottom: this list is the whole remote sequence, and the data each step returns is what
 * the next ones take. Round trips before kexec (counted by the Remote): connect, preflight (+capture), stage,
 * kexec; one more on hosts whose network is captured with the image's ip.
 */
import { RESTORE_REPORT } from './boundary/rescue.js';
import { parseUrlProbe } from './boundary/url-probe.js';
import { planFetch, planStream } from './image-fetch.js';
import { downloadForStreaming } from './image-source.js';
import { describeFallback } from './fallback.js';
import { buildImageWithNix, loadImage, type Image } from './image.js';
import { renderAuthorizedKeys, selectAuthorizedKeys } from './keys/authorized-keys.js';
import type { Options, Session } from './operation.js';
import { renderOldSystem, renderRescueSummary, restoreFromAnswer } from './rescue-summary.js';
import { firmwareCandidates } from './preflight/nics.js';
import { describeChecks, judgeHost } from './preflight/verdict.js';
import type { Remote } from './remote.js';
import { loginCommand } from './ssh.js';
import { capture, captureWithImageIp } from './steps/capture.js';
import { checks, NETWORK_CHECKS } from './steps/checks.js';
import { confirm } from './steps/confirm.js';
import { connect } from './steps/connect.js';
import { kexec } from './steps/kexec.js';
import { describeRescue, plan } from './steps/plan.js';
import { preflight } from './steps/preflight.js';
import { releaseStage, stage, unstage } from './steps/stage.js';
import { waitForRescue } from './steps/wait.js';
import type { RunRecorder } from './run-record.js';
import type { Ui } from './ui.js';

/** Runs the whole rescue (or, with --dry-run, up to the checks). Cleans up the host on any failure before kexec. */
export async function run(options: Options, remote: Remote, ui: Ui, session: Session, given?: Image, record?: RunRecorder): Promise<void> {
  try {
    await ui.step('connect', () => connect(remote, ui, options.connectTimeout));
    // The firmware the image's network drivers declare is looked up on the host in the same round trip; an image
    // built by Nix after preflight (no --image) has none to ask about, so nic-firmware then sees no host files.
    const { report, output } = await ui.step('preflight', () => preflight(remote, ui, given?.url?.url, firmwareCandidates(given?.drivers)));
    const { facts, hostKeys } = report;
    record?.setHost({ facts, hostKeys, oldSystem: report.oldSystem });
    const image =
      given ??
      (await ui.step('image', async () => {
        ui.info(`building the image for ${facts.arch} with Nix (${options.flake})`);
        return loadImage(await buildImageWithNix(facts.arch, options.flake));
      }));
    record?.setImage(image);
    const keys = selectAuthorizedKeys(report.authorizedKeys);
    record?.setAuthorizedKeys({ accepted: keys.keys.map((k) => `${k.type} ${k.blob}`), leftOut: keys.leftOut.length });
    const captured = await ui.step('capture', async () => capture(output, ui));
    let network = captured && (await ui.step('plan', () => plan(captured, ui, options.dumpNetwork)));
    const checkInput = {
      facts,
      image,
      hostKeys,
      authorizedKeyCount: keys.keys.length,
      plan: network?.plan,
      capture: captured,
      nics: report.nics,
      hostFirmware: report.hostFirmware,
      routeBack: report.routeBack,
      trustedKeys: report.trustedKeys,
    };
    if (network) record?.setPlan(network.plan);
    // Every check's verdict for the record, refused or not (the checks step throws on a refusal); judging is pure.
    record?.setChecks(judgeHost(checkInput, options.ignorePreflightErrors).results);
    const verdict = await ui.step('checks', async () => checks(checkInput, options.ignorePreflightErrors, ui));
    // A URL image: the host fetches it when it can, else this machine downloads it and streams it.
    const fetchPlan =
      image.url && verdict.stage
        ? planFetch(parseUrlProbe(output), facts.mem_available_kb * 1024, image, {
            beforeKexecBytes: verdict.memory.beforeKexecBytes,
            tmpfsBytes: verdict.stage.tmpfsBytes,
          })
        : undefined;
    if (fetchPlan) {
      ui.info(
        fetchPlan.via === 'host'
          ? `the host fetches the image itself (${fetchPlan.fetcher}, verified with its own ${fetchPlan.shaTool})`
          : `this machine fetches the image: ${fetchPlan.reason}`,
      );
    }
    if (options.dryRun) {
      ui.out(describeChecks(verdict));
      ui.out(describeRescue(network, hostKeys, keys));
      ui.out(describeFallback(options.fallbackReboot, options.timeout, new Date()));
      ui.info(`dry run: nothing was changed on ${options.destination}; ${remote.roundTrips} ssh round trip(s)`);
      record?.setRoundTrips(remote.roundTrips);
      return;
    }
    // The staging check refuses when there is no place, so a verdict that passed has one.
    const place = verdict.stage;
    if (!place) throw new Error('checks passed without a staging place');
    let staging = image;
    if (fetchPlan?.via === 'operator') {
      const fetched = await ui.step('download', () =>
        downloadForStreaming(
          image,
          ui.progress('download', image.tarBytes),
          (t) => ui.info(t),
          (download) => (session.download = download),
        ),
      );
      staging = fetched.image;
    }
    const hostFetch = fetchPlan?.via === 'host' ? fetchPlan : undefined;
    // A streamed tarball is written whole into the tmpfs and hashed there when the host has the memory for it.
    const streamPlan = planStream(facts.mem_available_kb * 1024, staging, { beforeKexecBytes: verdict.memory.beforeKexecBytes, tmpfsBytes: place.tmpfsBytes });
    const staged = await ui.step('stage', () => stage(remote, ui, staging, place, session, hostFetch, streamPlan));
    // Streamed and verified on the host: this machine's copy of a URL image is no longer needed.
    await session.download?.remove();
    session.download = undefined;
    if (!network) {
      const late = await ui.step('capture (image ip)', () => captureWithImageIp(remote, staged.imageDir));
      network = await ui.step('plan', () => plan(late, ui, options.dumpNetwork));
      record?.setPlan(network.plan);
      const lateInput = { ...checkInput, plan: network.plan, capture: late };
      record?.setChecks(judgeHost(lateInput, options.ignorePreflightErrors).results);
      await ui.step('checks (network)', async () => checks(lateInput, options.ignorePreflightErrors, ui, NETWORK_CHECKS));
    }
    await confirm(ui, {
      destination: options.destination,
      facts,
      image,
      rescue: `${describeRescue(network, hostKeys, keys)}\n${describeFallback(options.fallbackReboot, options.timeout, new Date())}`,
      yes: options.yes,
    });
    const hostKeyPaths = hostKeys.filter((k) => k.present && k.pub).map((k) => k.path);
    // Two of the login banner's three inputs (restore.env's hostname, old-system.txt), sent once and kept for the
    // CLI's own copy of the banner; the third is the restore report the wait step reads.
    const bannerData = { hostname: facts.hostname, oldSystem: renderOldSystem(report.oldSystem) };
    await ui.step('kexec', () =>
      kexec(remote, ui, staged.imageDir, hostKeyPaths, {
        networkScript: network.script,
        authorizedKeys: renderAuthorizedKeys(keys),
        env: { hostname: bannerData.hostname, boot_id: facts.boot_id, fallback_reboot_seconds: String(options.fallbackReboot) },
        oldSystem: bannerData.oldSystem,
      }),
    );
    const triggeredAt = Date.now();
    session.kexecTriggeredAt = triggeredAt;
    releaseStage(session);
    ui.info(`${remote.roundTrips} ssh round trip(s) before kexec`);
    record?.setRoundTrips(remote.roundTrips);
    const rescue = await ui.step('wait', () =>
      waitForRescue(remote, ui, { oldBootId: facts.boot_id, triggeredAt, timeoutSeconds: options.timeout, fallbackReboot: options.fallbackReboot }),
    );
    if (rescue.answer) record?.setRestoreReport({ fallback: rescue.answer.fallback, report: rescue.answer.report, problem: rescue.answer.reportProblem });
    // What the login banner says, rendered from the same data: what was sent, and the report the rescue wrote.
    const summary = renderRescueSummary({ ...bannerData, restore: restoreFromAnswer(rescue.answer, RESTORE_REPORT) });
    ui.out(summary);
    record?.setRescueSummary(summary);
  } finally {
    if (session.stage && !session.kexecTriggeredAt) await unstage(session);
    await remote.close();
    await session.download?.remove();
  }
  const target = {
    destination: options.destination,
    port: options.port,
    identity: options.identity,
    options: options.sshOptions,
    configFile: options.sshConfig,
  };
  ui.out(`The rescue system is up: ${loginCommand(target, 'root')}`);
  if (options.shell) process.exitCode = await remote.interactive('root');
}
