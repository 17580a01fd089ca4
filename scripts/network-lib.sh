#!/bin/sh
# The helpers at the top of every /emergency/network.sh. ts/network/render.ts puts this file's text, from
# `set -u` on, into the script it renders, so network.sh stays one self-contained file that needs nothing
# else in the rescue system, and its helpers always match the steps the same version of emergency writes.
# A file of its own so that shellcheck sees it; it does nothing when run on its own.
#
# Environment (optional): EMERGENCY_CONSOLE (/dev/console), RESOLV_CONF (/etc/resolv.conf),
#   EMERGENCY_STATE_DIR (/run/emergency-network: marks DHCP clients already started),
#   EMERGENCY_NIC_WAIT (10: seconds find_nic waits for a NIC to appear).

set -u
failures=0
console=${EMERGENCY_CONSOLE-/dev/console}
resolv_conf=${RESOLV_CONF-/etc/resolv.conf}
state_dir=${EMERGENCY_STATE_DIR-/run/emergency-network}

say() {
  printf 'emergency-network: %s\n' "$*"
  # The console is where someone with KVM/IPMI access looks when the network did not come back.
  if [ -w "$console" ]; then printf 'emergency-network: %s\n' "$*" >"$console" 2>/dev/null; fi
  return 0
}

# step DESCRIPTION COMMAND...: runs one step; a failure is logged and counted, and the script goes on.
step() {
  desc=$1
  shift
  if out=$("$@" 2>&1); then
    say "ok: $desc"
  else
    failures=$((failures + 1))
    say "FAILED: $desc: $(printf '%s' "$out" | tr '\n' ' ')"
  fi
}

# find_nic MAC: the name of the physical interface with this MAC, waiting up to EMERGENCY_NIC_WAIT seconds
# (default 10) for it to appear: a NIC whose driver or firmware loads late must not be given up on at once.
find_nic() {
  waited=0
  until lookup_nic "$1"; do
    [ "$waited" -lt "$((${EMERGENCY_NIC_WAIT-10} * 4))" ] || return 1
    sleep 0.25
    waited=$((waited + 1))
  done
}

# lookup_nic MAC: find_nic without waiting. Bond members report their permanent MAC;
# bonds, bridges and VLANs (which copy a member's MAC) are not NICs.
lookup_nic() {
  for dir in /sys/class/net/*; do
    [ -e "$dir/address" ] || continue
    case $(cat "$dir/uevent" 2>/dev/null) in
      *DEVTYPE=bond* | *DEVTYPE=bridge* | *DEVTYPE=vlan*) continue ;;
    esac
    if [ -r "$dir/bonding_slave/perm_hwaddr" ]; then
      mac=$(cat "$dir/bonding_slave/perm_hwaddr")
    else
      mac=$(cat "$dir/address")
    fi
    if [ "$mac" = "$1" ]; then
      printf '%s\n' "${dir##*/}"
      return 0
    fi
  done
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
