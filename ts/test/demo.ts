/**
 * `npm run demo`: watch emergency rescue a throwaway QEMU server (TCG, no network beyond 127.0.0.1) with the
 * Nix-free test image, then look at the rescued system. Nothing outside the VM is touched.
 * `npm run demo -- --arch aarch64` does the same with an aarch64 server (qemu-system-aarch64 -M virt).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ARCHES, archFromArgv } from '../test-image/arch.js';
import { buildTestImage } from '../test-image/build.js';
import { targetArgs } from './lib/cli.js';
import { networkDifferences, parseNetworkState, READ_NETWORK } from './lib/network-state.js';
import { defaultScenario, qemuAvailable, startServer } from './lib/server.js';

const say = (text: string) => process.stdout.write(`\n\x1b[1m# ${text}\x1b[0m\n`);

async function main(): Promise<void> {
  const arch = archFromArgv(process.argv.slice(2));
  const qemu = ARCHES[arch].qemu.binary;
  if (!(await qemuAvailable(arch))) {
    const pkg = arch === 'aarch64' ? 'qemu-system-arm' : 'qemu-system-x86';
    process.stderr.write(`demo: ${qemu} is missing; install it (apt-get install ${pkg}) and run again\n`);
    process.exitCode = 2;
    return;
  }
  say(`Building the Nix-free ${arch} test image from Debian packages (cached after the first run)`);
  const image = await buildTestImage((line) => process.stdout.write(`  ${line}\n`), arch);
  say(`Booting a throwaway ${arch} server in QEMU (${qemu}): two NICs renamed ens3/enp0s4, IPv4 + IPv6, a sudo user "admin"`);
  const server = await startServer(defaultScenario(), { arch, timeoutMs: 240_000 });
  try {
    process.stdout.write(`  sshd answers on 127.0.0.1:${server.port} after ${(server.bootToSshMs / 1000).toFixed(1)} s\n`);
    const before = await server.ssh('root', 'ip -br addr; ip route; cat /etc/resolv.conf');
    process.stdout.write(before.stdout.replace(/^/gm, '  '));
    say('Running: emergency --image … admin@127.0.0.1 (as a sudo user, with strict host key checking)');
    const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
    const interactive = process.stdin.isTTY ? [] : ['--yes'];
    const run = spawnSync(process.execPath, [cli, ...interactive, '--image', image, ...targetArgs(server, 'admin')], { stdio: 'inherit' });
    if (run.status !== 0) {
      process.stdout.write(
        `\nemergency exited with ${run.status}; the serial console of the VM ends with:\n${server.serialLog().split('\n').slice(-20).join('\n')}\n`,
      );
      process.exitCode = run.status ?? 1;
      return;
    }
    say('On the rescue system (same host key, same known_hosts entry):');
    const after = await server.ssh('root', 'cat /proc/cmdline; ip -br addr; ip route; ip -6 route; cat /etc/resolv.conf');
    process.stdout.write(after.stdout.replace(/^/gm, '  '));
    const differences = networkDifferences(server.expected, parseNetworkState((await server.ssh('root', READ_NETWORK)).stdout));
    say(differences.length ? `Not restored: ${differences.join('; ')}` : 'Every address, route and nameserver is back on the NIC with the same MAC.');
  } finally {
    await server.stop();
  }
}

await main();
