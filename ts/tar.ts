/**
 * Just enough tar: list the members of a local image tarball (to size it and read its small files without
 * unpacking) and write the small restore-data tar sent to kexec-run.sh. ustar, regular files and directories.
 */
import { open } from 'node:fs/promises';

const BLOCK = 512;

/** One member of a tarball: its path, size and where its data starts. */
export interface TarMember {
  path: string;
  size: number;
  type: 'file' | 'directory' | 'other';
  dataOffset: number;
}

function readString(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul === -1 ? length : nul).toString('utf8');
}

function readOctal(header: Buffer, start: number, length: number): number {
  // GNU tar uses base-256 for sizes over 8 GiB; no image member is that large.
  const text = readString(header, start, length).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/** Parses one 512-byte header; undefined at the end-of-archive zero block. */
export function parseTarHeader(header: Buffer): { path: string; size: number; typeflag: string } | undefined {
  if (header.every((b) => b === 0)) return undefined;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
  if (sum !== readOctal(header, 148, 8)) throw new Error('tar header checksum mismatch: not a tar file, or corrupt');
  const name = readString(header, 0, 100);
  const prefix = readString(header, 345, 155);
  return { path: prefix ? `${prefix}/${name}` : name, size: readOctal(header, 124, 12), typeflag: readString(header, 156, 1) };
}

/** Lists a tarball's members by reading only its headers (and GNU long-name records). */
export async function listTar(file: string): Promise<TarMember[]> {
  const handle = await open(file, 'r');
  try {
    const members: TarMember[] = [];
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    let longName: string | undefined;
    for (;;) {
      const { bytesRead } = await handle.read(header, 0, BLOCK, offset);
      if (bytesRead < BLOCK) throw new Error('tar ends before its end-of-archive marker: truncated');
      const parsed = parseTarHeader(header);
      if (!parsed) return members;
      const dataOffset = offset + BLOCK;
      offset = dataOffset + Math.ceil(parsed.size / BLOCK) * BLOCK;
      if (parsed.typeflag === 'L') {
        const data = Buffer.alloc(parsed.size);
        await handle.read(data, 0, parsed.size, dataOffset);
        longName = data.toString('utf8').replace(/\0+$/, '');
        continue;
      }
      if (parsed.typeflag === 'x' || parsed.typeflag === 'g') continue; // pax headers: paths we use are short
      const type = parsed.typeflag === '0' || parsed.typeflag === '' ? 'file' : parsed.typeflag === '5' ? 'directory' : 'other';
      members.push({ path: (longName ?? parsed.path).replace(/^\.\//, ''), size: parsed.size, type, dataOffset });
      longName = undefined;
    }
  } finally {
    await handle.close();
  }
}

/** Reads one member's data (for the small text files of an image). */
export async function readTarMember(file: string, member: TarMember): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const data = Buffer.alloc(member.size);
    await handle.read(data, 0, member.size, member.dataOffset);
    return data;
  } finally {
    await handle.close();
  }
}

function writeOctal(header: Buffer, value: number, start: number, length: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, start, length, 'ascii');
}

/** Builds a ustar archive of regular files (path → content, mode 0600) in memory. */
export function createTar(files: Record<string, string | Buffer>): Buffer {
  const blocks: Buffer[] = [];
  for (const [path, content] of Object.entries(files)) {
    if (Buffer.byteLength(path) > 100) throw new Error(`tar member name too long: ${path}`);
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
    const header = Buffer.alloc(BLOCK);
    header.write(path, 0, 100, 'utf8');
    writeOctal(header, 0o600, 100, 8);
    writeOctal(header, 0, 108, 8);
    writeOctal(header, 0, 116, 8);
    writeOctal(header, data.length, 124, 12);
    writeOctal(header, 0, 136, 12);
    header.write('0', 156, 1, 'ascii');
    header.write('ustar\0', 257, 6, 'ascii');
    header.write('00', 263, 2, 'ascii');
    header.fill(32, 148, 156);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
    blocks.push(header, data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  blocks.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(blocks);
}

/** The regular files of a small tarball held in memory (an image's sidecar): path → data. */
export function tarFiles(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let offset = 0; ; ) {
    if (offset + BLOCK > tar.length) throw new Error('tar ends before its end-of-archive marker: truncated');
    const parsed = parseTarHeader(tar.subarray(offset, offset + BLOCK));
    if (!parsed) return files;
    const data = offset + BLOCK;
    if (data + parsed.size > tar.length) throw new Error(`tar member ${parsed.path} is cut short: truncated`);
    if (parsed.typeflag === '0' || parsed.typeflag === '') files.set(parsed.path.replace(/^\.\//, ''), tar.subarray(data, data + parsed.size));
    offset = data + Math.ceil(parsed.size / BLOCK) * BLOCK;
  }
}
