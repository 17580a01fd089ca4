/**
 * `startServer(scenario)`: boots a QEMU test server (server-image.ts + the scenario's own cpio) whose host keys
 * and user keys were made before boot, and returns a handle to ssh into it, read its console and stop it.
 *
 *   const server = await startServer();            // the default scenario (defaultScenario())
 *   const { stdout } = await server.ssh('admin', 'sudo -n id -u');
 *   await server.stop();
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeCpio, type CpioEntry } from '../../test-image/cpio.js';
import { ARCHES, type Arch } from '../../test-image/arch.js';
import { freePort, joinInitrd, qmp, startVm, waitForSsh, type Vm, type VmDisk, type VmNic } from './qemu.js';
import { buildServerBase } from './server-image.js';
import {
  defaultScenario,
  renderGroups,
  renderNics,
  renderPasswd,
  renderResolvConf,
  renderSetup,
  renderShadow,
  renderSshdConfig,
  renderSudoers,
  type ServerScenario,
} from './server-scenario.js';
import { makeKey, sshRun, writeKnownHosts, type KeyPair, type SshResult } from './ssh.js';

export { defaultScenario, type ServerScenario } from './server-scenario.js';

const exec = promisify(execFile);

/** A running test server. */
export interface TestServer {
  scenario: ServerScenario;
  /** Host port forwarded to the guest's sshd (127.0.0.1 only). */
  port: number;
  /** known_hosts with every host key of the server for `[127.0.0.1]:port`. */
  knownHostsFile: string;
  /** The server's host keys by type (private key files stay in the harness's temp dir). */
  hostKeys: Record<string, KeyPair>;
  /** Private key path per user (`root` included when the scenario gives root a key). */
  keys: Record<string, string>;
  /** The server's `uname -m`. */
  arch: Arch;
  /** NIC MACs in scenario order. */
  macs: string[];
  /** What the network must look like, from the scenario: per-interface addresses, routes, resolv.conf. */
  expected: Pick<ServerScenario, 'nics' | 'links' | 'routes' | 'nameservers' | 'search' | 'hostname'>;
  /** Milliseconds from QEMU start to sshd's banner. */
  bootToSshMs: number;
  /** The temp dir holding keys, known_hosts and the serial log; removed by stop(). */
  workDir: string;
  vm: Vm;
  /** Runs one command over ssh as `user` with that user's key, BatchMode and strict host key checking. */
  ssh(user: string, command: string, opts?: { input?: string; timeoutMs?: number }): Promise<SshResult>;
  /** The serial console so far. */
  serialLog(): string;
  /** Waits for sshd to answer again (after a kexec, say). */
  waitForSsh(timeoutMs?: number): Promise<number>;
  /** Stops QEMU and removes the temp dir. */
  stop(): Promise<void>;
  /**
   * Sets the link of NIC `index` (scenario order) up or down with QMP `set_link`, as if its cable were pulled;
   * needs `qmp: true`. The state survives a guest reboot.
   */
  setLink(index: number, up: boolean): Promise<void>;
}

/** crypt(3) SHA-512 hash made by the image's static busybox (no openssl or mkpasswd needed). */
async function cryptPassword(busybox: string, password: string): Promise<string> {
  return new Promise((resolve, reject) => {
    // Debian's busybox-static has mkpasswd (not cryptpw); the password goes through stdin, never argv.
    const child = execFile(busybox, ['mkpasswd', '-m', 'sha512'], (error, stdout) => (error ? reject(error) : resolve(String(stdout).trim())));
    child.stdin!.on('error', () => {});
    child.stdin!.end(`${password}\n`);
  });
}

/** Builds the scenario's cpio: everything per-server, appended after the cached base initramfs. */
async function scenarioCpio(s: ServerScenario, hostKeys: Record<string, KeyPair>, userKeys: Record<string, KeyPair>, busybox: string): Promise<Buffer> {
  const hashes = new Map<string, string>();
  for (const u of s.users) {
    const password = u.sudo.kind === 'password' ? u.sudo.password : u.password;
    if (password !== undefined) hashes.set(u.name, await cryptPassword(busybox, password));
  }
  const file = (path: string, data: string | Buffer, mode = 0o644, uid = 0, gid = 0): CpioEntry => ({
    path,
    type: 'file',
    data: Buffer.from(data),
    mode,
    uid,
    gid,
  });
  const dir = (path: string, mode = 0o755, uid = 0, gid = 0): CpioEntry => ({ path, type: 'dir', mode, uid, gid });
  const entries: CpioEntry[] = [
    dir('etc'),
    file('etc/hostname', `${s.hostname}\n`),
    file('etc/hosts', `127.0.0.1 localhost\n127.0.1.1 ${s.hostname}\n::1 localhost\n`),
    file('etc/passwd', renderPasswd(s)),
    file('etc/group', renderGroups(s)),
    file('etc/shadow', renderShadow(s, hashes), 0o640),
    file('etc/sudoers', renderSudoers(s), 0o440),
    file('etc/resolv.conf', renderResolvConf(s)),
    dir('etc/ssh'),
    file('etc/ssh/sshd_config', renderSshdConfig(s)),
    dir('etc/test-server'),
    file('etc/test-server/nics', renderNics(s)),
    file('etc/test-server/setup.sh', renderSetup(s), 0o755),
  ];
  for (const [type, key] of Object.entries(hostKeys)) {
    entries.push(file(`etc/ssh/ssh_host_${type}_key`, await readFile(key.path), 0o600), file(`etc/ssh/ssh_host_${type}_key.pub`, `${key.publicKey}\n`));
  }
  const rootKeys = [...(userKeys.root ? [userKeys.root.publicKey] : []), ...(s.root.extraAuthorizedKeys ?? [])];
  entries.push(dir('root', 0o700), dir('root/.ssh', 0o700), file('root/.ssh/authorized_keys', rootKeys.map((k) => `${k}\n`).join(''), 0o600));
  entries.push(dir('home'));
  for (const u of s.users) {
    const keys = [userKeys[u.name].publicKey, ...(u.extraAuthorizedKeys ?? [])];
    entries.push(
      dir(`home/${u.name}`, 0o755, u.uid, u.uid),
      dir(`home/${u.name}/.ssh`, 0o700, u.uid, u.uid),
      file(`home/${u.name}/.ssh/authorized_keys`, keys.map((k) => `${k}\n`).join(''), 0o600, u.uid, u.uid),
    );
  }
  return writeCpio(entries);
}

/** Boots a test server for `scenario` and waits until its sshd answers. */
export async function startServer(
  scenario: ServerScenario = defaultScenario(),
  opts: { timeoutMs?: number; log?: (line: string) => void; guestfwd?: NonNullable<VmNic['guestfwd']>; allowReboot?: boolean; qmp?: boolean; arch?: Arch } = {},
): Promise<TestServer> {
  const sshNics = scenario.nics.filter((n) => n.ssh);
  if (sshNics.length !== 1) throw new Error(`a scenario needs exactly one NIC with ssh: true, this one has ${sshNics.length}`);
  const arch = opts.arch ?? 'x86_64';
  const base = await buildServerBase(opts.log, arch, scenario.watchdog ? 'generic' : 'cloud');
  const workDir = await mkdtemp(join(tmpdir(), 'emergency-server-'));
  try {
    const hostKeys: Record<string, KeyPair> = {};
    for (const type of scenario.hostKeyTypes) hostKeys[type] = await makeKey(join(workDir, `ssh_host_${type}_key`), type, `root@${scenario.hostname}`);
    const userKeys: Record<string, KeyPair> = {};
    if (scenario.root.key) userKeys.root = await makeKey(join(workDir, 'id_root'), 'ed25519', 'root@test');
    for (const u of scenario.users) userKeys[u.name] = await makeKey(join(workDir, `id_${u.name}`), 'ed25519', `${u.name}@test`);

    const initrd = join(workDir, 'initrd');
    await writeFile(initrd, joinInitrd([await readFile(base.initrd), await scenarioCpio(scenario, hostKeys, userKeys, base.busybox)]));
    let disk: VmDisk | undefined;
    if (scenario.disk) {
      disk = { file: join(workDir, 'disk.raw'), writeBytesPerSecond: scenario.disk.writeBytesPerSecond };
      await writeFile(disk.file, '');
      await truncate(disk.file, scenario.disk.sizeMiB * 1024 * 1024);
    }
    const port = await freePort();
    const knownHostsFile = join(workDir, 'known_hosts');
    await writeKnownHosts(
      knownHostsFile,
      port,
      Object.values(hostKeys).map((k) => k.publicKey),
    );
    const started = Date.now();
    const vm = startVm({
      kernel: base.kernel,
      initrd,
      cmdline: [`console=${ARCHES[arch].serialConsole},115200`, 'panic=-1', 'loglevel=4', ...(scenario.kernelArgs ?? [])].join(' '),
      arch,
      memoryMiB: scenario.memoryMiB,
      nics: scenario.nics.map((n) => ({
        mac: n.mac,
        sshPort: n.ssh ? port : undefined,
        net: n.slirpNet,
        ipv6Net: n.slirpIpv6Net,
        guestfwd: n.ssh ? opts.guestfwd : undefined,
        model: n.model,
      })),
      workDir,
      allowReboot: opts.allowReboot,
      qmp: opts.qmp,
      disk,
      watchdog: scenario.watchdog,
    });
    const wait = async (timeoutMs = opts.timeoutMs ?? 120_000) => {
      try {
        return await waitForSsh(port, timeoutMs, vm.running);
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- serial console (last 40 lines) ---\n${vm.serialLog().split('\n').slice(-40).join('\n')}`);
      }
    };
    try {
      await wait();
    } catch (e) {
      await vm.stop();
      throw e;
    }
    const keys = Object.fromEntries(Object.entries(userKeys).map(([name, k]) => [name, k.path]));
    return {
      scenario,
      arch,
      port,
      knownHostsFile,
      hostKeys,
      keys,
      macs: scenario.nics.map((n) => n.mac),
      expected: {
        nics: scenario.nics,
        links: scenario.links,
        routes: scenario.routes,
        nameservers: scenario.nameservers,
        search: scenario.search,
        hostname: scenario.hostname,
      },
      bootToSshMs: Date.now() - started,
      workDir,
      vm,
      ssh(user, command, o = {}) {
        const identity = keys[user];
        if (!identity) throw new Error(`the scenario has no key for user ${user}`);
        return sshRun({ port, knownHostsFile, identity, user, command, input: o.input, timeoutMs: o.timeoutMs });
      },
      serialLog: () => vm.serialLog(),
      waitForSsh: wait,
      async setLink(index, up) {
        if (!vm.qmpSocket) throw new Error('setLink needs a server started with qmp: true');
        await qmp(vm.qmpSocket, [{ execute: 'set_link', arguments: { name: `n${index}`, up } }]);
      },
      async stop() {
        await vm.stop();
        await rm(workDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await rm(workDir, { recursive: true, force: true });
    throw e;
  }
}

/** Whether QEMU for `arch` (x86_64 when unset) can run here (tests that need it skip otherwise). */
export async function qemuAvailable(arch: Arch = 'x86_64'): Promise<boolean> {
  try {
    await exec(ARCHES[arch].qemu.binary, ['--version']);
    return true;
  } catch {
    return false;
  }
}
