import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../test-image/build.js';
import { bootRescueImage, type RescueVm } from '../lib/rescue-vm.js';
import { startServer, type TestServer } from '../lib/server.js';
import { sshRun } from '../lib/ssh.js';

interface IpAddr {
  ifname: string;
  address: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
}

// One VM at a time: the server first, then the rescue image.
describe('QEMU harness (needs QEMU): the default test server', { timeout: 600_000 }, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
    console.log(`# test server: sshd answered ${server.bootToSshMs} ms after QEMU started`);
  });
  after(async () => server?.stop());

  it('answers ssh with the host keys made before boot, for root and the sudo user', async () => {
    const root = await server.ssh('root', 'id -u');
    assert.equal(root.code, 0, root.stderr);
    assert.equal(root.stdout.trim(), '0');
    const admin = await server.ssh('admin', 'id -un; sudo -n id -u; readlink /bin/sh');
    assert.equal(admin.code, 0, admin.stderr);
    assert.deepEqual(admin.stdout.trim().split('\n'), ['admin', '0', 'dash']);
  });

  it('is refused by strict host key checking with a known_hosts for another key', async () => {
    const wrong = join(server.workDir, 'wrong_known_hosts');
    writeFileSync(wrong, `[127.0.0.1]:${server.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
    const r = await sshRun({ port: server.port, knownHostsFile: wrong, identity: server.keys.root, user: 'root', command: 'true' });
    assert.equal(r.code, 255, 'ssh must fail on a changed host key');
    assert.match(r.stderr, /host key/i);
  });

  it('has the scenario’s network: names by MAC, IPv4 + IPv6, routes, link-local IPv6 gateway, nameservers', async () => {
    const r = await server.ssh('root', 'ip -j addr; echo; ip -j route; echo; ip -j -6 route; echo; cat /etc/resolv.conf');
    assert.equal(r.code, 0, r.stderr);
    const [addrs, routes4, routes6, resolv] = r.stdout.split('\n\n') as [string, string, string, string];
    const links = JSON.parse(addrs) as IpAddr[];
    for (const nic of server.expected.nics) {
      const link = links.find((l) => l.address === nic.mac);
      assert.ok(link, `no interface has MAC ${nic.mac}`);
      assert.equal(link.ifname, nic.name, `the interface with MAC ${nic.mac} is not named ${nic.name}`);
      // fec0::/10 is site-local (scope site): every address but link-local ones.
      const have = link.addr_info.filter((a) => a.scope !== 'link' && a.scope !== 'host').map((a) => `${a.local}/${a.prefixlen}`);
      assert.deepEqual(have.sort(), [...nic.ipv4, ...nic.ipv6].sort(), `addresses on ${nic.name}`);
    }
    const routes = [...(JSON.parse(routes4) as IpRoute[]), ...(JSON.parse(routes6) as IpRoute[])];
    for (const want of server.expected.routes) {
      const [dst, , via, , dev] = want;
      assert.ok(
        routes.some((r) => r.dst === dst && r.gateway === via && r.dev === dev),
        `route ${want.join(' ')} is missing`,
      );
    }
    for (const ns of server.expected.nameservers) assert.match(resolv, new RegExp(`^nameserver ${ns.replaceAll('.', '\\.')}$`, 'm'));
    assert.match(resolv, /^search test\.example$/m);
  });
});

describe('QEMU harness (needs QEMU): the test image’s rescue system booted directly', { timeout: 600_000 }, () => {
  let rescue: RescueVm;
  before(async () => {
    rescue = await bootRescueImage(await buildTestImage());
    console.log(`# rescue image: sshd answered ${rescue.bootToSshMs} ms after QEMU started`);
  });
  after(async () => rescue?.stop());

  it('answers with the restored host key and accepts the restored root key', async () => {
    // Strict checking against a known_hosts holding only the packed host keys proves the host key.
    const r = await rescue.ssh('cat /etc/emergency-rescue; hostname; ip -V; tr " " "\\n" </proc/cmdline | grep emergency');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^name=Debian test image$/m);
    assert.match(r.stdout, /^rescued-test$/m, 'hostname from restore.env');
    assert.match(r.stdout, /iproute2/, 'ip is iproute2, not busybox');
    assert.match(r.stdout, /^emergency\.rescue=1$/m);
  });

  it('ran restore.sh: keys and network from the appended cpio, no step failed', async () => {
    const r = await rescue.ssh('cat /var/log/emergency-restore.log; ls /etc/ssh; ip -br addr');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /host keys installed: 2/);
    assert.match(r.stdout, /done, 0 failed step\(s\)/);
    assert.match(r.stdout, /10\.0\.2\.15\/24/);
    assert.doesNotMatch(r.stdout, /ssh_host_rsa_key/, 'no host key beyond the restored ones');
  });
});
