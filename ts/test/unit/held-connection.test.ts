/**
 * The banner check's connection handed to the probe's ssh (ts/held-connection.ts, ts/ssh-relay.ts): a loopback
 * server stands in for sshd (a banner, then a trivial protocol: it answers each line upper-cased), and the test
 * plays ssh on the relay's stdin and stdout, or runs the real `ssh` client with the ProxyCommand the CLI builds.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HeldConnection } from '../../held-connection.js';
import { relayProxyCommand } from '../../ssh.js';
import { sshBanner } from '../../steps/wait.js';

const RELAY = fileURLToPath(new URL('../../ssh-relay.js', import.meta.url));
// A quote, a space and a percent sign in the path: the ProxyCommand must quote them for the shell and for ssh.
const dir = mkdtempSync(join(tmpdir(), "emergency-relay it's 100%-"));
// ssh_config quoting and % tokens apply to UserKnownHostsFile too: the test's known_hosts lives in a plain path.
const plainDir = mkdtempSync(join(tmpdir(), 'emergency-relay-'));
after(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(plainDir, { recursive: true, force: true });
});
let sockets = 0;
const socketPath = () => join(dir, `s${++sockets}`);

/** What the fake sshd saw: each connection's bytes, and a promise per connection that resolves when it ends. */
interface FakeSshd {
  server: Server;
  port: number;
  connections: { received: Buffer[]; socket: Socket; ended: Promise<void> }[];
}

/**
 * A loopback "sshd": sends `greeting` in the given pieces (a line before the banner, the banner, then the start of
 * its next packet, as a real sshd may), then answers every line it receives upper-cased; ends when the client does.
 * With `closeOnceReceived`, it answers nothing and closes the connection once what it received matches.
 */
async function fakeSshd(greeting = ['hello\r\n', 'SSH-2.0-fake_1.0\r\n', 'KEXINIT-bytes'], closeOnceReceived?: RegExp): Promise<FakeSshd> {
  const connections: FakeSshd['connections'] = [];
  const server = createServer((socket) => {
    const received: Buffer[] = [];
    const ended = new Promise<void>((resolve) => socket.on('end', resolve).on('close', resolve));
    connections.push({ received, socket, ended });
    socket.on('error', () => {});
    for (const piece of greeting) socket.write(piece);
    let line = '';
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      if (closeOnceReceived) {
        if (closeOnceReceived.test(Buffer.concat(received).toString('latin1'))) socket.end();
        return;
      }
      line += chunk.toString('latin1');
      for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
        socket.write(line.slice(0, i + 1).toUpperCase());
        line = line.slice(i + 1);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, connections };
}

const stop = (sshd: FakeSshd) => {
  for (const c of sshd.connections) c.socket.destroy();
  return new Promise((r) => sshd.server.close(r));
};

/** Holds a banner connection to `sshd` and serves it; returns it and a relay started as ssh would start it. */
async function relayed(sshd: FakeSshd): Promise<{ held: HeldConnection; relay: ChildProcessWithoutNullStreams; exited: Promise<number | null>; path: string }> {
  const held = await sshBanner({ host: '127.0.0.1', port: sshd.port }, 2000);
  assert.ok(held, 'the banner is seen');
  const path = socketPath();
  await held.serve(path);
  const relay = spawn(process.execPath, [RELAY, path]);
  const exited = new Promise<number | null>((resolve) => relay.on('exit', resolve));
  return { held, relay, exited, path };
}

/** Everything the relay writes to stdout until `text` has arrived (or it ends). */
function readUntil(relay: ChildProcessWithoutNullStreams, text: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (out.includes(text)) done();
    };
    const done = () => {
      relay.stdout.off('data', onData).off('end', done);
      resolve(out);
    };
    relay.stdout.on('data', onData).on('end', done);
  });
}

describe('a held banner connection through the relay', () => {
  it('replays what the check read once, in order, then pipes both ways; ssh closing its side ends it all', async () => {
    const sshd = await fakeSshd();
    try {
      const { held, relay, exited } = await relayed(sshd);
      // Everything the server sent, in one piece each and no piece twice; its answer to our line comes after.
      relay.stdin.write('ping\n');
      const out = await readUntil(relay, 'PING\n');
      assert.equal(out, 'hello\r\nSSH-2.0-fake_1.0\r\nKEXINIT-bytesPING\n');
      assert.equal(held.handedOver, true);
      assert.equal(sshd.connections.length, 1, 'the probe used the check connection, no second one');
      relay.stdin.end();
      await sshd.connections[0].ended;
      assert.equal(Buffer.concat(sshd.connections[0].received).toString(), 'ping\n', 'sshd got exactly what ssh wrote');
      assert.equal(await exited, 0, 'the relay exits once both sides are done');
      held.close();
    } finally {
      await stop(sshd);
    }
  });

  it('sshd hanging up ends the relay: ssh sees the end of its stream', async () => {
    const sshd = await fakeSshd();
    try {
      const { held, relay, exited } = await relayed(sshd);
      await readUntil(relay, 'KEXINIT-bytes');
      const ended = new Promise((r) => relay.stdout.on('end', r));
      sshd.connections[0].socket.destroy();
      await ended;
      assert.equal(await exited, 0);
      assert.equal(held.alive, false);
      held.close();
    } finally {
      await stop(sshd);
    }
  });

  it('the CLI closing its side (the probe is over) ends the relay although ssh still holds its stdin', async () => {
    const sshd = await fakeSshd();
    try {
      const { held, relay, exited } = await relayed(sshd);
      await readUntil(relay, 'KEXINIT-bytes');
      held.close();
      assert.equal(await exited, 0);
      await sshd.connections[0].ended;
    } finally {
      await stop(sshd);
    }
  });

  it('serves one relay only, and the socket file is gone once closed', async () => {
    const sshd = await fakeSshd();
    try {
      const { held, relay, path } = await relayed(sshd);
      await readUntil(relay, 'KEXINIT-bytes');
      const second = connect(path);
      const error = await new Promise<NodeJS.ErrnoException>((resolve) => second.on('error', resolve));
      assert.match(String(error.code), /ENOENT|ECONNREFUSED/);
      held.close();
    } finally {
      await stop(sshd);
    }
  });

  it('a connection sshd closed after its banner is not alive, and nothing is served from it', async () => {
    const sshd = await fakeSshd();
    try {
      const held = await sshBanner({ host: '127.0.0.1', port: sshd.port }, 2000);
      assert.ok(held);
      sshd.connections[0].socket.destroy();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(held.alive, false);
      held.close();
    } finally {
      await stop(sshd);
    }
  });

  it('the relay with no CLI socket to join fails (and ssh with it), it does not hang', () => {
    const result = spawnSync(process.execPath, [RELAY, join(dir, 'absent')], { encoding: 'utf8', input: '', timeout: 10_000 });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /emergency ssh-relay: connect ENOENT/);
  });
});

describe('the real ssh client over the ProxyCommand the CLI builds', () => {
  it('sends its banner to sshd on the held connection, after the replayed one, then its key exchange', async () => {
    // This fake sshd sends only a banner and closes once ssh's key exchange arrived, so ssh fails after it sent
    // its banner and KEXINIT: the quoting reached the relay and the bytes went through the one connection. (An
    // sshd that answers with garbage instead let ssh exit, and kill the relay, before KEXINIT had left it.)
    const sshd = await fakeSshd(['SSH-2.0-fake_1.0\r\n'], /^SSH-2\.0-OpenSSH_[^\r\n]+\r\n.+kex/s);
    try {
      const held = await sshBanner({ host: '127.0.0.1', port: sshd.port }, 2000);
      assert.ok(held);
      const path = socketPath();
      await held.serve(path);
      const knownHosts = join(plainDir, 'known_hosts');
      writeFileSync(knownHosts, '');
      // Not spawnSync: this process serves the held connection, its event loop must run meanwhile.
      const child = spawn(
        'ssh',
        [
          '-F',
          'none',
          '-o',
          `ProxyCommand=${relayProxyCommand(path)}`,
          '-o',
          'StrictHostKeyChecking=yes',
          '-o',
          `UserKnownHostsFile=${knownHosts}`,
          '-o',
          'BatchMode=yes',
          '-o',
          'ConnectTimeout=5',
          '-p',
          String(sshd.port),
          'root@127.0.0.1',
          'true',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
      const ssh = { status, stderr };
      held.close();
      // ssh's last bytes may still be on their way through the relay when it exits: read them all (data comes before end).
      await sshd.connections[0]?.ended;
      assert.equal(ssh.status, 255, ssh.stderr);
      assert.equal(held.handedOver, true, ssh.stderr);
      assert.equal(sshd.connections.length, 1);
      assert.match(Buffer.concat(sshd.connections[0].received).toString('latin1'), /^SSH-2\.0-OpenSSH_[^\r\n]+\r\n.+kex/s);
    } finally {
      await stop(sshd);
    }
  });
});
