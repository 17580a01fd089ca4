/**
 * Who fetches a URL image, decided from preflight's facts (scripts/probe-url.sh): the host, straight into the
 * staging tmpfs, or this machine, which then streams it as a local image. Pure.
 */
import type { Image } from './image.js';

/** The decision, with the reason when the host cannot. */
export type FetchPlan =
  | { via: 'host'; fetcher: string; shaTool: string; tmpfsBytes: number }
  | { via: 'operator'; reason: string };

const FETCHERS = ['curl', 'wget', 'wget-busybox', 'busybox'];
const SHA_TOOLS = ['sha256sum', 'busybox', 'openssl'];

/**
 * The host fetches when it has a downloader and a sha256 tool of its own, reached the URL in preflight, has
 * head and dd to copy members out of the tarball, and has the memory for the tarball on top of the unpacked
 * files (the download sits in the tmpfs until it is verified and unpacked). `tmpfsBytes` is the verdict's.
 */
export function planFetch(facts: Record<string, string>, image: Pick<Image, 'tarBytes'>, memory: { beforeKexecBytes: number; tmpfsBytes: number }): FetchPlan {
  const fetcher = facts.url_fetcher ?? 'none';
  const shaTool = facts.url_sha256 ?? 'none';
  if (facts.url_probe_end !== '1') return { via: 'operator', reason: 'the host did not answer the URL probe' };
  if (!FETCHERS.includes(fetcher)) return { via: 'operator', reason: 'the host has no curl, wget or busybox wget' };
  if (!SHA_TOOLS.includes(shaTool)) {
    return { via: 'operator', reason: 'the host has no sha256 tool of its own (sha256sum, busybox or openssl) to verify the download before any of it runs' };
  }
  if (facts.url_reachable !== '1') return { via: 'operator', reason: `the host cannot reach the URL (${facts.url_probe_error || 'no answer'})` };
  if (facts.has_head !== '1' || facts.has_dd !== '1') return { via: 'operator', reason: 'the host lacks head or dd to copy busybox out of the verified download' };
  const available = Number(facts.mem_available_kb) * 1024;
  if (!(available >= memory.beforeKexecBytes + image.tarBytes)) {
    const mib = (n: number) => `${Math.ceil(n / 1024 / 1024)} MiB`;
    return { via: 'operator', reason: `the host has ${mib(available)} available, not the ${mib(memory.beforeKexecBytes + image.tarBytes)} for the downloaded tarball on top of the staged files` };
  }
  return { via: 'host', fetcher, shaTool, tmpfsBytes: memory.tmpfsBytes + image.tarBytes };
}

/** "27.0 MB in 1.3 s (20.8 MB/s)": what the operator reads about a download. */
export function describeRate(bytes: number, ms: number): string {
  const mb = bytes / 1e6;
  const s = Math.max(ms, 1) / 1000;
  return `${mb.toFixed(1)} MB in ${s.toFixed(1)} s (${(mb / s).toFixed(1)} MB/s)`;
}
