/**
 * kexec's failures as one readable line (issue 9). kexec-tools prints `kexec_file_load failed: REASON` for `-s` and,
 * for `-c`, `kexec_load failed: REASON` followed by its whole segment table; the operator needs the reason and what
 * it means, and the table only with --debug. Pure.
 */

/** The first `… failed: REASON` of a kexec error output, or its first line. */
export function kexecReason(output: string | undefined): string | undefined {
  const text = (output ?? '').trim();
  if (!text) return undefined;
  const failed = /(?:kexec_file_load|kexec_load|Could not|Cannot)[^:]*(?: failed)?: ([^\n]*?)(?=\s+entry\s+=|\s+segment\[|$)/m.exec(text);
  return (failed?.[1] ?? text.split(/\s{2,}|\n/)[0]).trim();
}

/** What an errno text from kexec means for us. */
function meaning(reason: string): string | undefined {
  if (/Operation not permitted/i.test(reason))
    return 'the running kernel does not allow it: locked down (it loads only kernels signed by a key it trusts) or kexec disabled';
  if (/Key was rejected/i.test(reason)) return 'the rescue kernel is signed by a key the running kernel does not trust';
  if (/Bad message|Key not available|Required key not available/i.test(reason))
    return 'the running kernel requires a signed kernel and the rescue kernel is not signed in a way it accepts';
  if (/Function not implemented/i.test(reason)) return 'the running kernel has no kexec_file_load';
  if (/Cannot allocate memory/i.test(reason)) return 'not enough contiguous memory for the rescue kernel and initrd';
  if (/Device or resource busy/i.test(reason)) return 'another kexec image is loaded or loading';
  return undefined;
}

/** One line for both attempts: `kexec_file_load: Operation not permitted; kexec_load: Operation not permitted — MEANING`. */
export function explainKexecFailure(fileLoadOutput: string | undefined, loadOutput: string | undefined): string | undefined {
  const file = kexecReason(fileLoadOutput);
  const load = kexecReason(loadOutput);
  if (!file && !load) return undefined;
  const parts = [file && `kexec_file_load: ${file}`, load && `kexec_load: ${load}`].filter(Boolean);
  const meanings = [
    ...new Set(
      [file, load]
        .filter((r): r is string => !!r)
        .map(meaning)
        .filter((m): m is string => !!m),
    ),
  ];
  return `${parts.join('; ')}${meanings.length ? ` — ${meanings.join('; ')}` : ''}`;
}
