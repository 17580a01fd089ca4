/** --dump-network files: the original emergency-kexec format plus the raw capture. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dumpNetworkFiles } from '../../network/dump.js';
import { fixture } from './network-fixtures.js';

test('dumpNetworkFiles writes ips, routes, nameservers and the capture', () => {
  const { capture, plan } = fixture('hetzner-dedicated');
  const files = dumpNetworkFiles(capture, plan);
  assert.deepEqual(Object.keys(files).sort(), ['emergency_capture.json', 'emergency_ips', 'emergency_nameservers', 'emergency_routes']);
  assert.equal(files.emergency_ips, 'enp0s31f6;203.0.113.77/32;2a01:4f8:a:b::2/64\n');
  assert.equal(files.emergency_routes, 'default;203.0.113.65;enp0s31f6\ndefault;fe80::1;enp0s31f6\n');
  assert.equal(files.emergency_nameservers, '185.12.64.1\n2a01:4ff:ff00::add:1\n');
  assert.deepEqual(JSON.parse(files['emergency_capture.json']), JSON.parse(JSON.stringify(capture)));
});

test('dumpNetworkFiles: a route without gateway or device leaves those fields empty', () => {
  const { capture, plan } = fixture('route-attributes');
  const lines = dumpNetworkFiles(capture, plan).emergency_routes.split('\n');
  assert.ok(lines.includes('10.66.0.0/16;;'), lines.join(' | '));
  assert.ok(lines.includes('10.51.0.0/16;10.5.0.254;eth0'));
});
