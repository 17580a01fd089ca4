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
#   RESTORE_STEPS   one `STATUS<TAB>TEXT` line per step (ok, failed, skipped), read by rescue-banner.sh
#                                                              (default /run/emergency/restore-steps)
set -u

data=${EMERGENCY_DIR-/emergency}
ssh_dir=${SSH_DIR-/etc/ssh}
root_ssh_dir=${ROOT_SSH_DIR-/root/.ssh}
log=${RESTORE_LOG-/var/log/emergency-restore.log}
steps=${RESTORE_STEPS-/run/emergency/restore-steps}
failures=0

mkdir -p "$(dirname "$log")" "$(dirname "$steps")" 2>/dev/null
: >"$steps" 2>/dev/null
say() {
  printf 'emergency-restore: %s\n' "$*"
  printf '%s\n' "$*" >>"$log" 2>/dev/null
  # The console is where an admin with KVM/IPMI access looks when the network did not come back.
  if [ -w /dev/console ]; then printf 'emergency-restore: %s\n' "$*" >/dev/console 2>/dev/null; fi
  return 0
}
# The banner's "restore:" lines: what each step did, in words for the operator.
step_result() {
  printf '%s\t%s\n' "$1" "$2" >>"$steps" 2>/dev/null
  return 0
}
step_failed() {
  failures=$((failures + 1))
  say "FAILED: $*"
  step_result failed "$*"
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
  if [ "$found" -gt 0 ]; then step_result ok "host keys: $found installed"; else step_result failed "host keys: none installed, sshd cannot start"; fi
}

install_authorized_keys() {
  if [ ! -f "$data/authorized_keys" ]; then
    step_failed "no authorized_keys were packed: root login will not work"
    return
  fi
  if (umask 077 && mkdir -p "$root_ssh_dir" && cat "$data/authorized_keys" >"$root_ssh_dir/authorized_keys"); then
    chmod 700 "$root_ssh_dir"
    chmod 600 "$root_ssh_dir/authorized_keys"
    # grep -c prints 0 itself when nothing matches (and exits 1): no `|| echo 0`, which would print it twice.
    count=$(grep -c '^[^#]' "$root_ssh_dir/authorized_keys" 2>/dev/null)
    say "authorized keys for root: ${count:-0}"
    step_result ok "authorized keys for root: ${count:-0}"
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
    step_result ok "network: restored as captured (log: $log)"
  else
    step_failed "network.sh reported $? failed step(s); see $log"
  fi
}

if [ ! -d "$data" ]; then
  say "no $data directory: booted without emergency data, nothing to restore"
  step_result skipped "everything: booted without emergency data"
  exit 0
fi
install_host_keys
install_authorized_keys
restore_network
say "done, $failures failed step(s)"
exit 0
