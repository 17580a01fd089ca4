/**
 * The driver manifest of an image (docs/image-layout.md, `drivers.manifest`): what the rescue kernel can drive and
 * which firmware the rescue system ships. Rendering (the Debian builder) and parsing (the orchestrator) are pure;
 * the Nix builder writes the same records with a shell script (modules/drivers.nix).
 */

export const MANIFEST_FILE = 'drivers.manifest';

/** One driver the rescue kernel has. */
export interface ManifestModule {
  name: string;
  place: 'loadable' | 'builtin';
  /** Path under lib/modules/VERSION, compression suffix removed. */
  path: string;
}

export interface DriverManifest {
  kernel: string;
  modules: Map<string, ManifestModule>;
  /** Modalias patterns (fnmatch globs) and the module each binds, in file order. */
  aliases: { pattern: string; module: string }[];
  /** Firmware files each module declares, relative to lib/firmware. */
  wants: Map<string, string[]>;
  /** Firmware files the rescue system ships, relative to lib/firmware, without .xz/.zst. */
  firmware: Set<string>;
}

/** Module name as the kernel compares them: `-` and `_` are the same. */
export function moduleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** A firmware path as the loader looks it up: the .xz/.zst the kernel tries by itself removed. */
export function firmwareName(path: string): string {
  return path.replace(/\.(xz|zst)$/, '');
}

const FIELD = /^\S+$/;

/** Renders a manifest; the inverse of parseManifest. Records are sorted so equal inputs give equal bytes. */
export function renderManifest(m: DriverManifest): string {
  const lines = ['# emergency driver manifest (docs/image-layout.md)', `kernel ${m.kernel}`];
  const check = (...fields: string[]) => {
    for (const f of fields) if (!FIELD.test(f)) throw new Error(`driver manifest field ${JSON.stringify(f)} is empty or has a space`);
    return fields.join(' ');
  };
  for (const mod of [...m.modules.values()].sort((a, b) => a.name.localeCompare(b.name))) lines.push(`module ${check(mod.name, mod.place, mod.path)}`);
  for (const a of [...m.aliases].sort((a, b) => a.module.localeCompare(b.module) || a.pattern.localeCompare(b.pattern)))
    lines.push(`alias ${check(a.pattern, a.module)}`);
  for (const [mod, files] of [...m.wants].sort(([a], [b]) => a.localeCompare(b))) for (const f of [...files].sort()) lines.push(`wants ${check(mod, f)}`);
  for (const f of [...m.firmware].sort()) lines.push(`firmware ${check(f)}`);
  return `${lines.join('\n')}\n`;
}

/** Parses drivers.manifest; throws naming the first bad line. Unknown record types are skipped (room to grow). */
export function parseManifest(text: string): DriverManifest {
  const m: DriverManifest = { kernel: '', modules: new Map(), aliases: [], wants: new Map(), firmware: new Set() };
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const [type, ...f] = line.split(/ +/);
    const bad = (why: string) => new Error(`drivers.manifest line ${i + 1} (${JSON.stringify(line)}): ${why}`);
    const want = (n: number) => {
      if (f.length !== n) throw bad(`a ${type} record has ${n} field(s), this one ${f.length}`);
    };
    switch (type) {
      case 'kernel':
        want(1);
        if (m.kernel) throw bad('a second kernel record');
        m.kernel = f[0];
        break;
      case 'module':
        want(3);
        if (f[1] !== 'loadable' && f[1] !== 'builtin') throw bad('the place is neither loadable nor builtin');
        m.modules.set(moduleName(f[0]), { name: moduleName(f[0]), place: f[1], path: f[2] });
        break;
      case 'alias':
        want(2);
        m.aliases.push({ pattern: f[0], module: moduleName(f[1]) });
        break;
      case 'wants': {
        want(2);
        const key = moduleName(f[0]);
        m.wants.set(key, [...(m.wants.get(key) ?? []), f[1]]);
        break;
      }
      case 'firmware':
        want(1);
        m.firmware.add(firmwareName(f[0]));
        break;
      default:
        break;
    }
  });
  if (!m.kernel) throw new Error('drivers.manifest has no kernel record');
  return m;
}

/**
 * fnmatch(3) without flags, as the kernel's module loading matches a modalias against modules.alias (kmod's
 * fnmatch): `*` any run of characters, `?` one character, `[…]` a set with ranges and `!`/`^` negation, `\` escapes.
 */
export function globMatch(pattern: string, text: string): boolean {
  const memo = new Map<string, boolean>();
  const at = (p: number, t: number): boolean => {
    const key = `${p},${t}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    let result: boolean;
    if (p === pattern.length) result = t === text.length;
    else {
      const c = pattern[p];
      if (c === '*') result = at(p + 1, t) || (t < text.length && at(p, t + 1));
      else if (t === text.length) result = false;
      else if (c === '?') result = at(p + 1, t + 1);
      else if (c === '[') {
        const set = bracket(pattern, p);
        result = set ? set.matches(text[t]) && at(set.end, t + 1) : text[t] === '[' && at(p + 1, t + 1);
      } else if (c === '\\' && p + 1 < pattern.length) result = text[t] === pattern[p + 1] && at(p + 2, t + 1);
      else result = text[t] === c && at(p + 1, t + 1);
    }
    memo.set(key, result);
    return result;
  };
  return at(0, 0);
}

/** A `[…]` set starting at `start`; undefined when it is not closed (then `[` is a plain character). */
function bracket(pattern: string, start: number): { end: number; matches: (ch: string) => boolean } | undefined {
  let i = start + 1;
  const negate = pattern[i] === '!' || pattern[i] === '^';
  if (negate) i++;
  const ranges: [string, string][] = [];
  let first = true;
  while (i < pattern.length && (first || pattern[i] !== ']')) {
    first = false;
    let lo = pattern[i];
    if (lo === '\\' && i + 1 < pattern.length) lo = pattern[++i];
    if (pattern[i + 1] === '-' && i + 2 < pattern.length && pattern[i + 2] !== ']') {
      ranges.push([lo, pattern[i + 2]]);
      i += 3;
    } else {
      ranges.push([lo, lo]);
      i++;
    }
  }
  if (i >= pattern.length) return undefined;
  return { end: i + 1, matches: (ch) => ranges.some(([lo, hi]) => ch >= lo && ch <= hi) !== negate };
}

/** The modules whose patterns match a device's modalias, in manifest order, each once. */
export function modulesFor(manifest: DriverManifest, modalias: string): string[] {
  const found: string[] = [];
  for (const a of manifest.aliases) if (!found.includes(a.module) && globMatch(a.pattern, modalias)) found.push(a.module);
  return found;
}
