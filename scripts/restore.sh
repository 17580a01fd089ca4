#!/bin/sh
# Runs in the rescue system before sshd: installs what kexec-run.sh packed on the old system
# (host keys, root's authorized keys, the network restore script). Layout: docs/image-layout.md.
#
# It never aborts half-way: each step is independent, and a failed step is logged and the next one runs,
# because a rescue system with the network up but no keys (or the reverse) is still better than none.
# Both the NixOS module and the Debian test image run this same file.
#
# Environment (all optional):
#   EMERGENCY_DIR   where the appended initrd put the data   (default /emergency)
#   SSH_DIR         sshd's host key directory                 (default /etc/ssh)
#   ROOT_SSH_DIR    root's ~/.ssh                              (default /root/.ssh)
#   RESTORE_LOG     log file, also echoed to the console       (default /var/log/emergency-restore.log)
set -u

data=${EMERGENCY_DIR-/emergency}
ssh_dir=${SSH_DIR-/etc/ssh}
root_ssh_dir=${ROOT_SSH_DIR-/root/.ssh}
log=${RESTORE_LOG-/var/log/emergency-restore.log}
failures=0

mkdir -p "$(dirname "$log")" 2>/dev/null
say() {
  printf 'emergency-restore: %s\n' "$*"
  printf '%s\n' "$*" >>"$log" 2>/dev/null
  # The console is where an admin with KVM/IPMI access looks when the network did not come back.
  if [ -w /dev/console ]; then printf 'emergency-restore: %s\n' "$*" >/dev/console 2>/dev/null; fi
  return 0
}
step_failed() {
  failures=$((failures + 1))
  say "FAILED: $*"
}

install_host_keys() {
  found=0
  mkdir -p "$ssh_dir" || { step_failed "cannot create $ssh_dir"; return; }
  for key in "$data"/host-keys/ssh_host_*_key; do
    [ -f "$key" ] || continue
    name=$(basename "$key")
    # umask before writing: the private key must never exist with wider permissions, even briefly.
    if (umask 077 && cat "$key" >"$ssh_dir/$name.tmp" && mv -f "$ssh_dir/$name.tmp" "$ssh_dir/$name"); then
      chmod 600 "$ssh_dir/$name"
      found=$((found + 1))
    else
      step_failed "host key $name not installed"
    fi
    if [ -f "$key.pub" ]; then
      if ! { cat "$key.pub" >"$ssh_dir/$name.pub" && chmod 644 "$ssh_dir/$name.pub"; }; then
        step_failed "host key $name.pub not installed"
      fi
    fi
  done
  say "host keys installed: $found"
}

install_authorized_keys() {
  if [ ! -f "$data/authorized_keys" ]; then
    step_failed "no authorized_keys were packed: root login will not work"
    return
  fi
  if (umask 077 && mkdir -p "$root_ssh_dir" && cat "$data/authorized_keys" >"$root_ssh_dir/authorized_keys"); then
    chmod 700 "$root_ssh_dir"
    chmod 600 "$root_ssh_dir/authorized_keys"
    say "authorized keys for root: $(grep -c '^[^#]' "$root_ssh_dir/authorized_keys" 2>/dev/null || echo 0)"
  else
    step_failed "authorized keys not installed in $root_ssh_dir"
  fi
}

restore_network() {
  if [ ! -f "$data/network.sh" ]; then
    step_failed "no network.sh was packed: the network is not restored"
    return
  fi
  # network.sh logs each of its own steps and never stops on one failure (ts/network/render.ts).
  if sh "$data/network.sh" >>"$log" 2>&1; then
    say "network restored"
  else
    step_failed "network.sh reported $? failed step(s); see $log"
  fi
}

if [ ! -d "$data" ]; then
  say "no $data directory: booted without emergency data, nothing to restore"
  exit 0
fi
install_host_keys
install_authorized_keys
restore_network
say "done, $failures failed step(s)"
exit 0
