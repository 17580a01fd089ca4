/** The host-side scripts under scripts/, read as text to send (the same files the images carry). */
import { readFileSync } from 'node:fs';
import type { RemoteScript } from './shell-quote.js';

const cache = new Map<string, string>();

/** scripts/NAME with its arguments, ready for Remote.run. */
export function script(name: ScriptName, ...args: string[]): RemoteScript {
  return { name, text: scriptText(name), args };
}

export type ScriptName = 'preflight.sh' | 'capture-network.sh' | 'probe-url.sh' | 'stage.sh' | 'kexec-run.sh' | 'restore.sh' | 'network-lib.sh';

/** Text of scripts/NAME, relative to the package root (dist/ sits beside scripts/). */
export function scriptText(name: ScriptName): string {
  let text = cache.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(`../scripts/${name}`, import.meta.url), 'utf8');
    cache.set(name, text);
  }
  return text;
}
