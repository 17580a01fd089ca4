/**
 * Picks kernel modules and everything they depend on (the `depends=` of each `.modinfo`) out of an extracted
 * Debian kernel package, so an initrd carries a handful of modules instead of a thousand.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readModinfo } from './elf.js';

/** Module name as the kernel compares them: `-` and `_` are the same. */
export function moduleKey(name: string): string {
  return name.replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** Finds the one kernel version under `root/lib/modules`. */
export async function kernelVersion(root: string): Promise<string> {
  const versions = await readdir(join(root, 'lib/modules'));
  if (versions.length !== 1) throw new Error(`expected one kernel version in the kernel package, found: ${versions.join(', ')}`);
  return versions[0];
}

/**
 * Returns module paths relative to `lib/modules/VERSION` for `wanted` plus their dependencies.
 * A wanted module that is built in (listed in modules.builtin) is skipped; one that exists nowhere is an error.
 */
export async function moduleClosure(root: string, version: string, wanted: string[]): Promise<string[]> {
  const base = join(root, 'lib/modules', version);
  const index = new Map<string, string>();
  async function walk(rel: string): Promise<void> {
    for (const entry of await readdir(join(base, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path);
      else if (/\.ko$/.test(entry.name)) index.set(moduleKey(entry.name), path);
    }
  }
  await walk('kernel');
  const builtin = new Set(
    (await readFile(join(base, 'modules.builtin'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => moduleKey(line.split('/').pop()!)),
  );
  const chosen = new Set<string>();
  const queue = wanted.map(moduleKey);
  while (queue.length) {
    const key = queue.shift()!;
    if (chosen.has(key) || builtin.has(key)) continue;
    const path = index.get(key);
    if (!path) throw new Error(`kernel ${version} has no module ${key}`);
    chosen.add(key);
    const depends = readModinfo(await readFile(join(base, path))).get('depends')?.[0] ?? '';
    queue.push(...depends.split(',').filter(Boolean).map(moduleKey));
  }
  return [...chosen].map((k) => index.get(k)!).sort();
}
