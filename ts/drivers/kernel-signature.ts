/**
 * Who signed a kernel image: the Authenticode signature of an EFI-stub kernel (bzImage or arm64 Image with a PE
 * header), read from the PE certificate table. Under lockdown the running kernel loads only a kernel whose
 * signature chains to a key in its trusted keyrings (kexec_file_load; kexec_load is refused outright), so the
 * lockdown check compares these names with the keys the host lists in /proc/keys. Pure functions over a Buffer.
 */
import { X509Certificate } from 'node:crypto';

export interface KernelSignature {
  signed: boolean;
  /** Common names of the certificates in the signature (signer and the CAs it carries), subject and issuer. */
  names: string[];
}

const UNSIGNED: KernelSignature = { signed: false, names: [] };

/** The signature of a kernel image; unsigned when it has no PE header or no certificate table. */
export function kernelSignature(image: Buffer): KernelSignature {
  if (image.length < 0x40 || image.readUInt16LE(0) !== 0x5a4d) return UNSIGNED;
  const pe = image.readUInt32LE(0x3c);
  if (pe + 24 > image.length || image.readUInt32LE(pe) !== 0x00004550) return UNSIGNED;
  const optional = pe + 24;
  const magic = image.readUInt16LE(optional);
  // The data directories follow the optional header's fixed part: 96 bytes (PE32), 112 (PE32+); entry 4 is the
  // certificate table, whose "address" is a file offset.
  const directories = optional + (magic === 0x20b ? 112 : 96);
  if (directories + 5 * 8 > image.length) return UNSIGNED;
  const offset = image.readUInt32LE(directories + 4 * 8);
  const size = image.readUInt32LE(directories + 4 * 8 + 4);
  if (!offset || !size || offset + size > image.length) return UNSIGNED;
  const names: string[] = [];
  // WIN_CERTIFICATE entries: dwLength, wRevision, wCertificateType (2 = PKCS#7 SignedData), then the DER, 8-aligned.
  for (let at = offset; at + 8 <= offset + size; ) {
    const length = image.readUInt32LE(at);
    if (length < 8) break;
    if (image.readUInt16LE(at + 6) === 2) {
      for (const der of certificatesOf(image.subarray(at + 8, at + length))) {
        try {
          const cert = new X509Certificate(der);
          for (const dn of [cert.subject, cert.issuer]) {
            const cn = /^CN=(.*)$/m.exec(dn)?.[1];
            if (cn && !names.includes(cn)) names.push(cn);
          }
        } catch {
          // not a certificate we can read: the name stays unknown
        }
      }
    }
    at += (length + 7) & ~7;
  }
  return { signed: true, names };
}

/** One DER element: tag, where its content starts and ends. */
function element(buf: Buffer, at: number): { tag: number; start: number; end: number } | undefined {
  if (at + 2 > buf.length) return undefined;
  const tag = buf[at];
  let len = buf[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > buf.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i];
    start += n;
  }
  return start + len <= buf.length ? { tag, start, end: start + len } : undefined;
}

/** The certificates of a PKCS#7 ContentInfo (SignedData's `[0] IMPLICIT SET OF Certificate`), each as DER. */
export function certificatesOf(der: Buffer): Buffer[] {
  const contentInfo = element(der, 0);
  if (!contentInfo || contentInfo.tag !== 0x30) return [];
  const oid = element(der, contentInfo.start);
  const explicit = oid && element(der, oid.end);
  const signedData = explicit && explicit.tag === 0xa0 ? element(der, explicit.start) : undefined;
  if (!signedData || signedData.tag !== 0x30) return [];
  // version, digestAlgorithms, encapContentInfo, then [0] certificates
  let at = signedData.start;
  for (let i = 0; i < 3; i++) {
    const e = element(der, at);
    if (!e) return [];
    at = e.end;
  }
  const certs = element(der, at);
  if (!certs || certs.tag !== 0xa0) return [];
  const out: Buffer[] = [];
  for (let c = certs.start; c < certs.end; ) {
    const e = element(der, c);
    if (!e) break;
    out.push(der.subarray(c, e.end));
    c = e.end;
  }
  return out;
}
