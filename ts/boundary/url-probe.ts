/**
 * The boundary of scripts/probe-url.sh: its `url-probe` section, key=value lines, declared once. It rides in
 * preflight's round trip, so it is a section of that output rather than facts of its own.
 */
import { z } from 'zod';
import { parseKeyValues } from '../image.js';
import type { ScriptOutput } from '../sections.js';
import { flag, parseBoundary, ProtocolError } from './schema.js';

export const URL_PROBE_SECTION = 'url-probe';

/** What the host has to fetch the image itself, and whether the URL answered. */
export const UrlProbeSchema = z.strictObject({
  url_fetcher: z.enum(['curl', 'wget', 'wget-busybox', 'busybox', 'none']),
  url_sha256: z.enum(['sha256sum', 'busybox', 'openssl', 'none']),
  /** dd and head, to copy SHA256SUMS and busybox out of the verified download. */
  url_copy: flag,
  url_reachable: flag,
  url_probe_error: z.string().optional(),
});

export type UrlProbe = z.output<typeof UrlProbeSchema>;

/** Parses the url-probe section of preflight's output. */
export function parseUrlProbe(output: ScriptOutput): UrlProbe {
  const section = output.sections.find((s) => s.name === URL_PROBE_SECTION);
  if (!section) throw new ProtocolError('probe-url.sh', [`section "${URL_PROBE_SECTION}" is missing`]);
  return parseBoundary('probe-url.sh', UrlProbeSchema, parseKeyValues(section.body));
}
