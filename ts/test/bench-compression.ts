/**
 * `node dist/test/bench-compression.js`: which compression minimises upload + unpack time for the measured link
 * (docs/benchmarks.md). The test image's initrd recompressed (zstd -19, zstd -3, gzip -9, xz) and each variant
 * booted directly in QEMU (boot → sshd, which includes the kernel unpacking the initrd); the whole tar gzipped
 * and streamed through the VM's busybox gunzip against the plain tar. Prints a table; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTestImage } from '../test-image/build.js';
import { mb, renderTable, sec } from './lib/bench-report.js';
import { Link } from './lib/link.js';
import { bootRescueImage } from './lib/rescue-vm.js';
import { defaultScenario, startServer } from './lib/server.js';

const VARIANTS: Record<string, string> = {
  'zstd -19': 'zstd -q -19 -T0 -c',
  'zstd -3': 'zstd -q -3 -T0 -c',
  'gzip -9': 'gzip -9 -c',
  'xz --check=crc32': 'xz --check=crc32 -T0 -c',
};

/** A copy of the image tar whose initrd is recompressed with `compress` (SHA256SUMS rewritten to match). */
function variantTar(imageTar: string, work: string, name: string, compress: string): string {
  const dir = join(work, name.replace(/\W+/g, '-'));
  execFileSync('mkdir', ['-p', dir]);
  execFileSync('tar', ['-xf', imageTar, '-C', dir]);
  const image = join(dir, 'emergency-image');
  execFileSync('sh', ['-c', `zstd -q -d -c initrd > initrd.cpio && ${compress} initrd.cpio > initrd && rm initrd.cpio`], { cwd: image });
  const sums = readFileSync(join(image, 'SHA256SUMS'), 'utf8').replace(
    /^\S+( {2}initrd)$/m,
    `${createHash('sha256')
      .update(readFileSync(join(image, 'initrd')))
      .digest('hex')}$1`,
  );
  writeFileSync(join(image, 'SHA256SUMS'), sums);
  const tar = join(work, `${name.replace(/\W+/g, '-')}.tar`);
  execFileSync('tar', ['--format=ustar', '-cf', tar, '-C', dir, 'emergency-image']);
  return tar;
}

async function main(): Promise<void> {
  const imageTar = await buildTestImage();
  const work = mkdtempSync(join(tmpdir(), 'emergency-compression-'));
  try {
    const server = await startServer(defaultScenario());
    let linkMiBps = 0;
    const rows: [string, string, string?][] = [];
    try {
      const link = await Link.open(server, 'root');
      const rtt = await link.roundTripMs();
      const plain = await link.run('cat >/dev/null', imageTar);
      linkMiBps = statSync(imageTar).size / 1024 / 1024 / ((plain.ms - rtt) / 1000);
      const gz = join(work, 'image.tar.gz');
      execFileSync('sh', ['-c', `gzip -6 -c '${imageTar}' > '${gz}'`]);
      const gunzip = await link.run('busybox gunzip -c >/dev/null', gz);
      rows.push(['whole tar, plain', sec((plain.ms - rtt) / 1000), `${mb(statSync(imageTar).size)} at ${linkMiBps.toFixed(2)} MiB/s`]);
      rows.push(['whole tar, gzip -6 → busybox gunzip', sec((gunzip.ms - rtt) / 1000), `${mb(statSync(gz).size)} on the wire`]);
      await link.close();
    } finally {
      await server.stop();
    }
    for (const [name, compress] of Object.entries(VARIANTS)) {
      const tar = variantTar(imageTar, work, name, compress);
      const initrdBytes = statSync(join(work, name.replace(/\W+/g, '-'), 'emergency-image/initrd')).size;
      const rescue = await bootRescueImage(tar);
      const bootS = rescue.bootToSshMs / 1000;
      await rescue.stop();
      const uploadS = initrdBytes / 1024 / 1024 / linkMiBps;
      rows.push([`initrd ${name}`, sec(uploadS + bootS), `${mb(initrdBytes)}: upload ${sec(uploadS)} + boot→sshd ${sec(bootS)}`]);
      process.stderr.write(`${name}: ${mb(initrdBytes)}, boot ${sec(bootS)}\n`);
    }
    process.stdout.write(`${renderTable(rows)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench-compression failed: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
