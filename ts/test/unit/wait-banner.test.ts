import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ExitCode } from '../../errors.js';
import { bannerTarget, canHandOver, firstBanner, sshBanner, waitForRescue } from '../../steps/wait.js';
import { FakeRemote, RecordingUi } from '../lib/fake-remote.js';

/** `ssh -G` output as OpenSSH 9 prints it (lowercase keys, one per line), with `extra` lines first. */
const sshG = (...extra: string[]) => [...extra, 'user root', 'hostname 127.0.0.1', 'port 2222', 'proxyusefdpass no', 'addressfamily any', ''].join('\n');

describe('bannerTarget', () => {
  // One line per case: ssh -G output, and where the banner check goes (undefined: only the full ssh probe).
  const cases: [string, string, { host: string; port: number; family?: number } | undefined][] = [
    ['plain host and port', sshG(), { host: '127.0.0.1', port: 2222 }],
    ['ProxyJump', sshG('proxyjump bastion'), undefined],
    ['ProxyCommand', sshG('proxycommand nc %h %p'), undefined],
    ['ProxyCommand none', sshG('proxycommand none'), { host: '127.0.0.1', port: 2222 }],
    ['first value wins, as in ssh', sshG('hostname 10.0.0.1'), { host: '10.0.0.1', port: 2222 }],
    ['an IPv6 address', 'hostname ::1\nport 22\n', { host: '::1', port: 22 }],
    ['no port line: 22', 'hostname example.org\n', { host: 'example.org', port: 22 }],
    ['no hostname', 'port 22\n', undefined],
    ['nothing (ssh -G failed)', '', undefined],
    ['a port that is no port', 'hostname h\nport 70000\n', undefined],
    ['AddressFamily inet: IPv4 only, as ssh', 'hostname example.org\naddressfamily inet\n', { host: 'example.org', port: 22, family: 4 }],
    ['AddressFamily inet6', 'hostname example.org\naddressfamily inet6\n', { host: 'example.org', port: 22, family: 6 }],
  ];
  for (const [name, output, expected] of cases) it(name, () => assert.deepEqual(bannerTarget(output), expected));
});

/** A loopback server that does `onConnection` to each client; resolves with it and its port. */
async function listen(onConnection: (socket: import('node:net').Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(onConnection);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

describe('sshBanner (loopback)', () => {
  const cases: [string, (s: import('node:net').Socket) => void, boolean][] = [
    ['an SSH banner', (s) => s.write('SSH-2.0-OpenSSH_9.2\r\n'), true],
    ['lines before the banner (RFC 4253 4.2)', (s) => s.write('hello\r\nSSH-2.0-x\r\n'), true],
    ['something else, then close', (s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'), false],
    ['accepted, closed at once (a port forward with nothing behind it)', (s) => s.destroy(), false],
    ['accepted, silent until the timeout', () => {}, false],
  ];
  for (const [name, behave, expected] of cases) {
    it(name, async () => {
      const open: import('node:net').Socket[] = [];
      const { server, port } = await listen((s) => {
        open.push(s);
        behave(s);
      });
      try {
        const held = await sshBanner({ host: '127.0.0.1', port }, 200);
        held?.close();
        assert.equal(held !== undefined, expected);
      } finally {
        for (const s of open) s.destroy();
        await new Promise((r) => server.close(r));
      }
    });
  }

  it('nothing listening', async () => {
    const { server, port } = await listen(() => {});
    await new Promise((r) => server.close(r));
    assert.equal(await sshBanner({ host: '127.0.0.1', port }, 200), undefined);
  });
});

describe('firstBanner (loopback): a connection that sits unanswered does not hold up the next', () => {
  /** A server whose connection number i (from 0) does behave[i], or the last entry; it counts and keeps them. */
  async function serve(...behave: ((s: import('node:net').Socket) => void)[]) {
    const sockets: import('node:net').Socket[] = [];
    const closedByClient: number[] = [];
    const { server, port } = await listen((s) => {
      const i = sockets.push(s) - 1;
      s.on('close', () => closedByClient.push(i));
      s.on('error', () => {});
      (behave[i] ?? behave[behave.length - 1])(s);
    });
    const stop = async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    };
    return { port, sockets, closedByClient, stop };
  }
  const silent = () => {};
  const banner = (s: import('node:net').Socket) => s.write('SSH-2.0-OpenSSH_9.2\r\n');

  it('the first connection silent (accepted by a port forward while the machine was down), the second answered: it wins, soon', async () => {
    const srv = await serve(silent, banner);
    try {
      const t0 = Date.now();
      const held = await firstBanner({ host: '127.0.0.1', port: srv.port }, 3000, { everyMs: 150, atMost: 2 });
      const ms = Date.now() - t0;
      assert.ok(held, 'a banner was seen');
      assert.ok(ms < 1000, `answered after ${ms} ms, not after the 3000 ms timeout`);
      assert.equal(srv.sockets.length, 2);
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(srv.closedByClient, [0], 'the silent one is closed, the winner is held open');
      held.close();
    } finally {
      await srv.stop();
    }
  });

  it('an answer on the first: one connection only', async () => {
    const srv = await serve(banner);
    try {
      const held = await firstBanner({ host: '127.0.0.1', port: srv.port }, 3000, { everyMs: 100, atMost: 2 });
      assert.ok(held);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(srv.sockets.length, 1);
      held.close();
    } finally {
      await srv.stop();
    }
  });

  it('closed at once (nothing behind the port forward yet): undefined without waiting for the next one', async () => {
    const srv = await serve((s) => s.destroy());
    try {
      const t0 = Date.now();
      assert.equal(await firstBanner({ host: '127.0.0.1', port: srv.port }, 3000, { everyMs: 500, atMost: 2 }), undefined);
      assert.ok(Date.now() - t0 < 400);
      assert.equal(srv.sockets.length, 1);
    } finally {
      await srv.stop();
    }
  });

  it('the first silent and later ones refused: new ones keep coming while one waits, and the first banner after that wins', async () => {
    const srv = await serve(
      silent,
      (s) => s.destroy(),
      (s) => s.destroy(),
      banner,
    );
    try {
      const held = await firstBanner({ host: '127.0.0.1', port: srv.port }, 3000, { everyMs: 100, atMost: 2 });
      assert.ok(held);
      assert.equal(srv.sockets.length, 4);
      held.close();
    } finally {
      await srv.stop();
    }
  });

  it('atMost 1 (slow mode): the silent connection is waited out, no second one', async () => {
    const srv = await serve(silent, banner);
    try {
      const t0 = Date.now();
      assert.equal(await firstBanner({ host: '127.0.0.1', port: srv.port }, 300, { everyMs: 100, atMost: 1 }), undefined);
      assert.ok(Date.now() - t0 >= 290);
      assert.equal(srv.sockets.length, 1);
    } finally {
      await srv.stop();
    }
  });

  it('all silent: at most atMost at once, all closed by the timeout, undefined', async () => {
    const srv = await serve(silent);
    try {
      assert.equal(await firstBanner({ host: '127.0.0.1', port: srv.port }, 400, { everyMs: 100, atMost: 2 }), undefined);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(srv.sockets.length, 2);
      assert.deepEqual([...srv.closedByClient].sort(), [0, 1]);
    } finally {
      await srv.stop();
    }
  });
});

describe('canHandOver', () => {
  // One line per case: ssh -G output, and whether the probe's ssh may use the banner check's connection.
  const cases: [string, string, boolean][] = [
    ['plain host and port', sshG('canonicalizehostname false'), true],
    ['no canonicalizehostname line (older ssh -G)', sshG(), true],
    ['BindAddress: ssh would choose the source address', sshG('bindaddress 192.0.2.1'), false],
    ['BindInterface', sshG('bindinterface eth1'), false],
    ['CanonicalizeHostname yes: not done with a proxy, the key would be looked up under another name', sshG('canonicalizehostname true'), false],
    ['CanonicalizeHostname always', sshG('canonicalizehostname always'), false],
  ];
  for (const [name, output, expected] of cases) it(name, () => assert.equal(canHandOver(output), expected));
});

describe('waitForRescue over a held banner connection (loopback sshd stand-in)', () => {
  const rescue = { code: 0, stdout: 'new-boot\nconsole=ttyS0 emergency.rescue=1\nfallback_state=off\n' };
  const relayDir = mkdtempSync(join(tmpdir(), 'emergency-wait-relay-'));
  after(() => rmSync(relayDir, { recursive: true, force: true }));

  /** A FakeRemote whose banner checks go to a loopback server that sends a banner; counts its connections. */
  async function setUp(connectRelay = true) {
    let connections = 0;
    const { server, port } = await listen((s) => {
      connections++;
      s.on('error', () => {});
      s.write('SSH-2.0-fake\r\n');
    });
    const remote = new FakeRemote('root', []);
    remote.sshG = sshG().replace('port 2222', `port ${port}`);
    if (connectRelay) remote.relayDir = relayDir;
    const wait = () => waitForRescue(remote, new RecordingUi(), { oldBootId: 'old-boot', triggeredAt: Date.now(), timeoutSeconds: 5, fallbackReboot: 'off' });
    return { remote, wait, connections: () => connections, stop: () => new Promise((r) => server.close(r)) };
  }

  it('the probe gets the connection that saw the banner: one connection to sshd', async () => {
    const t = await setUp();
    try {
      t.remote.probeReplies = [rescue];
      assert.equal((await t.wait()).bootId, 'new-boot');
      assert.deepEqual(t.remote.probesOver, [true]);
      assert.equal(t.connections(), 1);
    } finally {
      await t.stop();
    }
  });

  it('ssh failing on it: a fresh probe in the same round, and the round after still hands over', async () => {
    const t = await setUp();
    try {
      t.remote.probeReplies = [{ code: 255, stderr: 'Connection closed by UNKNOWN port 65535' }, { code: 255, stderr: 'Connection refused' }, rescue];
      assert.equal((await t.wait()).bootId, 'new-boot');
      assert.deepEqual(t.remote.probesOver, [true, false, true]);
    } finally {
      await t.stop();
    }
  });

  it('a changed host key over it is refused, not retried on a fresh connection', async () => {
    const t = await setUp();
    try {
      t.remote.probeReplies = [{ code: 255, stderr: '@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@' }];
      await assert.rejects(t.wait(), (e: { exitCode: number }) => e.exitCode === ExitCode.HostKeyChanged);
      assert.deepEqual(t.remote.probesOver, [true]);
    } finally {
      await t.stop();
    }
  });

  it('no relay ever connects (a broken install): later probes make their own connections', async () => {
    const t = await setUp(false);
    try {
      t.remote.probeReplies = [{ code: 255, stderr: 'ssh-relay.js: not found' }, { code: 255, stderr: 'Connection refused' }, rescue];
      assert.equal((await t.wait()).bootId, 'new-boot');
      assert.deepEqual(t.remote.probesOver, [true, false, false]);
    } finally {
      await t.stop();
    }
  });
});
