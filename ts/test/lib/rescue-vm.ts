/**
 * Boots an image's rescue system straight in QEMU (no host, no kexec): the image's kernel, initrd and cmdline
 * plus a hand-made restore cpio as kexec-run.sh would append it (docs/image-layout.md, "The restore interface").
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeCpio, type CpioEntry } from '../../test-image/cpio.js';
import { parseArch, type Arch } from '../../test-image/arch.js';
import { joinInitrd, freePort, startVm, waitForSsh, type Vm } from './qemu.js';
import { makeKey, sshRun, writeKnownHosts, type KeyPair, type SshResult } from './ssh.js';

const exec = promisify(execFile);

/** What the restore cpio carries. */
export interface RescueData {
  /** Private host keys (each with its .pub beside it), packed as /emergency/host-keys/ssh_host_TYPE_key. */
  hostKeys: { type: string; key: KeyPair }[];
  authorizedKeys: string;
  networkSh: string;
  restoreEnv: string;
}

/** The restore cpio kexec-run.sh would append (pure). */
export async function restoreCpio(data: RescueData): Promise<Buffer> {
  const entries: CpioEntry[] = [
    { path: 'emergency', type: 'dir', mode: 0o700 },
    { path: 'emergency/host-keys', type: 'dir', mode: 0o700 },
  ];
  for (const { type, key } of data.hostKeys) {
    entries.push({ path: `emergency/host-keys/ssh_host_${type}_key`, type: 'file', mode: 0o600, data: await readFile(key.path) });
    entries.push({ path: `emergency/host-keys/ssh_host_${type}_key.pub`, type: 'file', mode: 0o644, data: Buffer.from(`${key.publicKey}\n`) });
  }
  entries.push({ path: 'emergency/authorized_keys', type: 'file', mode: 0o600, data: Buffer.from(data.authorizedKeys) });
  entries.push({ path: 'emergency/network.sh', type: 'file', mode: 0o755, data: Buffer.from(data.networkSh) });
  entries.push({ path: 'emergency/restore.env', type: 'file', mode: 0o644, data: Buffer.from(data.restoreEnv) });
  return writeCpio(entries);
}

/** The `arch` of an unpacked image's image.info: the machine QEMU emulates for it. */
async function imageArch(image: string): Promise<Arch> {
  const arch = /^arch=(\S+)$/m.exec(await readFile(join(image, 'image.info'), 'utf8'))?.[1];
  return parseArch(arch);
}

/** A network.sh of the planner's shape for one NIC: find it by MAC, give it slirp's default guest address and route. */
export function simpleNetworkSh(mac: string): string {
  return [
    '#!/bin/sh',
    `for d in /sys/class/net/*; do [ -f "$d/address" ] && [ "$(cat "$d/address")" = "${mac}" ] && dev=\${d##*/}; done`,
    'ip link set "$dev" up',
    'ip addr add 10.0.2.15/24 dev "$dev"',
    'ip route add default via 10.0.2.2 dev "$dev"',
    '',
  ].join('\n');
}

/** A rescue system booted directly, with keys made for it. */
export interface RescueVm {
  vm: Vm;
  port: number;
  knownHostsFile: string;
  rootKey: KeyPair;
  hostKeys: KeyPair[];
  /** Milliseconds from QEMU start to an SSH banner. */
  bootToSshMs: number;
  ssh(command: string): Promise<SshResult>;
  stop(): Promise<void>;
}

/** Boots the rescue system of `imageTar` with fresh host and root keys and a network.sh for one NIC. */
export async function bootRescueImage(
  imageTar: string,
  opts: {
    mac?: string;
    memoryMiB?: number;
    timeoutMs?: number /** Extra restore.env lines, e.g. `fallback_reboot_seconds=40`. */;
    restoreEnv?: string;
    arch?: Arch;
  } = {},
): Promise<RescueVm> {
  const work = await mkdtemp(join(tmpdir(), 'emergency-rescue-vm-'));
  try {
    await exec('tar', ['-xf', imageTar, '-C', work]);
    const image = join(work, 'emergency-image');
    const hostKeys = [await makeKey(join(work, 'host_ed25519'), 'ed25519', 'host'), await makeKey(join(work, 'host_ecdsa'), 'ecdsa', 'host')];
    const rootKey = await makeKey(join(work, 'root_key'), 'ed25519', 'root@test');
    const mac = opts.mac ?? '52:54:00:12:34:56';
    const networkSh = simpleNetworkSh(mac);
    const extra = await restoreCpio({
      hostKeys: [
        { type: 'ed25519', key: hostKeys[0] },
        { type: 'ecdsa', key: hostKeys[1] },
      ],
      authorizedKeys: `${rootKey.publicKey}\n`,
      networkSh,
      restoreEnv: `hostname=rescued-test\nboot_id=00000000-0000-0000-0000-000000000000\n${opts.restoreEnv ?? ''}`,
    });
    const initrd = join(work, 'initrd.full');
    await writeFile(initrd, joinInitrd([await readFile(join(image, 'initrd')), extra]));
    const port = await freePort();
    const knownHostsFile = join(work, 'known_hosts');
    await writeKnownHosts(
      knownHostsFile,
      port,
      hostKeys.map((k) => k.publicKey),
    );
    const cmdline = (await readFile(join(image, 'cmdline'), 'utf8')).trim();
    const started = Date.now();
    const vm = startVm({
      kernel: join(image, 'kernel'),
      initrd,
      cmdline,
      memoryMiB: opts.memoryMiB ?? 512,
      nics: [{ mac, sshPort: port }],
      workDir: work,
      arch: opts.arch ?? (await imageArch(image)),
    });
    try {
      await waitForSsh(port, opts.timeoutMs ?? 120_000, vm.running);
    } catch (e) {
      await vm.stop();
      throw new Error(`${(e as Error).message}\n--- serial console ---\n${vm.serialLog().split('\n').slice(-40).join('\n')}`);
    }
    const bootToSshMs = Date.now() - started;
    return {
      vm,
      port,
      knownHostsFile,
      rootKey,
      hostKeys,
      bootToSshMs,
      ssh: (command) => sshRun({ port, knownHostsFile, identity: rootKey.path, user: 'root', command }),
      async stop() {
        await vm.stop();
        await rm(work, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await rm(work, { recursive: true, force: true });
    throw e;
  }
}
