/** The host-side scripts under scripts/, read as text to send (the same files the images carry). */
import { readFileSync } from 'node:fs';

const cache = new Map<string, string>();

/** Text of scripts/NAME, relative to the package root (dist/ sits beside scripts/). */
export function script(name: 'preflight.sh' | 'capture-network.sh' | 'stage.sh' | 'kexec-run.sh' | 'restore.sh'): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`../scripts/${name}`, import.meta.url), 'utf8');
    cache.set(name, text);
  }
  return text;
}
