#!/bin/sh
# Runs in the rescue system: installs what kexec-run.sh packed on the old system (host keys, root's authorized
# keys, the DHCP client identity, the network restore script), checks that a default gateway answers (else starts
# DHCP on every NIC with carrier as a last chance) and writes the restore report.
# Layout, the boot order and the report's format: docs/image-layout.md.
#
# Two phases, so that sshd starts as soon as it can prove it is the host, beside the network restore:
#   restore.sh keys      host keys and root's authorized keys (all sshd needs); begins the report
#   restore.sh network   DHCP client identity, network.sh, gateway check, last chance, fallback setting; then
#                        moves the report into place
#   restore.sh           both, one after the other
# The report is complete and appears once, at the end of the network phase; until then its temporary file
# ($RESTORE_REPORT.tmp) exists, which is how a reader (the CLI's probe, the login banner) knows the restore is
# still running.
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
#   RESTORE_REPORT  the machine-readable report                (default /var/log/emergency-restore.report)
#   IDENTITY_ROOT   prefix for the DHCP client identity's paths (default: none, i.e. /)
#   GATEWAY_WAIT_S  rounds of probes a default gateway gets to answer, about 2 s each (default 8)
#   EMERGENCY_STATE_DIR  network.sh's and the last chance's state (default /run/emergency-network)
set -u

data=${EMERGENCY_DIR-/emergency}
ssh_dir=${SSH_DIR-/etc/ssh}
root_ssh_dir=${ROOT_SSH_DIR-/root/.ssh}
log=${RESTORE_LOG-/var/log/emergency-restore.log}
report=${RESTORE_REPORT-/var/log/emergency-restore.report}
identity_root=${IDENTITY_ROOT-}
gateway_wait_s=${GATEWAY_WAIT_S-8}
state_dir=${EMERGENCY_STATE_DIR-/run/emergency-network}
failures=0
# The report is written to a temporary file and moved into place at the end: a reader never sees half of it.
report_tmp="$report.tmp"

say() {
  printf 'emergency-restore: %s\n' "$*"
  printf '%s\n' "$*" >>"$log" 2>/dev/null
  # The console is where an admin with KVM/IPMI access looks when the network did not come back.
  if [ -w /dev/console ]; then printf 'emergency-restore: %s\n' "$*" >/dev/console 2>/dev/null; fi
  return 0
}
# record KIND NAME STATUS MESSAGE: one report line; tabs and newlines in the message become spaces.
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf '%s' "$4" | tr '\t\n' '  ')" >>"$report_tmp" 2>/dev/null
  return 0
}
step_failed() {
  failures=$((failures + 1))
  say "FAILED: $*"
}
# step_result NAME ok|failed|skipped MESSAGE: logs and reports the outcome of one step.
step_result() {
  if [ "$2" = failed ]; then step_failed "$3"; else say "$3"; fi
  record step "$1" "$2" "$3"
}

# The host keys, in as few processes as the checks allow (one cp for all, one chmod for the .pub files): this is
# what sshd waits for. Runs under umask 077 (phase_keys), so every file cp creates is at most 0600 from its first
# moment; a file that is there already would keep its mode when written over, so it is removed first.
install_host_keys() {
  if [ ! -d "$ssh_dir" ] && ! mkdir -p "$ssh_dir"; then
    step_result host-keys failed "cannot create $ssh_dir"
    return
  fi
  set --
  for key in "$data"/host-keys/ssh_host_*_key "$data"/host-keys/ssh_host_*_key.pub; do
    [ -f "$key" ] || continue
    set -- "$@" "$key"
    if [ -e "$ssh_dir/${key##*/}" ]; then rm -f "$ssh_dir/${key##*/}"; fi
  done
  if [ "$#" = 0 ]; then
    step_result host-keys failed "no host keys were packed: sshd will not start"
    return
  fi
  # cp goes on after a file it cannot copy; which ones arrived is checked below.
  cp -- "$@" "$ssh_dir/" || say "cp of the host keys into $ssh_dir failed"
  found=0
  bad=''
  pubs=0
  for key in "$@"; do
    name=${key##*/}
    if [ ! -f "$ssh_dir/$name" ]; then
      bad="$bad $name"
    elif [ "${name%.pub}" = "$name" ]; then
      found=$((found + 1))
    else
      pubs=$((pubs + 1))
    fi
  done
  # The public halves are public: 0644, as sshd and a reader expect, instead of the umask's 0600.
  if [ "$pubs" -gt 0 ] && ! chmod 644 "$ssh_dir"/ssh_host_*_key.pub; then bad="$bad (chmod of the .pub files)"; fi
  if [ -n "$bad" ]; then
    step_result host-keys failed "host keys installed: $found; not installed:$bad"
  elif [ "$found" = 0 ]; then
    step_result host-keys failed "no host keys were packed: sshd will not start"
  else
    step_result host-keys ok "host keys installed: $found"
  fi
}

# Root's authorized keys, under umask 077 (phase_keys): a new ~/.ssh is 0700 and the file 0600 from the start; an
# existing ~/.ssh is tightened, an existing file removed first (it would keep its mode).
install_authorized_keys() {
  if [ ! -f "$data/authorized_keys" ]; then
    step_result authorized-keys failed "no authorized_keys were packed: root login will not work"
    return
  fi
  target="$root_ssh_dir/authorized_keys"
  if [ -d "$root_ssh_dir" ]; then chmod 700 "$root_ssh_dir"; else mkdir -p "$root_ssh_dir"; fi
  if [ -e "$target" ]; then rm -f "$target"; fi
  if cat "$data/authorized_keys" >"$target"; then
    # Lines that do not start with `#` (as `grep -c '^[^#]'` counts them), counted by the shell: no process.
    key_count=0
    while IFS= read -r line || [ -n "$line" ]; do
      case $line in '' | '#'*) ;; *) key_count=$((key_count + 1)) ;; esac
    done <"$target"
    step_result authorized-keys ok "authorized keys for root: $key_count"
  else
    step_result authorized-keys failed "authorized keys not installed in $root_ssh_dir"
  fi
}

# The old system's DHCP client identity (machine-id, DUIDs, leases), packed by kexec-run.sh under
# dhcp-identity/files/ at their old paths: installed at the same paths before network.sh starts a DHCP client,
# so that the client asks for the same lease with the same identity.
install_dhcp_identity() {
  files="$data/dhcp-identity/files"
  if [ ! -d "$files" ]; then
    step_result dhcp-identity skipped "no DHCP client identity was packed"
    return
  fi
  list=$(cd "$files" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
  if [ -z "$list" ]; then
    step_result dhcp-identity skipped "the old system had no DHCP client identity files"
    return
  fi
  if (cd "$files" && find . -type f | sed 's|^\./||' | while read -r file; do
    mkdir -p "$identity_root/${file%/*}" && cat "$file" >"$identity_root/$file" || exit 1
  done); then
    step_result dhcp-identity ok "installed: ${list% }"
  else
    step_result dhcp-identity failed "not all installed: ${list% }"
  fi
}

restore_network() {
  if [ ! -f "$data/network.sh" ]; then
    step_result network failed "no network.sh was packed: the network is not restored"
    return
  fi
  # network.sh logs each of its own steps and never stops on one failure (ts/network/render.ts); its FAILED and
  # skipped lines go into the report as they are.
  out=$(sh "$data/network.sh" 2>&1)
  rc=$?
  printf '%s\n' "$out" >>"$log" 2>/dev/null
  printf '%s\n' "$out" | sed -n 's/^emergency-network: FAILED: //p' | while IFS= read -r line; do record network - failed "$line"; done
  printf '%s\n' "$out" | sed -n 's/^emergency-network: skipped: //p' | while IFS= read -r line; do record network - skipped "$line"; done
  if [ "$rc" = 0 ]; then
    step_result network ok "network restored"
  else
    step_result network failed "network.sh reported $rc failed step(s); see $log"
  fi
}

# Whether the neighbour entry says the address answered ARP / neighbour discovery.
neighbour_answered() {
  ip neigh show to "$1" dev "$2" 2>/dev/null | grep -qE 'REACHABLE|STALE|DELAY|PROBE|PERMANENT'
}

# probe_gateway ADDRESS DEVICE: one ping, from iputils or busybox, whichever there is.
probe_gateway() {
  if command -v ping >/dev/null 2>&1; then
    ping -c 1 -W 1 -I "$2" "$1" >/dev/null 2>&1
  elif command -v busybox >/dev/null 2>&1; then
    busybox ping -c 1 -W 1 -I "$2" "$1" >/dev/null 2>&1
  fi
  return 0
}

# probe_gateways: one probe of every default gateway (`GATEWAY DEVICE` lines on stdin) at once, back when the last
# one is: about 1 s when one does not answer (ping's -W 1), however many there are. In sequence, each dead gateway
# would add its second to every round, and enough of them would outlast the CLI's wait for the report.
probe_gateways() {
  while read -r gw dev; do probe_gateway "$gw" "$dev" & done
  wait
}

# The default gateways in the main table after network.sh, as `GATEWAY DEVICE` lines (IPv4, then IPv6).
default_gateways() {
  for family in -4 -6; do
    ip "$family" route show default 2>/dev/null | sed -n 's/.* via \([^ ]*\) dev \([^ ]*\).*/\1 \2/p'
  done
}

# NICs: interfaces backed by a device (not bonds, bridges, VLANs or lo), and veths, the NIC stand-in of the
# network-namespace tests (a rescue system has none of its own).
nics() {
  for dev in /sys/class/net/*; do
    if [ -e "$dev/device" ] || ip -d link show dev "${dev##*/}" 2>/dev/null | grep -q ' veth '; then echo "${dev##*/}"; fi
  done
}

# udhcpc's hook for the last chance: it only adds (an address, a default route beside the others), never flushes
# or replaces, so the static addresses and routes network.sh set stay (docs/network.md says why that is safe).
# shellcheck disable=SC2016 # the hook expands its own variables, set by udhcpc
write_udhcpc_hook() {
  mkdir -p "$state_dir" || return 1
  printf '%s\n' '#!/bin/sh' \
    '# udhcpc hook of the last-chance DHCP (scripts/restore.sh): adds, never flushes or replaces.' \
    'case $1 in' \
    '  bound | renew)' \
    '    ip -4 addr add "$ip/${mask:-24}" dev "$interface" 2>/dev/null' \
    '    for r in ${router-}; do ip -4 route append default via "$r" dev "$interface" 2>/dev/null; break; done' \
    '    echo "$interface $ip" >>"${0%/*}/last-chance.leases"' \
    '    ;;' \
    'esac' \
    'exit 0' >"$state_dir/last-chance.udhcpc" && chmod 755 "$state_dir/last-chance.udhcpc"
}

start_last_chance_dhcp() {
  nic=$1
  if command -v udhcpc >/dev/null 2>&1 && write_udhcpc_hook; then
    udhcpc -b -i "$nic" -s "$state_dir/last-chance.udhcpc" -p "$state_dir/last-chance-$nic.pid" </dev/null >/dev/null 2>&1 &
  elif command -v busybox >/dev/null 2>&1 && busybox udhcpc --help >/dev/null 2>&1 && write_udhcpc_hook; then
    busybox udhcpc -b -i "$nic" -s "$state_dir/last-chance.udhcpc" -p "$state_dir/last-chance-$nic.pid" </dev/null >/dev/null 2>&1 &
  elif command -v dhcpcd >/dev/null 2>&1; then
    # dhcpcd adds what it leased and removes only that; its routes get a metric above a static route's.
    dhcpcd -b -4 "$nic" </dev/null >/dev/null 2>&1 &
  else
    return 1
  fi
}

# " (N s)": the seconds since $1 (a `date +%s` reading), or nothing when either reading is missing.
seconds_since() {
  now=$(date +%s 2>/dev/null)
  case $1 in '' | *[!0-9]*) return 0 ;; esac
  case $now in '' | *[!0-9]*) return 0 ;; esac
  printf ' (%s s)' "$((now - $1))"
}

# The last chance: when no default gateway answers after network.sh, the restored configuration probably does not
# fit where the machine is now (the provider moved it, the gateway changed); a DHCP lease on a NIC with carrier may
# still make it reachable. The static addresses stay.
check_gateway() {
  gateways=$(default_gateways)
  if [ -n "$gateways" ]; then
    # A round pings every gateway at once (up to 1 s when one does not answer), then sleeps 1 s: about 2 s a round
    # however many gateways there are, so about 2 × GATEWAY_WAIT_S s in all; the report says how long it took.
    since=$(date +%s 2>/dev/null)
    waited=0
    while [ "$waited" -lt "$gateway_wait_s" ]; do
      # ping makes the kernel resolve the neighbour; the answer that counts is the neighbour entry, since a gateway
      # may drop ICMP but must answer ARP / neighbour discovery to route anything.
      printf '%s\n' "$gateways" | probe_gateways
      answered=$(printf '%s\n' "$gateways" | while read -r gw dev; do
        if neighbour_answered "$gw" "$dev"; then printf '%s on %s ' "$gw" "$dev"; fi
      done)
      if [ -n "$answered" ]; then
        step_result gateway ok "default gateway answers: ${answered% }"
        record step last-chance-dhcp skipped "not needed: a default gateway answers"
        return
      fi
      sleep 1
      waited=$((waited + 1))
    done
    step_result gateway failed "no default gateway answered in $gateway_wait_s rounds of probes$(seconds_since "$since"): $(printf '%s' "$gateways" | tr '\n' ',')"
  else
    step_result gateway failed "no default route after network.sh"
  fi
  for nic in $(nics); do ip link set dev "$nic" up 2>/dev/null; done
  # Carrier takes a moment after a link comes up.
  sleep 2
  started=''
  for nic in $(nics); do
    [ "$(cat "/sys/class/net/$nic/carrier" 2>/dev/null)" = 1 ] || continue
    if start_last_chance_dhcp "$nic"; then started="$started $nic"; fi
  done
  if [ -n "$started" ]; then
    step_result last-chance-dhcp ok "last chance: DHCP started on${started}, next to the static addresses"
  else
    step_result last-chance-dhcp failed "last chance: no NIC with carrier, or no DHCP client (udhcpc, dhcpcd)"
  fi
}

# What the restore data says about the fallback reboot (its live state: fallback-reboot.sh status).
fallback_setting() {
  seconds=$(sed -n 's/^fallback_reboot_seconds=//p' "$data/restore.env" 2>/dev/null)
  case $seconds in
    '' | off) record step fallback-reboot skipped "off" ;;
    *) record step fallback-reboot ok "armed: reboots into the installed system unless confirmed within $seconds s" ;;
  esac
}

finish_report() {
  record 'done' - "$1" "$failures failed step(s)"
  mv -f "$report_tmp" "$report" 2>/dev/null
  return 0
}

# Phase 1: what sshd needs. Begins the report; the log and the report's file are created before the umask tightens.
phase_keys() {
  mkdir -p "${log%/*}" "${report%/*}" 2>/dev/null
  : >"$report_tmp" 2>/dev/null
  # A report of an earlier run would read as this one's while the network phase runs.
  if [ -e "$report" ]; then rm -f "$report"; fi
  : >>"$log" 2>/dev/null
  record format 1 - "emergency restore report"
  [ -d "$data" ] || return 0
  umask 077
  install_host_keys
  install_authorized_keys
}

# Phase 2: the network, then the report moved into place. Continues the report phase 1 began (its failed steps
# count in `done`); run without phase 1, it begins one itself.
phase_network() {
  if [ ! -f "$report_tmp" ]; then
    mkdir -p "${log%/*}" "${report%/*}" 2>/dev/null
    : >"$report_tmp" 2>/dev/null
    record format 1 - "emergency restore report"
  fi
  # The pattern holds literal tabs, the report's field separator.
  failures=$(grep -c '^step	[^	]*	failed	' "$report_tmp" 2>/dev/null) || :
  failures=${failures:-0}
  if [ ! -d "$data" ]; then
    say "no $data directory: booted without emergency data, nothing to restore"
    finish_report skipped
    return
  fi
  install_dhcp_identity
  restore_network
  check_gateway
  fallback_setting
  say "done, $failures failed step(s)"
  if [ "$failures" = 0 ]; then finish_report ok; else finish_report failed; fi
}

case ${1-} in
  keys) phase_keys ;;
  network) phase_network ;;
  # The keys phase in a subshell: its umask 077 is for the key files only.
  '') (phase_keys); phase_network ;;
  *)
    echo "usage: restore.sh [keys|network]" >&2
    exit 2
    ;;
esac
exit 0
