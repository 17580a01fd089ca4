/**
 * Shared-library closure of dynamic programs inside an extracted Debian tree, found at build time by reading
 * DT_NEEDED and RUNPATH (elf.ts) the way ld.so searches, so nothing from the build machine's own /lib leaks in.
 */
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { readDynamic, isElf } from './elf.js';

/** Where ld.so looks on Debian after RUNPATH (ld.so.conf.d order, then the trusted directories), per multiarch triplet. */
export function defaultLibraryDirs(triplet = 'x86_64-linux-gnu'): string[] {
  return [`/lib/${triplet}`, `/usr/lib/${triplet}`, '/lib64', '/lib', '/usr/lib'];
}

/** A library the closure needs: its soname, where it sits in the tree (`/lib/…/libc.so.6`), the real file on disk. */
export interface ResolvedLibrary {
  soname: string;
  treePath: string;
  realPath: string;
}

/** Names the soname no package of the list provides, and who needs it. */
export class UnresolvedLibraryError extends Error {
  constructor(
    readonly soname: string,
    readonly neededBy: string,
  ) {
    super(`${neededBy} needs ${soname}, which none of the extracted packages provides: add its Debian package to the list`);
  }
}

/** Follows symlinks inside `root` (absolute targets are relative to `root`); undefined if the path is absent. */
export async function realPathIn(root: string, treePath: string, depth = 0): Promise<string | undefined> {
  if (depth > 40) throw new Error(`symlink loop at ${treePath} in ${root}`);
  // Resolve parent directories first: Debian ships /lib64 as a directory but other trees may not.
  const parts = treePath.split('/').filter(Boolean);
  let current = '/';
  for (const [i, part] of parts.entries()) {
    const next = posix.join(current, part);
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(join(root, next));
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      const target = await readlink(join(root, next));
      const resolved = target.startsWith('/') ? target : posix.join(current, target);
      const rest = parts.slice(i + 1).join('/');
      return realPathIn(root, rest ? posix.join(resolved, rest) : resolved, depth + 1);
    }
    current = next;
  }
  return join(root, current);
}

/**
 * Resolves the libraries (and the interpreter) `programs` (tree paths) need, transitively.
 * `extraDirs` are searched after RUNPATH and before the defaults (for dlopen()ed plugins' own directories).
 */
export async function libraryClosure(
  root: string,
  programs: string[],
  extraDirs: string[] = [],
  triplet?: string,
): Promise<{ interpreter?: ResolvedLibrary; libraries: ResolvedLibrary[] }> {
  const libraries = new Map<string, ResolvedLibrary>();
  let interpreter: ResolvedLibrary | undefined;
  const queue: { treePath: string; realPath: string }[] = [];
  for (const treePath of programs) {
    const realPath = await realPathIn(root, treePath);
    if (!realPath) throw new Error(`${treePath} is not in the extracted packages`);
    queue.push({ treePath, realPath });
  }
  while (queue.length) {
    const { treePath, realPath } = queue.shift()!;
    const buf = await readFile(realPath);
    if (!isElf(buf)) continue; // a shell script
    const dyn = readDynamic(buf);
    if (dyn.interpreter && !interpreter) {
      const real = await realPathIn(root, dyn.interpreter);
      if (!real) throw new UnresolvedLibraryError(dyn.interpreter, treePath);
      interpreter = { soname: posix.basename(dyn.interpreter), treePath: dyn.interpreter, realPath: real };
    }
    const origin = posix.dirname(treePath);
    const dirs = [...dyn.searchPath.map((d) => d.replace(/\$\{?ORIGIN\}?/g, origin)), ...extraDirs, ...defaultLibraryDirs(triplet)];
    for (const soname of dyn.needed) {
      if (libraries.has(soname)) continue;
      let found: ResolvedLibrary | undefined;
      for (const dir of dirs) {
        const candidate = posix.join(dir, soname);
        const real = await realPathIn(root, candidate);
        if (real) {
          found = { soname, treePath: candidate, realPath: real };
          break;
        }
      }
      if (!found) throw new UnresolvedLibraryError(soname, treePath);
      libraries.set(soname, found);
      queue.push({ treePath: found.treePath, realPath: found.realPath });
    }
  }
  return { interpreter, libraries: [...libraries.values()].sort((a, b) => a.soname.localeCompare(b.soname)) };
}
