/**
 * QEMU (TCG) virtual machines for tests: direct kernel boot, user-mode NICs with `restrict=on` and hostfwd on
 * 127.0.0.1 only, the serial console in a file. Nothing here knows what runs inside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { ARCHES, type Arch } from '../../test-image/arch.js';

/** One virtio NIC on its own user-mode (slirp) netdev. */
export interface VmNic {
  mac: string;
  /** Host port forwarded to the guest's port 22 on 127.0.0.1 (the ssh NIC); none for the others. */
  sshPort?: number;
  /** slirp's IPv4 network for this netdev (QEMU's default 10.0.2.0/24 when unset). */
  net?: string;
  /** slirp's IPv6 prefix (QEMU's default fec0::/64 when unset). */
  ipv6Net?: string;
  /** Guest connections to addr:port run `cmd` (stdin/stdout = the connection): the one way out with restrict=on. */
  guestfwd?: { addr: string; port: number; cmd: string }[];
  /** QEMU's NIC model (`-device` name); default `virtio-net-pci`. */
  model?: string;
}

/** How to boot one VM. */
export interface VmOptions {
  kernel: string;
  /** One or more files, concatenated (each 4-byte aligned) into the initrd QEMU loads. */
  initrd: string;
  cmdline: string;
  memoryMiB: number;
  nics: VmNic[];
  /** Directory for the serial log and the concatenated initrd. */
  workDir: string;
  /**
   * Let a guest reboot restart the VM (same kernel and initrd: the installed system) instead of ending QEMU
   * (`-no-reboot`, the default). For servers whose rescue may reboot: the fallback reboot, a watchdog.
   */
  allowReboot?: boolean;
  /** A QMP socket in workDir (`qmp.sock`), for `set_link` and reset events. */
  qmp?: boolean;
  /** The emulated machine (x86_64 when unset): `qemu-system-aarch64 -M virt` for aarch64. */
  arch?: Arch;
  /** A raw virtio disk: `file` (made by the caller), optionally writing at most `writeBytesPerSecond` (a dying disk). */
  disk?: VmDisk;
  /**
   * An i6300esb PCI watchdog whose expiry resets the machine (`-action watchdog=reset`, QEMU 7.2's spelling of
   * `-watchdog-action`); a reset restarts the VM only with `allowReboot`, else QEMU exits.
   */
  watchdog?: boolean;
}

/** A raw virtio disk of a VM. */
export interface VmDisk {
  file: string;
  writeBytesPerSecond?: number;
}

/** A running VM. */
export interface Vm {
  readonly pid: number;
  readonly serialLogFile: string;
  /** Everything the guest wrote to its serial console so far. */
  serialLog(): string;
  /** Resolves when the serial log matches, rejects on timeout or if QEMU exits first. */
  waitForSerial(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Whether QEMU is still running. */
  running(): boolean;
  /** Kills QEMU (TERM, then KILL) and waits for it to exit. */
  stop(): Promise<void>;
  /** The QMP socket's path, when started with `qmp`. */
  readonly qmpSocket?: string;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** The `-netdev` value for a NIC: always `restrict=on`, hostfwd bound to 127.0.0.1 only. */
export function netdevArg(id: string, nic: VmNic): string {
  const parts = [`user,id=${id},restrict=on`];
  if (nic.net) parts.push(`net=${nic.net}`);
  if (nic.ipv6Net) parts.push(`ipv6-net=${nic.ipv6Net}`);
  if (nic.sshPort) parts.push(`hostfwd=tcp:127.0.0.1:${nic.sshPort}-:22`);
  for (const f of nic.guestfwd ?? []) {
    if (f.cmd.includes(',')) throw new Error(`a guestfwd command cannot hold a comma: ${f.cmd}`);
    parts.push(`guestfwd=tcp:${f.addr}:${f.port}-cmd:${f.cmd}`);
  }
  return parts.join(',');
}

/**
 * The `-drive` value for a test disk: raw, O_DIRECT on the host (`cache=none`, so the host's page cache does not
 * absorb the writes the throttle is meant to slow), write throttling when asked.
 */
export function driveArg(disk: VmDisk): string {
  const parts = [`file=${disk.file}`, 'format=raw', 'if=none', 'id=disk0', 'cache=none'];
  if (disk.writeBytesPerSecond) parts.push(`throttling.bps-write=${disk.writeBytesPerSecond}`);
  return parts.join(',');
}

/** The full QEMU argument list (pure, for tests and for printing a reproducible command). */
export function qemuArgs(opts: VmOptions, serialLog: string): string[] {
  const { machine, cpu, accel } = ARCHES[opts.arch ?? 'x86_64'].qemu;
  const args = [...machine, '-accel', accel, '-cpu', cpu, '-smp', '1', '-m', String(opts.memoryMiB)];
  args.push('-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none');
  if (!opts.allowReboot) args.push('-no-reboot');
  if (opts.qmp) args.push('-qmp', `unix:${join(opts.workDir, 'qmp.sock')},server=on,wait=off`);
  args.push('-serial', `file:${serialLog}`);
  args.push('-kernel', opts.kernel, '-initrd', opts.initrd, '-append', opts.cmdline);
  opts.nics.forEach((nic, i) => {
    args.push('-netdev', netdevArg(`n${i}`, nic), '-device', `${nic.model ?? 'virtio-net-pci'},netdev=n${i},mac=${nic.mac}`);
  });
  if (opts.disk) args.push('-drive', driveArg(opts.disk), '-device', 'virtio-blk-pci,drive=disk0');
  if (opts.watchdog) args.push('-device', 'i6300esb', '-action', 'watchdog=reset');
  return args;
}

/** Starts QEMU and returns at once; wait for the guest with waitForSerial or waitForSsh. */
export function startVm(opts: VmOptions): Vm {
  const logFile = join(opts.workDir, 'serial.log');
  const child: ChildProcess = spawn(ARCHES[opts.arch ?? 'x86_64'].qemu.binary, qemuArgs(opts, logFile), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  let exited: number | null | undefined;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', (code, signal) => ((exited = code ?? (signal ? -1 : null)), resolve())));
  child.once('error', (e) => ((stderr += String(e)), (exited = -1)));
  const read = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  return {
    pid: child.pid ?? -1,
    serialLogFile: logFile,
    qmpSocket: opts.qmp ? join(opts.workDir, 'qmp.sock') : undefined,
    serialLog: read,
    running: () => exited === undefined,
    async waitForSerial(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = read().match(pattern);
        if (m) return m;
        if (exited !== undefined) throw new Error(`QEMU exited (${exited}) before the console showed ${pattern}: ${stderr.trim()}\n${tail(read())}`);
        if (Date.now() > deadline) throw new Error(`the console did not show ${pattern} within ${timeoutMs} ms\n${tail(read())}`);
        await delay(100);
      }
    },
    async stop() {
      if (exited !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

/** Polls until something on 127.0.0.1:port sends an SSH banner (slirp accepts connections before the guest does). */
export async function waitForSsh(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await sshBannerSeen(port)) return Date.now() - started;
    if (!alive()) throw new Error(`the VM exited before sshd answered on port ${port}`);
    if (Date.now() - started > timeoutMs) throw new Error(`no sshd answered on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await delay(250);
  }
}

/** Whether something on 127.0.0.1:port sends an SSH banner within `timeoutMs`. */
export function sshBannerSeen(port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('data', (d) => {
      data += d;
      if (data.startsWith('SSH-')) done(true);
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(data.startsWith('SSH-')));
  });
}

function tail(text: string, lines = 30): string {
  return text.split('\n').slice(-lines).join('\n');
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Concatenates initrd parts (compressed or not), padding each to 4 bytes as the kernel requires between archives. */
export function joinInitrd(parts: Buffer[]): Buffer {
  const out: Buffer[] = [];
  for (const part of parts) out.push(part, Buffer.alloc((4 - (part.length % 4)) % 4));
  return Buffer.concat(out);
}

/**
 * Runs QMP commands on a VM's socket, in order, on one connection (after the capabilities handshake); resolves
 * with their `return` values, rejects on an error answer. Events in between are ignored.
 */
export function qmp(socketPath: string, commands: { execute: string; arguments?: Record<string, unknown> }[], timeoutMs = 10_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    const queue = [{ execute: 'qmp_capabilities' }, ...commands];
    const results: unknown[] = [];
    let buffer = '';
    let greeted = false;
    const timer = setTimeout(() => finish(new Error(`QMP on ${socketPath} did not answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(results.slice(1));
    };
    const next = () => {
      const command = queue.shift();
      if (!command) return finish();
      socket.write(`${JSON.stringify(command)}\n`);
    };
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (!line) continue;
        const message = JSON.parse(line) as { QMP?: unknown; return?: unknown; error?: { desc: string }; event?: string };
        if (message.QMP && !greeted) {
          greeted = true;
          next();
        } else if (message.error) {
          finish(new Error(`QMP: ${message.error.desc}`));
        } else if ('return' in message) {
          results.push(message.return);
          next();
        }
      }
    });
    socket.on('error', (e) => finish(e));
  });
}
