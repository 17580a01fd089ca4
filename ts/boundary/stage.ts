/** The boundaries of scripts/stage.sh (the keeper's lines) and the staged kexec-run.sh (its result facts). */
import { z } from 'zod';
import type { ScriptOutput } from '../sections.js';
import { count, parseBoundary } from './schema.js';

/** What stage.sh prints over its life: where it staged, then `staged=1`, and at the end what it removed. */
export const StageFactsSchema = z.strictObject({
  stage_dir: z.string().optional(),
  image_dir: z.string().optional(),
  staged: z.literal('1').optional(),
  stale_stage_removed: z.string().optional(),
  stage_removed: z.string().optional(),
  stage_kept_for_kexec: z.string().optional(),
  /** With the host fetching the image (url mode): bytes so far (the last line wins), the time, the verdict. */
  fetched: count.optional(),
  fetch_cs: count.optional(),
  fetch_verified: z.literal('1').optional(),
});

/** A stage ready for kexec. */
export interface StagedImage {
  /** The tmpfs mount point. */
  dir: string;
  /** emergency-image/ inside it, every file verified. */
  imageDir: string;
}

/** What stage.sh said once it printed `staged=1`: all three facts must be there. */
const StagedSchema = StageFactsSchema.required({ stage_dir: true, image_dir: true, staged: true });

/** Every fact stage.sh printed so far. */
export function parseStageFacts(output: ScriptOutput): z.output<typeof StageFactsSchema> {
  return parseBoundary('stage.sh', StageFactsSchema, output.facts);
}

/** The stage once stage.sh said `staged=1`. */
export function parseStaged(output: ScriptOutput): StagedImage {
  const facts = parseBoundary('stage.sh', StagedSchema, output.facts);
  return { dir: facts.stage_dir, imageDir: facts.image_dir };
}

/** What kexec-run.sh prints: how many keys it packed, how the kernel loaded the rescue, and the trigger. */
export const KexecFactsSchema = z.strictObject({
  host_keys_packed: count.optional(),
  /** Files of the old system's DHCP client identity (machine-id, DUIDs, leases) packed for the rescue. */
  dhcp_identity_files: count.optional(),
  kexec_method: z.enum(['kexec_load_no_checks', 'kexec_file_load', 'kexec_load']).optional(),
  kexec_loaded: z.literal('1').optional(),
  kexec_triggered: z.literal('1').optional(),
  /** What the kernel said to each loading method when both failed. */
  kexec_file_load_error: z.string().optional(),
  kexec_load_error: z.string().optional(),
});

export type KexecFacts = z.output<typeof KexecFactsSchema>;

/** Parses kexec-run.sh's facts. */
export function parseKexecFacts(output: ScriptOutput): KexecFacts {
  return parseBoundary('kexec-run.sh', KexecFactsSchema, output.facts);
}
