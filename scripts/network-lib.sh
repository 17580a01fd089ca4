#!/bin/sh
# The helpers at the top of every /emergency/network.sh. ts/network/render.ts puts this file's text, from
# `set -u` on, into the script it renders, so network.sh stays one self-contained file that needs nothing
# else in the rescue system, and its helpers always match the steps the same version of emergency writes.
# A file of its own so that shellcheck sees it; it does nothing when run on its own.
#
# Every fork counts: network.sh runs between the kexec and the rescue's sshd answering, on one vCPU that may be
# emulated (QEMU TCG: 40-60 ms per fork and exec). So consecutive `ip` steps share one `ip -batch` run
# (ip_step, ip_flush), and NICs are found with `read`, not `$(cat ...)`.
#
# Environment (optional): EMERGENCY_CONSOLE (/dev/console), RESOLV_CONF (/etc/resolv.conf),
#   EMERGENCY_STATE_DIR (/run/emergency-network: marks DHCP clients already started),
#   EMERGENCY_NIC_WAIT (10: seconds find_nic waits for a NIC to appear),
#   EMERGENCY_IP_BATCH (`no`: one `ip` per step, as without iproute2; default: batches when ip has -batch).

set -u
failures=0
console=${EMERGENCY_CONSOLE-/dev/console}
resolv_conf=${RESOLV_CONF-/etc/resolv.conf}
state_dir=${EMERGENCY_STATE_DIR-/run/emergency-network}
nl='
'

# say MESSAGE...: one line of the log (stdout, and the console). The ip steps still queued run first, so the
# log keeps the order of the steps.
say() {
  ip_flush
  tell "$*"
}

# tell MESSAGE: say, without running the queued ip steps (for ip_flush itself).
tell() {
  printf 'emergency-network: %s\n' "$1"
  # The console is where someone with KVM/IPMI access looks when the network did not come back.
  if [ -w "$console" ]; then printf 'emergency-network: %s\n' "$1" >"$console" 2>/dev/null; fi
  return 0
}

# step DESCRIPTION COMMAND...: runs one step; a failure is logged and counted, and the script goes on.
step() {
  ip_flush
  desc=$1
  shift
  if out=$("$@" 2>&1); then
    tell "ok: $desc"
  else
    failures=$((failures + 1))
    tell "FAILED: $desc: $(printf '%s' "$out" | tr '\n' ' ')"
  fi
}

# ip_step DESCRIPTION IP-ARGUMENTS...: the step `ip IP-ARGUMENTS...`, queued for one `ip -force -batch` run with
# the ip steps next to it (ip_flush). It is reported exactly as `step` reports it, in its place: anything else
# that runs or logs (step, say, find_nic) runs the queue first. The arguments carry their address family
# (`route replace ::/0`, not `-6 route replace default`): a batch line cannot set ip's -4/-6.
# ip_batch: '' until the first batch shows whether ip has -batch, then yes or no (busybox's ip has none).
ip_batch=${EMERGENCY_IP_BATCH-}
ip_queue=''
ip_descs=''
# After each step's line, one that always fails, so that ip's `Command failed -:LINE` lines say where each
# step's output ends, and where ip stopped if it exits half-way (it does on some argument errors).
ip_mark=emergency-end-of-step
ip_step() {
  ip_desc=$1
  shift
  if [ "$ip_batch" != no ]; then
    ip_line=''
    for ip_word in "$@"; do
      case $ip_word in
        # What ip's batch parser would split, join or cut at (a comment): such a step runs on its own.
        '' | *[[:space:]]* | *[\'\"\#\\]*)
          ip_line=''
          break
          ;;
      esac
      ip_line="$ip_line $ip_word"
    done
    if [ -n "$ip_line" ]; then
      ip_queue="$ip_queue${ip_line# }$nl$ip_mark$nl"
      ip_descs="$ip_descs$ip_desc$nl"
      return 0
    fi
  fi
  # `step` runs the queue first, so the order stays.
  step "$ip_desc" ip "$@"
}
# ip_flush: runs the queued ip steps in one `ip -force -batch` (-force: a failed line does not stop the ones after
# it) and reports each as `step` would: ok, or FAILED with what ip said about its line.
ip_flush() {
  [ -n "$ip_queue" ] || return 0
  ip_q=$ip_queue
  ip_d=$ip_descs
  ip_queue=''
  ip_descs=''
  while [ -n "$ip_q" ]; do
    ip_err=$(ip -force -batch - 2>&1 >/dev/null <<EOF
$ip_q
EOF
    )
    ip_rc=$?
    case $ip_err in
      *"Command failed -:"*) ip_batch=yes ;;
      *)
        # Not one line answered: an ip without -batch (busybox's prints its usage), unless this ip has answered
        # a batch before, so it stopped on the first line (reported below).
        if [ "$ip_batch" != yes ]; then
          ip_batch=no
          ip_each
          return 0
        fi
        ;;
    esac
    ip_n=0
    while [ -n "$ip_d" ]; do
      ip_desc=${ip_d%%"$nl"*}
      ip_d=${ip_d#*"$nl"}
      ip_q=${ip_q#*"$nl"}
      ip_q=${ip_q#*"$nl"}
      ip_n=$((ip_n + 1))
      ip_failed=''
      ip_ended=''
      ip_msg=''
      # This step's output: ip's messages, then `Command failed -:LINE` if the step failed, then the marker's.
      while [ -n "$ip_err" ]; do
        case $ip_err in
          *"$nl"*)
            ip_line=${ip_err%%"$nl"*}
            ip_err=${ip_err#*"$nl"}
            ;;
          *)
            ip_line=$ip_err
            ip_err=''
            ;;
        esac
        case $ip_line in
          "Command failed -:$((ip_n * 2))")
            ip_ended=1
            break
            ;;
          "Command failed -:$((ip_n * 2 - 1))") ip_failed=1 ;;
          *) if [ -z "$ip_failed" ]; then ip_msg="${ip_msg:+$ip_msg }$ip_line"; fi ;;
        esac
      done
      if [ -z "$ip_ended" ]; then
        # ip exited on this step's line (or was killed): the step failed, and the ones after it go again.
        failures=$((failures + 1))
        tell "FAILED: $ip_desc: ${ip_msg:-ip -batch stopped with status $ip_rc}"
        break
      elif [ -n "$ip_failed" ]; then
        failures=$((failures + 1))
        tell "FAILED: $ip_desc: $ip_msg"
      else
        tell "ok: $ip_desc"
      fi
    done
  done
}

# ip_each: ip_flush for an ip without -batch: each queued step on its own, through `step`.
ip_each() {
  set -f
  while [ -n "$ip_d" ]; do
    ip_desc=${ip_d%%"$nl"*}
    ip_d=${ip_d#*"$nl"}
    ip_line=${ip_q%%"$nl"*}
    ip_q=${ip_q#*"$nl"}
    ip_q=${ip_q#*"$nl"}
    # shellcheck disable=SC2086 # split on purpose: ip_step queued only words without blanks; globbing is off
    step "$ip_desc" ip $ip_line
  done
  set +f
}

# find_nic MAC: sets nic to the name of the physical interface with this MAC, waiting up to EMERGENCY_NIC_WAIT
# seconds (default 10) for it to appear: a NIC whose driver or firmware loads late must not be given up on at
# once. nic is empty (status 1) if none appeared. A variable, not output: `$(find_nic ...)` would fork.
find_nic() {
  ip_flush
  waited=0
  until lookup_nic "$1"; do
    [ "$waited" -lt "$((${EMERGENCY_NIC_WAIT-10} * 4))" ] || return 1
    sleep 0.25
    waited=$((waited + 1))
  done
}

# lookup_nic MAC: find_nic without waiting. Bond members report their permanent MAC;
# bonds, bridges and VLANs (which copy a member's MAC) are not NICs.
# shellcheck disable=SC2034 # nic is read by the steps that follow these helpers in network.sh
lookup_nic() {
  for dir in /sys/class/net/*; do
    [ -e "$dir/address" ] || continue
    devtype=''
    while IFS= read -r line; do
      case $line in DEVTYPE=*) devtype=${line#DEVTYPE=} ;; esac
    done 2>/dev/null <"$dir/uevent"
    case $devtype in bond* | bridge* | vlan*) continue ;; esac
    mac=''
    if [ -r "$dir/bonding_slave/perm_hwaddr" ]; then
      read -r mac <"$dir/bonding_slave/perm_hwaddr"
    else
      read -r mac <"$dir/address"
    fi
    if [ "$mac" = "$1" ]; then
      nic=${dir##*/}
      return 0
    fi
  done
  nic=''
  return 1
}

# new_link NAME IP-LINK-ADD-ARGS...: creates a virtual interface unless one of that name exists already.
new_link() {
  if [ -e "/sys/class/net/$1" ]; then return 0; fi
  shift
  ip link add "$@"
}

# enslave MEMBER MASTER: puts MEMBER into a bond or bridge (bonds take members only while they are down).
enslave() {
  master=$(readlink "/sys/class/net/$1/master" 2>/dev/null) || master=''
  if [ "${master##*/}" = "$2" ]; then return 0; fi
  ip link set dev "$1" down && ip link set dev "$1" master "$2" && ip link set dev "$1" up
}

# add_rule -4|-6 ARGS...: adds a policy rule exactly once (ip rule add would add a duplicate).
add_rule() {
  family=$1
  shift
  n=0
  while [ "$n" -lt 64 ] && ip "$family" rule del "$@" 2>/dev/null; do n=$((n + 1)); done
  ip "$family" rule add "$@"
}

# ignore_ra IFNAME: no addresses or routes from router advertisements, as on the old system, where this
# interface had none: the rescue kernel's default (accept) could add a second IPv6 default route.
ignore_ra() {
  [ -e "/proc/sys/net/ipv6/conf/$1/accept_ra" ] || return 0
  echo 0 >"/proc/sys/net/ipv6/conf/$1/accept_ra" && echo 0 >"/proc/sys/net/ipv6/conf/$1/autoconf"
}

# accept_ra IFNAME: takes IPv6 addresses and routes from router advertisements, even if forwarding is on.
accept_ra() {
  echo 2 >"/proc/sys/net/ipv6/conf/$1/accept_ra" && echo 1 >"/proc/sys/net/ipv6/conf/$1/autoconf"
}

# start_dhcp IFNAME: starts the first DHCP client there is, in the background, once per interface.
start_dhcp() {
  mark="$state_dir/dhcp-$1"
  if [ -e "$mark" ]; then return 0; fi
  mkdir -p "$state_dir" || return 1
  if command -v dhcpcd >/dev/null 2>&1; then
    dhcpcd -b -4 "$1" </dev/null >/dev/null 2>&1 &
  elif command -v dhclient >/dev/null 2>&1; then
    dhclient -4 -nw "$1" </dev/null >/dev/null 2>&1 &
  elif command -v udhcpc >/dev/null 2>&1; then
    udhcpc -b -i "$1" -p "$state_dir/udhcpc-$1.pid" </dev/null >/dev/null 2>&1 &
  else
    echo "no DHCP client (dhcpcd, dhclient, udhcpc); the last leased address stays, statically"
    return 1
  fi
  : >"$mark"
}

# write_resolv_conf LINE...: replaces resolv.conf in one step (also when it was a symlink).
write_resolv_conf() {
  printf '%s\n' "$@" >"$resolv_conf.emergency-new" && mv -f "$resolv_conf.emergency-new" "$resolv_conf"
}
