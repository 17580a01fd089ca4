/**
 * Just enough ELF (64-bit little-endian, as x86_64 and aarch64 use): the interpreter, DT_NEEDED, RPATH/RUNPATH
 * of a program or library, and the named sections of a kernel module (for `.modinfo`). Pure functions over a Buffer.
 */

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

/** What the dynamic loader needs to know about one ELF file. */
export interface DynamicInfo {
  /** PT_INTERP, e.g. `/lib64/ld-linux-x86-64.so.2`; undefined for static binaries and libraries. */
  interpreter?: string;
  needed: string[];
  /** RUNPATH, or RPATH when there is no RUNPATH, split on `:`. */
  searchPath: string[];
}

/** Whether the buffer starts with the ELF magic. */
export function isElf(buf: Buffer): boolean {
  return buf.length >= 64 && buf.readUInt32BE(0) === 0x7f454c46;
}

function header(buf: Buffer) {
  if (!isElf(buf)) throw new Error('not an ELF file');
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error('only 64-bit little-endian ELF files are supported');
  return {
    type: buf.readUInt16LE(0x10),
    phoff: Number(buf.readBigUInt64LE(0x20)),
    shoff: Number(buf.readBigUInt64LE(0x28)),
    phentsize: buf.readUInt16LE(0x36),
    phnum: buf.readUInt16LE(0x38),
    shentsize: buf.readUInt16LE(0x3a),
    shnum: buf.readUInt16LE(0x3c),
    shstrndx: buf.readUInt16LE(0x3e),
  };
}

function cString(buf: Buffer, offset: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end === -1 ? buf.length : end);
}

/** Reads PT_INTERP and the dynamic section. */
export function readDynamic(buf: Buffer): DynamicInfo {
  const h = header(buf);
  const segments: { type: number; offset: number; vaddr: number; filesz: number }[] = [];
  for (let i = 0; i < h.phnum; i++) {
    const at = h.phoff + i * h.phentsize;
    segments.push({
      type: buf.readUInt32LE(at),
      offset: Number(buf.readBigUInt64LE(at + 8)),
      vaddr: Number(buf.readBigUInt64LE(at + 16)),
      filesz: Number(buf.readBigUInt64LE(at + 32)),
    });
  }
  const info: DynamicInfo = { needed: [], searchPath: [] };
  const interp = segments.find((s) => s.type === PT_INTERP);
  if (interp) info.interpreter = cString(buf, interp.offset);
  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dynamic) return info;

  const entries: [number, number][] = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.filesz; at += 16) {
    const tag = Number(buf.readBigInt64LE(at));
    if (tag === DT_NULL) break;
    entries.push([tag, Number(buf.readBigUInt64LE(at + 8))]);
  }
  const strtabAddr = entries.find(([tag]) => tag === DT_STRTAB)?.[1];
  if (strtabAddr === undefined) return info;
  // DT_STRTAB is a virtual address: find the loaded segment holding it to get its file offset.
  const load = segments.find((s) => s.type === PT_LOAD && strtabAddr >= s.vaddr && strtabAddr < s.vaddr + s.filesz);
  if (!load) throw new Error('DT_STRTAB lies outside every PT_LOAD segment');
  const strtab = strtabAddr - load.vaddr + load.offset;
  let rpath: string[] = [];
  let runpath: string[] | undefined;
  for (const [tag, value] of entries) {
    if (tag === DT_NEEDED) info.needed.push(cString(buf, strtab + value));
    else if (tag === DT_RPATH)
      rpath = cString(buf, strtab + value)
        .split(':')
        .filter(Boolean);
    else if (tag === DT_RUNPATH)
      runpath = cString(buf, strtab + value)
        .split(':')
        .filter(Boolean);
  }
  info.searchPath = runpath ?? rpath;
  return info;
}

/** Returns the named section's bytes (e.g. `.modinfo` of a kernel module), or undefined. */
export function readSection(buf: Buffer, name: string): Buffer | undefined {
  const h = header(buf);
  if (h.shoff === 0 || h.shnum === 0) return undefined;
  const section = (i: number) => {
    const at = h.shoff + i * h.shentsize;
    return {
      name: buf.readUInt32LE(at),
      offset: Number(buf.readBigUInt64LE(at + 24)),
      size: Number(buf.readBigUInt64LE(at + 32)),
    };
  };
  const names = section(h.shstrndx);
  for (let i = 0; i < h.shnum; i++) {
    const s = section(i);
    if (cString(buf, names.offset + s.name) === name) return buf.subarray(s.offset, s.offset + s.size);
  }
  return undefined;
}

/** The `key=value` strings of a kernel module's `.modinfo` section, e.g. `depends` → `virtio,virtio_ring`. */
export function readModinfo(buf: Buffer): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const section = readSection(buf, '.modinfo');
  if (!section) return out;
  for (const entry of section.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), entry.slice(eq + 1)]);
  }
  return out;
}
