/**
 * A `newc` cpio writer (the initramfs format the kernel unpacks). Written here rather than run through `cpio`
 * so owners, modes and device nodes come out right without root: every entry states its own.
 */
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** One member of an archive. `path` is relative, without a leading slash (`etc/passwd`). */
export type CpioEntry = { path: string; mode: number; uid?: number; gid?: number } & (
  | { type: 'dir' }
  | { type: 'file'; data: Buffer }
  | { type: 'symlink'; target: string }
  | { type: 'char'; major: number; minor: number }
);

const TYPE_BITS = { dir: 0o040000, file: 0o100000, symlink: 0o120000, char: 0o020000 } as const;

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function record(ino: number, fields: { mode: number; uid: number; gid: number; size: number; rdevMajor: number; rdevMinor: number }, name: string): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const head = Buffer.from(
    `070701${[ino, fields.mode, fields.uid, fields.gid, 1, 0, fields.size, 0, 0, fields.rdevMajor, fields.rdevMinor, nameBytes.length, 0].map(hex).join('')}`,
    'ascii',
  );
  return Buffer.concat([head, nameBytes, pad4(head.length + nameBytes.length)]);
}

/** Serialises entries, in the order given (parents before children), ending with the trailer. */
export function writeCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (!path) throw new Error('cpio entry with an empty path');
    const data = e.type === 'file' ? e.data : e.type === 'symlink' ? Buffer.from(e.target, 'utf8') : Buffer.alloc(0);
    const rdev = e.type === 'char' ? [e.major, e.minor] : [0, 0];
    parts.push(
      record(
        ino++,
        { mode: TYPE_BITS[e.type] | (e.mode & 0o7777), uid: e.uid ?? 0, gid: e.gid ?? 0, size: data.length, rdevMajor: rdev[0], rdevMinor: rdev[1] },
        path,
      ),
      data,
      pad4(data.length),
    );
  }
  parts.push(record(0, { mode: 0, uid: 0, gid: 0, size: 0, rdevMajor: 0, rdevMinor: 0 }, 'TRAILER!!!'));
  return Buffer.concat(parts);
}

/**
 * Reads a directory tree into entries (sorted, parents first), owned by root unless `owner` says otherwise.
 * Modes (setuid included) come from the files; symlinks are kept as symlinks.
 */
export async function entriesFromDir(root: string, owner?: (path: string) => { uid: number; gid: number } | undefined): Promise<CpioEntry[]> {
  const out: CpioEntry[] = [];
  async function walk(rel: string): Promise<void> {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(root, path);
      const st = await lstat(full);
      const ids = owner?.(path) ?? { uid: 0, gid: 0 };
      if (st.isSymbolicLink()) out.push({ path, type: 'symlink', target: await readlink(full), mode: 0o777, ...ids });
      else if (st.isDirectory()) {
        out.push({ path, type: 'dir', mode: st.mode, ...ids });
        await walk(path);
      } else if (st.isFile()) out.push({ path, type: 'file', data: await readFile(full), mode: st.mode, ...ids });
      else throw new Error(`${full}: only files, directories and symlinks can go into the cpio`);
    }
  }
  await walk('');
  return out;
}

/** Bytes the entries occupy once unpacked into a tmpfs: file and symlink data rounded up to 4 KiB pages. */
export function unpackedBytes(entries: CpioEntry[]): number {
  const page = 4096;
  let total = 0;
  for (const e of entries) {
    const size = e.type === 'file' ? e.data.length : e.type === 'symlink' ? e.target.length : 0;
    total += Math.ceil(size / page) * page;
  }
  return total;
}
