import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, it } from 'node:test';
import { bannerTarget, sshBanner } from '../../steps/wait.js';

/** `ssh -G` output as OpenSSH 9 prints it (lowercase keys, one per line), with `extra` lines first. */
const sshG = (...extra: string[]) => [...extra, 'user root', 'hostname 127.0.0.1', 'port 2222', 'proxyusefdpass no', 'addressfamily any', ''].join('\n');

describe('bannerTarget', () => {
  // One line per case: ssh -G output, and where the banner check goes (undefined: only the full ssh probe).
  const cases: [string, string, { host: string; port: number } | undefined][] = [
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
        assert.equal(await sshBanner({ host: '127.0.0.1', port }, 200), expected);
      } finally {
        for (const s of open) s.destroy();
        await new Promise((r) => server.close(r));
      }
    });
  }

  it('nothing listening', async () => {
    const { server, port } = await listen(() => {});
    await new Promise((r) => server.close(r));
    assert.equal(await sshBanner({ host: '127.0.0.1', port }, 200), false);
  });
});
