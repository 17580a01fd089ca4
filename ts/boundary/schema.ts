/**
 * How a script's output becomes TypeScript data: one zod schema per boundary, parsed once, every field
 * checked. A missing, malformed or unexpected field is a ProtocolError that names the script and the field,
 * because it means the host ran a different script than this orchestrator sent (or the output was cut short).
 */
import { z } from 'zod';
import { EmergencyError, ExitCode } from '../errors.js';

/** A script's output did not match its declared schema. */
export class ProtocolError extends EmergencyError {
  constructor(script: string, problems: string[], detail?: string) {
    super(
      `${script} answered in an unexpected shape: ${problems.join('; ')}`,
      'This is a bug in emergency (or the output was cut short): run again with --debug and report the output. Nothing was changed on the host.',
      ExitCode.Internal,
      detail,
    );
  }
}

/** One readable line per zod issue: `fact "arch" is missing`, `unexpected fact "has_foo"`. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], noun = 'fact'): string[] {
  return issues.flatMap((issue) => {
    const where = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => `unexpected ${noun} "${where ? `${where}.` : ''}${k}"`);
    if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) return [`${noun} "${where}" is missing`];
    return [`${noun} "${where}": ${issue.message}`];
  });
}

/** Parses `value` with `schema` or throws a ProtocolError naming `script` and every wrong field. */
export function parseBoundary<S extends z.ZodType>(script: string, schema: S, value: unknown, noun = 'fact', detail?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw new ProtocolError(script, describeIssues(result.error.issues, noun), detail);
  return result.data;
}

/** `0`/`1` flags as scripts print them. */
export const flag = z.enum(['0', '1']).transform((v) => v === '1');

/** A non-negative integer printed as text. */
export const count = z.string().regex(/^\d+$/, 'expected a non-negative integer').transform(Number);
