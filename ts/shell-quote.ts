/**
 * POSIX shell quoting for the remote side. ssh joins its arguments into one string that the remote login
 * shell parses again, so every value we send is quoted here, once. zx's quote() emits bash-only `$'…'`,
 * which dash misreads (STYLE.md), hence this.
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

/**
 * The remote command that runs one or more whole script files in sequence, each in its own subshell,
 * with `args` as their positional parameters: `sh -c '( A ) ; ( B )' emergency ARGS…`.
 * The scripts travel as the text of one argument: stdin stays free for data (image, restore tar).
 */
export function scriptCommand(scripts: readonly string[], args: readonly string[] = []): string[] {
  const body = scripts.map((s) => `(\n${s}\n)`).join('\n');
  return ['sh', '-c', body, 'emergency', ...args];
}
