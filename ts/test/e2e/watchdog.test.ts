/**
 * End to end (needs QEMU): the hardware watchdog across the jump (issue 10 (c), docs/watchdog.md). One server with
 * an i6300esb (QEMU `-device i6300esb -action watchdog=reset`, Debian's generic kernel, which has the driver) that
 * may reboot, and the `-generic` test image, whose image.info names i6300esb, so the kexec trigger arms it with
 * nowayout right before `kexec -e`. QMP events say when the watchdog fired.
 *
 * (c) a rescue that hangs before anything is armed or fed (`emergency.test.hang=early`) is reset by the watchdog;
 *     the installed system answers again (new boot id, no rescue marker) and the CLI exits 7 saying why;
 * then, on the installed system that came back: a rescue that boots takes the watchdog over and keeps it fed,
 *     still up, same boot, past twice the watchdog's timeout.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../errors.js';
import { buildTestImage } from '../../test-image/build.js';
import { startCli, targetArgs } from '../lib/cli.js';
import { imageWithParams } from '../lib/image-variant.js';
import { defaultScenario, qemuAvailable, startServer, type TestServer } from '../lib/server.js';

const skip = (await qemuAvailable()) ? false : 'needs qemu-system-x86_64 (installed by .ci/run)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tail = (text: string, lines = 40) => text.split('\n').slice(-lines).join('\n');
const BOOT = 'cat /proc/sys/kernel/random/boot_id; test -e /etc/emergency-rescue && echo rescue-marker || echo installed';

/** Collects QMP events (with the time they arrived) for as long as it stays connected: one client at a time. */
function qmpEvents(socketPath: string): { events: { at: number; event: string; data?: { action?: string } }[]; close: () => void } {
  const events: { at: number; event: string; data?: { action?: string } }[] = [];
  const socket = connect(socketPath);
  socket.setEncoding('utf8');
  let buffer = '';
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const message = JSON.parse(buffer.slice(0, nl)) as { QMP?: unknown; event?: string; data?: { action?: string } };
      buffer = buffer.slice(nl + 1);
      if (message.QMP) socket.write('{"execute":"qmp_capabilities"}\n');
      else if (message.event) events.push({ at: Date.now(), event: message.event, data: message.data });
    }
  });
  socket.on('error', () => {});
  return { events, close: () => socket.destroy() };
}

describe('hardware watchdog across kexec (needs QEMU)', { skip, timeout: 1_200_000 }, () => {
  let image: string;
  let hanging: string;
  let work: string;
  let server: TestServer;
  let qmp: ReturnType<typeof qmpEvents>;
  let timeoutS: number;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'emergency-watchdog-'));
    image = await buildTestImage(undefined, 'x86_64', 'generic');
    hanging = await imageWithParams(image, ['emergency.test.hang=early'], work);
    server = await startServer({ ...defaultScenario(), watchdog: true }, { allowReboot: true, qmp: true, timeoutMs: 300_000 });
    qmp = qmpEvents(server.vm.qmpSocket!);
    const facts = await server.ssh('root', 'cat /sys/class/watchdog/watchdog0/identity /sys/class/watchdog/watchdog0/timeout');
    assert.equal(facts.code, 0, facts.stderr);
    const [identity, timeout] = facts.stdout.trim().split('\n');
    assert.equal(identity, 'i6300ESB timer');
    timeoutS = Number(timeout);
  });
  after(async () => {
    qmp?.close();
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('(c) a rescue that hangs after kexec -e is reset by the watchdog; the installed system answers, the CLI exits 7', async () => {
    const oldBoot = (await server.ssh('root', BOOT)).stdout.trim().split('\n')[0];
    const cli = startCli(['--yes', '--timeout', '300', '--image', hanging, ...targetArgs(server, 'root')], { timeoutMs: 600_000 });
    let triggeredAt = 0;
    cli.onStderrLine((line) => {
      if (!triggeredAt && /kexec triggered/.test(line)) triggeredAt = Date.now();
    });
    const result = await cli.done;
    const doneAt = Date.now();
    const serial = server.serialLog();
    assert.equal(result.code, ExitCode.NotBack, `expected exit 7:\n${result.stderr}\n--- serial ---\n${tail(serial)}`);
    assert.match(result.stderr, /running its installed system, not the rescue: it rebooted for another reason \(a watchdog reset/);
    const fired = qmp.events.find((e) => e.event === 'WATCHDOG');
    assert.ok(fired, `QEMU reported no WATCHDOG event: ${JSON.stringify(qmp.events)}`);
    assert.equal(fired.data?.action, 'reset');

    const now = await server.ssh('root', BOOT);
    assert.equal(now.code, 0, now.stderr);
    const [bootId, kind] = now.stdout.trim().split('\n');
    assert.notEqual(bootId, oldBoot, 'a new boot');
    assert.equal(kind, 'installed', 'the installed system, not the rescue');
    // On the console, in order: armed on the host, the rescue hung, the installed system booted again.
    assert.match(
      serial,
      new RegExp(
        `emergency-watchdog: watchdog0 \\(i6300esb\\) armed with ${timeoutS} s[\\s\\S]*emergency\\.test\\.hang=early: hanging[\\s\\S]*test-server: server ready`,
      ),
    );
    console.log(
      `# watchdog: kexec trigger → watchdog reset ${((fired.at - triggeredAt) / 1000).toFixed(1)} s (timeout ${timeoutS} s); ` +
        `→ CLI exit 7 (installed system answering) ${((doneAt - triggeredAt) / 1000).toFixed(1)} s`,
    );
  });

  it('a rescue that boots takes the watchdog over and keeps it fed: still up, same boot, past twice its timeout', async () => {
    const resets = qmp.events.filter((e) => e.event === 'WATCHDOG').length;
    const cli = startCli(['--yes', '--timeout', '300', '--image', image, ...targetArgs(server, 'root')], { timeoutMs: 600_000 });
    let triggeredAt = 0;
    cli.onStderrLine((line) => {
      if (!triggeredAt && /kexec triggered/.test(line)) triggeredAt = Date.now();
    });
    const result = await cli.done;
    assert.equal(result.code, ExitCode.Ok, `rescue failed:\n${result.stderr}\n--- serial ---\n${tail(server.serialLog())}`);
    const rescue = await server.ssh('root', BOOT);
    const [rescueBoot, kind] = rescue.stdout.trim().split('\n');
    assert.equal(kind, 'rescue-marker');

    await sleep(Math.max(0, triggeredAt + (2 * timeoutS + 5) * 1000 - Date.now()));
    const later = await server.ssh('root', `${BOOT}; cat /sys/class/watchdog/watchdog0/state`);
    assert.equal(later.code, 0, later.stderr);
    assert.deepEqual(later.stdout.trim().split('\n'), [rescueBoot, 'rescue-marker', 'active'], 'the same rescue boot, its watchdog still running and fed');
    assert.equal(qmp.events.filter((e) => e.event === 'WATCHDOG').length, resets, 'the watchdog did not fire');
    // Confirmed by the CLI, the feeder's magic close cannot stop a watchdog the host locked: it goes on feeding.
    assert.match(
      server.serialLog(),
      /emergency-watchdog: watchdog0 taken over: fed every \d+ s until the rescue is confirmed[\s\S]*emergency-watchdog: watchdog0 cannot be stopped \(nowayout\): fed for as long as the rescue runs/,
    );
    console.log(`# watchdog: the rescue still up ${((Date.now() - triggeredAt) / 1000).toFixed(1)} s after the kexec trigger (timeout ${timeoutS} s)`);
  });
});
