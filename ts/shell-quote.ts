/**
 * POSIX shell quoting for the remote side. ssh joins its arguments into one string that the remote login
 * shell parses again, so every value we send is quoted here, once. zx's quote() emits bash-only `$'…'`,
 * which dash reads as a `$` followed by a quoted string, hence this.
 */

/** Quotes one word for any POSIX shell (also works in fish): 'it'\''s'. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Quotes a command line: each word on its own. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}

/** A whole script file's text and its positional parameters. */
export interface RemoteScript {
  /** The file it came from (scripts/NAME), for messages and fakes; inline snippets have none. */
  name?: string;
  text: string;
  args?: readonly string[];
}

/**
 * The remote command that runs one or more whole script files in sequence, each in its own subshell with
 * its own positional parameters (set with quoted words): `sh -c '( set -- A1; A ) ( set -- B1; B )'`.
 * The scripts travel as the text of one argument: stdin stays free for data (image, restore tar).
 */
export function scriptCommand(scripts: readonly RemoteScript[]): string[] {
  const body = scripts.map((s) => `(\nset -- ${shellJoin(s.args ?? [])}\n${s.text}\n)`).join('\n');
  return ['sh', '-c', body];
}
