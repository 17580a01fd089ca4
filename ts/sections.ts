/**
 * The wire format of every host-side and rescue-side script's output: `key=value` fact lines, named
 * sections introduced by a line `@@emergency-section NAME [ARG...]` whose body runs to the next section line,
 * and error lines `@@emergency-error MESSAGE`, the one way every script says why it failed (anywhere in the
 * output, also inside a section). Facts only appear before the first section. Parsing is pure so it can be
 * tested on captured output; what the facts and sections must hold is declared per script in ts/boundary/.
 */

export const SECTION_MARKER = '@@emergency-section';
export const ERROR_MARKER = '@@emergency-error';

/** One named block of raw output, e.g. `ip-addr` with the JSON from `ip -j addr`. */
export interface Section {
  name: string;
  args: string[];
  body: string;
}

/** Facts and sections of one script run. */
export interface ScriptOutput {
  facts: Record<string, string>;
  sections: Section[];
  /** Every `@@emergency-error` message, in order. */
  errors: string[];
}

/** Splits script output into facts and sections; lines before the first section that are not facts are ignored. */
export function parseScriptOutput(text: string): ScriptOutput {
  const facts: Record<string, string> = {};
  const sections: Section[] = [];
  const errors: string[] = [];
  let current: Section | undefined;
  let body: string[] = [];
  const close = () => {
    if (current) current.body = body.join('\n');
    body = [];
  };
  for (const line of text.split('\n')) {
    if (line === ERROR_MARKER || line.startsWith(`${ERROR_MARKER} `)) {
      errors.push(line.slice(ERROR_MARKER.length + 1).trim());
    } else if (line.startsWith(`${SECTION_MARKER} `)) {
      close();
      const [name, ...args] = line
        .slice(SECTION_MARKER.length + 1)
        .trim()
        .split(/\s+/);
      current = { name, args, body: '' };
      sections.push(current);
    } else if (current) {
      body.push(line);
    } else {
      const eq = line.indexOf('=');
      if (eq > 0 && /^[a-z0-9_]+$/.test(line.slice(0, eq))) facts[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  close();
  // A trailing newline leaves an empty last line in each body: drop exactly that one.
  for (const s of sections) if (s.body.endsWith('\n')) s.body = s.body.slice(0, -1);
  return { facts, sections, errors };
}

/** The body of the one section called `name`, or undefined. */
export function sectionBody(output: ScriptOutput, name: string): string | undefined {
  return output.sections.find((s) => s.name === name)?.body;
}
