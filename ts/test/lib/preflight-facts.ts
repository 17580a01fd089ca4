/**
 * What scripts/preflight.sh prints on a healthy x86_64 host with 4 GiB of RAM, as raw key=value facts: the one
 * fixture the preflight boundary, the checks and the steps are tested from (each test changes what it needs).
 */
export const HEALTHY_FACTS: Readonly<Record<string, string>> = {
  preflight_format: '1',
  arch: 'x86_64',
  kernel: '6.1.0',
  uid: '0',
  hostname: 'web1',
  boot_id: 'old-boot',
  kexec_load_disabled: '0',
  lockdown: 'none',
  lockdown_cmdline: '',
  lockdown_log: '',
  ssh_connection: '',
  secure_boot: 'no-efi',
  container: 'none',
  virt: 'none',
  mem_total_kb: String(4 << 20),
  mem_available_kb: String(3 << 20),
  stage_parent: '/run',
  stage_mode: 'mkdir',
  has_tmpfs: '1',
  has_dd: '1',
  has_mount: '1',
  has_umount: '1',
  head_gnu: '1',
};
