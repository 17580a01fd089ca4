/**
 * Lockdown, pure (issue 9, check `lockdown`). A locked-down kernel (integrity or confidentiality) refuses
 * kexec_load outright and lets kexec_file_load load only a kernel whose signature chains to a key in its trusted
 * keyrings (.builtin_trusted_keys, .secondary_trusted_keys, .platform, .machine). What preflight can know: whether
 * the host is locked down (securityfs when mounted, else lockdown= on the command line, else the kernel's own log
 * line), whether the image's kernel is signed, by whom, and which keys the host lists in /proc/keys. What it cannot
 * know: whether the signature verifies (only the kernel checks the chain), so a name match is a warning, not a pass.
 */
import type { PreflightFacts } from '../boundary/preflight.js';
import type { KernelSignature } from '../drivers/kernel-signature.js';
import type { Finding } from './checks.js';

export type LockdownLevel = 'none' | 'integrity' | 'confidentiality';

/** The level and how it is known, from preflight.sh's lockdown facts. `undefined` level: no source said. */
export function lockdownLevel(facts: Pick<PreflightFacts, 'lockdown' | 'lockdown_cmdline' | 'lockdown_log'>): { level?: LockdownLevel; source: string } {
  const levels: LockdownLevel[] = ['none', 'integrity', 'confidentiality'];
  const is = (v: string | undefined): v is LockdownLevel => levels.includes(v as LockdownLevel);
  if (is(facts.lockdown)) return { level: facts.lockdown, source: '/sys/kernel/security/lockdown' };
  // Without securityfs: the command line sets the level at boot (a kernel without the lockdown LSM ignores it,
  // which errs on the side of refusing); the log line is printed for every raise while it stays in the ring buffer.
  if (is(facts.lockdown_cmdline) && facts.lockdown_cmdline !== 'none')
    return { level: facts.lockdown_cmdline, source: `lockdown=${facts.lockdown_cmdline} on the kernel command line` };
  if (facts.lockdown_log && facts.lockdown_log !== 'unreadable')
    return { level: 'integrity', source: `the kernel log ("Kernel is locked down from ${facts.lockdown_log}")` };
  if (facts.lockdown_cmdline === 'none') return { level: 'none', source: 'lockdown=none on the kernel command line' };
  return { level: undefined, source: 'securityfs is not mounted, the command line has no lockdown= and the kernel log has no lockdown line' };
}

/** Key descriptions of /proc/keys (`Debian Secure Boot CA: 6ccece7e…`), as the `trusted-keys` section lists them. */
export function trustedKeyNames(body: string | undefined): string[] {
  return (body ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => l.replace(/: [0-9a-f]{8,}(:.*)?$/i, '').trim());
}

export function judgeLockdown(
  facts: Pick<PreflightFacts, 'lockdown' | 'lockdown_cmdline' | 'lockdown_log' | 'secure_boot'>,
  signature: KernelSignature,
  hostKeys: string[],
): { refusals: Finding[]; warnings: Finding[]; summary: string } {
  const refusals: Finding[] = [];
  const warnings: Finding[] = [];
  const { level, source } = lockdownLevel(facts);
  const secureBoot = facts.secure_boot === '1';
  const fix =
    'Boot the host without lockdown (lockdown=none is not enough under Secure Boot: disable Secure Boot, or mokutil --disable-validation), or use a rescue kernel signed by a key the host trusts; or use an out-of-band console.';
  if (level === 'integrity' || level === 'confidentiality') {
    const keys = hostKeys.length ? hostKeys.join('; ') : 'none visible in /proc/keys';
    if (!signature.signed) {
      refusals.push({
        message: `the kernel is locked down (${level}, from ${source}${secureBoot ? '; Secure Boot is on' : ''}): it loads only signed kernels, and the image's kernel is not signed`,
        fix,
      });
    } else {
      const trusted = signature.names.filter((n) => hostKeys.some((k) => k === n || k.startsWith(`${n}:`)));
      if (trusted.length) {
        warnings.push({
          message: `the kernel is locked down (${level}, from ${source}); the image's kernel is signed by ${signature.names.join(' / ')}, and the host trusts a key named ${trusted.join(', ')}: kexec_file_load should accept it (only the kernel can verify that)`,
          fix: 'If loading fails, the old system keeps running (exit 5).',
        });
      } else {
        refusals.push({
          message: `the kernel is locked down (${level}, from ${source}): it loads only kernels signed by a key it trusts, and the image's kernel is signed by ${signature.names.join(' / ') || 'an unreadable certificate'} while the host trusts ${keys}`,
          fix,
        });
      }
    }
  } else if (level === undefined && secureBoot) {
    warnings.push({
      message: `Secure Boot is on and the lockdown level is unknown (${source}); distribution kernels lock down under Secure Boot`,
      fix: 'If loading fails, the old system keeps running (exit 5).',
    });
  } else if (secureBoot) {
    warnings.push({ message: 'Secure Boot is on; the kernel reports no lockdown, so kexec should work', fix: 'If loading fails, disable Secure Boot.' });
  }
  return {
    refusals,
    warnings,
    summary: `lockdown: ${level ?? 'unknown'} (${source}); image kernel ${signature.signed ? `signed by ${signature.names.join(' / ')}` : 'unsigned'}`,
  };
}
