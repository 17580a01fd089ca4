/**
 * The Debian builder's driver manifest (docs/image-layout.md): the modules the test image ships (their `.modinfo`
 * sections: `alias=`, `firmware=`), every built-in module of the kernel (modules.builtin, modules.builtin.modinfo)
 * and the firmware files under the rescue tree's lib/firmware (none today).
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { firmwareName, moduleName, renderManifest, type DriverManifest } from '../drivers/manifest.js';
import { readModinfo } from './elf.js';
import { moduleKey } from './kmod.js';

/** `NAME.key=value` NUL-separated strings of modules.builtin.modinfo, by module. */
export function parseBuiltinModinfo(data: Buffer): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  for (const entry of data.toString('utf8').split('\0')) {
    const dot = entry.indexOf('.');
    const eq = entry.indexOf('=');
    if (dot <= 0 || eq <= dot) continue;
    const mod = moduleName(entry.slice(0, dot));
    const key = entry.slice(dot + 1, eq);
    const fields = out.get(mod) ?? new Map<string, string[]>();
    fields.set(key, [...(fields.get(key) ?? []), entry.slice(eq + 1)]);
    out.set(mod, fields);
  }
  return out;
}

/** Adds a module's modinfo (alias=, firmware=) to the manifest. Aliases with a space cannot be matched by a modalias. */
function add(m: DriverManifest, name: string, place: 'loadable' | 'builtin', path: string, info: Map<string, string[]>): void {
  m.modules.set(name, { name, place, path });
  for (const pattern of info.get('alias') ?? []) if (!/\s/.test(pattern)) m.aliases.push({ pattern, module: name });
  const firmware = (info.get('firmware') ?? []).filter((f) => !/\s/.test(f));
  if (firmware.length) m.wants.set(name, firmware);
}

async function filesUnder(dir: string, rel = ''): Promise<string[]> {
  if (!existsSync(join(dir, rel))) return [];
  const out: string[] = [];
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await filesUnder(dir, path)));
    else out.push(path);
  }
  return out;
}

/**
 * The manifest of a rescue tree: `extracted` is the unpacked kernel package (for modules.builtin*), `stage` the
 * rescue initramfs tree, `shipped` the module paths (relative to lib/modules/VERSION) it carries.
 */
export async function driverManifest(extracted: string, stage: string, version: string, shipped: string[]): Promise<string> {
  const base = join(extracted, 'lib/modules', version);
  const m: DriverManifest = { kernel: version, modules: new Map(), aliases: [], wants: new Map(), firmware: new Set() };
  const builtinInfo = parseBuiltinModinfo(await readFile(join(base, 'modules.builtin.modinfo')));
  for (const path of (await readFile(join(base, 'modules.builtin'), 'utf8')).split('\n').filter(Boolean)) {
    const name = moduleKey(path.split('/').pop()!);
    add(m, name, 'builtin', path, builtinInfo.get(name) ?? new Map());
  }
  for (const path of shipped) add(m, moduleKey(path.split('/').pop()!), 'loadable', path, readModinfo(await readFile(join(base, path))));
  for (const f of await filesUnder(join(stage, 'lib/firmware'))) m.firmware.add(firmwareName(f));
  return renderManifest(m);
}
