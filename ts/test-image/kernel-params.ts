/**
 * The rescue kernel's parameters, read from modules/kernel-params.json: the one place both image builders take
 * them from (modules/lib.nix `rescueKernelParams` for the NixOS image, this for the test image). The unit test
 * kernel-params.test.ts evaluates the Nix side and fails when the two differ.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** modules/kernel-params.json (this file runs from dist/test-image/). */
export const KERNEL_PARAMS_FILE = join(dirname(fileURLToPath(import.meta.url)), '../../modules/kernel-params.json');

interface KernelParamsSpec {
  consoles: Record<string, string[]>;
  common: string[];
}

/** The parameters for one architecture (uname -m): its consoles (the last becomes /dev/console), then the rest. */
export function rescueKernelParams(arch: string, specText = readFileSync(KERNEL_PARAMS_FILE, 'utf8')): string[] {
  const spec = JSON.parse(specText) as KernelParamsSpec;
  const consoles = spec.consoles[arch];
  if (!consoles) throw new Error(`${KERNEL_PARAMS_FILE} has no consoles for ${arch}`);
  return [...consoles, ...spec.common];
}

/** The test image's `cmdline` file content for one architecture (no init=: its init is /init in the initrd). */
export function rescueCmdline(arch: string): string {
  return rescueKernelParams(arch).join(' ');
}
