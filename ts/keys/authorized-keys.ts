/**
 * Which keys root accepts in the rescue system: every key of root, of the admin users and of the login user,
 * except keys bound to a forced command. A backup key with `command="borg serve …"` must not become a root
 * shell, so those are left out and reported. Options that only restrict (from=, no-*, restrict, expiry-time)
 * are kept with their key. Pure: tested on fixtures in ts/test/unit/authorized-keys.test.ts.
 */
import { createHash } from 'node:crypto';

/** One usable line of an authorized_keys file. */
export interface AuthorizedKey {
  options: string[];
  type: string;
  blob: string;
  comment: string;
  /** Whose file it came from. */
  user: string;
  file: string;
}

/** A key that was deliberately not carried over, and why. */
export interface LeftOutKey {
  user: string;
  file: string;
  fingerprint: string;
  comment: string;
  reason: string;
}

/** The outcome: the keys to install, those left out, and counts per user. */
export interface KeySelection {
  keys: AuthorizedKey[];
  leftOut: LeftOutKey[];
  perUser: Record<string, number>;
}

const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(-cert-v01@openssh\.com)?$/;

/** Splits the options field at commas outside double quotes. */
function splitOptions(field: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < field.length; i++) {
    const c = field[i];
    if (c === '\\' && quoted && i + 1 < field.length) {
      current += c + field[++i];
    } else if (c === '"') {
      quoted = !quoted;
      current += c;
    } else if (c === ',' && !quoted) {
      out.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  if (current) out.push(current);
  return out;
}

/** Parses one authorized_keys line; undefined for blanks, comments and lines that are not keys. */
export function parseAuthorizedKeyLine(line: string): Omit<AuthorizedKey, 'user' | 'file'> | undefined {
  const text = line.trim();
  if (!text || text.startsWith('#')) return undefined;
  // The options field ends at the first space outside double quotes.
  let end = 0;
  let quoted = false;
  for (; end < text.length; end++) {
    if (text[end] === '\\' && quoted) end++;
    else if (text[end] === '"') quoted = !quoted;
    else if (/\s/.test(text[end]) && !quoted) break;
  }
  const first = text.slice(0, end);
  let options: string[] = [];
  let rest = text;
  if (!KEY_TYPE.test(first)) {
    options = splitOptions(first);
    rest = text.slice(end).trim();
  }
  const [type, blob, ...comment] = rest.split(/\s+/);
  if (!type || !KEY_TYPE.test(type) || !blob || !/^[A-Za-z0-9+/]+=*$/.test(blob)) return undefined;
  return { options, type, blob, comment: comment.join(' ') };
}

/** OpenSSH's SHA256 fingerprint of a public key blob: `SHA256:` + unpadded base64. */
export function fingerprint(blob: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

/** Whether an option grants a forced command (command="…"), which must not become root's login. */
function forcesCommand(option: string): boolean {
  return /^command=/i.test(option);
}

/** Chooses root's keys for the rescue system from the files preflight read (user, file, content). */
export function selectAuthorizedKeys(files: { user: string; file: string; content: string }[]): KeySelection {
  const keys: AuthorizedKey[] = [];
  const leftOut: LeftOutKey[] = [];
  const perUser: Record<string, number> = {};
  const seen = new Set<string>();
  for (const { user, file, content } of files) {
    for (const line of content.split('\n')) {
      const key = parseAuthorizedKeyLine(line);
      if (!key) continue;
      if (key.options.some(forcesCommand)) {
        leftOut.push({
          user,
          file,
          fingerprint: fingerprint(key.blob),
          comment: key.comment,
          reason: 'forced command= (would turn a restricted key into a root shell)',
        });
        continue;
      }
      // The same key with the same options from two files is one line; with other options it stays twice,
      // exactly as sshd would treat it.
      const identity = `${key.options.join(',')} ${key.type} ${key.blob}`;
      if (seen.has(identity)) continue;
      seen.add(identity);
      keys.push({ ...key, user, file });
      perUser[user] = (perUser[user] ?? 0) + 1;
    }
  }
  return { keys, leftOut, perUser };
}

/** The authorized_keys file for root in the rescue system, each key annotated with where it came from. */
export function renderAuthorizedKeys(selection: KeySelection): string {
  const lines = ['# Installed by emergency: keys of the rescued system, by origin.'];
  for (const key of selection.keys) {
    lines.push(`# ${key.user}: ${key.file}`);
    lines.push([key.options.length ? key.options.join(',') : '', key.type, key.blob, key.comment].filter(Boolean).join(' '));
  }
  return `${lines.join('\n')}\n`;
}
