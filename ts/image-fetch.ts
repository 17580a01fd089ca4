/**
 * Who fetches a URL image, decided from preflight's URL probe (scripts/probe-url.sh): the host, straight into
 * the staging tmpfs, or this machine, which then streams it as a local image. And how a streamed tarball is
 * verified on the host (planStream). Pure.
 */
import type { UrlProbe } from './boundary/url-probe.js';
import type { Image } from './image.js';

/** The decision, with the reason when the host cannot. */
export type FetchPlan = HostFetch | { via: 'operator'; reason: string };

/** The host fetches: with which of its tools, into a tmpfs that also holds the tarball. */
export interface HostFetch {
  via: 'host';
  fetcher: Exclude<UrlProbe['url_fetcher'], 'none'>;
  shaTool: Exclude<UrlProbe['url_sha256'], 'none'>;
  tmpfsBytes: number;
}

/**
 * The host fetches when it has a downloader and a sha256 tool of its own, reached the URL in preflight, has
 * dd and head to copy members out of the tarball, and has the memory for the tarball on top of the staged
 * files (the download sits in the tmpfs until it is verified and unpacked). `memory` is the checks' figures.
 */
export function planFetch(
  probe: UrlProbe,
  availableBytes: number,
  image: Pick<Image, 'tarBytes'>,
  memory: { beforeKexecBytes: number; tmpfsBytes: number },
): FetchPlan {
  const { url_fetcher: fetcher, url_sha256: shaTool } = probe;
  if (fetcher === 'none') return { via: 'operator', reason: 'the host has no curl, wget or busybox wget' };
  if (shaTool === 'none') {
    return { via: 'operator', reason: 'the host has no sha256 tool of its own (sha256sum, busybox or openssl) to verify the download before any of it runs' };
  }
  if (!probe.url_reachable) return { via: 'operator', reason: `the host cannot reach the URL (${probe.url_probe_error || 'no answer'})` };
  if (!probe.url_copy) return { via: 'operator', reason: 'the host lacks dd or head to copy busybox out of the verified download' };
  const needed = memory.beforeKexecBytes + image.tarBytes;
  if (!(availableBytes >= needed)) {
    const mib = (n: number) => `${Math.ceil(n / 1024 / 1024)} MiB`;
    return {
      via: 'operator',
      reason: `the host has ${mib(availableBytes)} available, not the ${mib(needed)} for the downloaded tarball on top of the staged files`,
    };
  }
  return { via: 'host', fetcher, shaTool, tmpfsBytes: memory.tmpfsBytes + image.tarBytes };
}

/**
 * How stage.sh checks a streamed tarball against its hash (docs/image-layout.md, "On the host"): `file` writes
 * it whole into the tmpfs, hashes it and unpacks it only then, and needs the memory for the tarball on top of the
 * staged files (as a host fetch does); `pipe` hashes it through tee while tar unpacks it, for a host without that
 * memory. `file` is the faster on a slow CPU (busybox tee moves 1 KiB per system call; measured in QEMU TCG:
 * 3.3-4.0 s against 9-15 s for the same 27 MB, docs/benchmarks.md).
 */
export type StreamPlan = { via: 'file'; tmpfsBytes: number } | { via: 'pipe' };

/** The stream plan for a host with `availableBytes` of memory; `memory` is the checks' figures. */
export function planStream(availableBytes: number, image: Pick<Image, 'tarBytes'>, memory: { beforeKexecBytes: number; tmpfsBytes: number }): StreamPlan {
  return availableBytes >= memory.beforeKexecBytes + image.tarBytes ? { via: 'file', tmpfsBytes: memory.tmpfsBytes + image.tarBytes } : { via: 'pipe' };
}

/** "27.0 MB in 1.3 s (20.8 MB/s)": what the operator reads about a download. */
export function describeRate(bytes: number, ms: number): string {
  const mb = bytes / 1e6;
  const s = Math.max(ms, 1) / 1000;
  return `${mb.toFixed(1)} MB in ${s.toFixed(1)} s (${(mb / s).toFixed(1)} MB/s)`;
}
