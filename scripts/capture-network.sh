#!/bin/sh
# Prints the host's network state as sections (wire format: ts/sections.ts) for ts/network/capture.ts.
# Read-only; runs as root on the host (non-root works too: nothing here needs privileges).
#
# Usage: capture-network.sh [IP_COMMAND...]
#   IP_COMMAND  how to run iproute2's ip (default: ip), e.g. the image's own
#               `sh /run/x/run-tool.sh ip` on hosts without iproute2.
#
# Sections: ip-addr (`ip -j -d addr`: links with their details and addresses; `dynamic` marks DHCP/RA addresses),
# ip-route4, ip-route6 (all tables), ip-rule4, ip-rule6, rt-tables (names of routing tables), resolv-conf,
# resolved-resolv-conf (systemd-resolved's upstream servers, when present).
# A section whose command failed is printed as `NAME failed RC` with the error as its body.
# When ip is missing or has no JSON output it prints only `capture-unavailable no-ip` or `capture-unavailable no-ip-json`, so
# the caller can run it again with the image's ip. It prints no facts and never exits the calling shell.
set -eu

section() {
  printf '@@emergency-section %s\n' "$*"
}

# ip_section NAME 'IP ARGS' IP_COMMAND...: the JSON of one ip command, or NAME failed RC with its error.
ip_section() {
  name=$1
  args=$2
  shift 2
  # shellcheck disable=SC2086 # $args is a constant list of ip options, split on purpose
  if out=$("$@" $args 2>/dev/null); then
    section "$name"
    printf '%s\n' "$out"
  else
    rc=$?
    section "$name" failed "$rc"
    # shellcheck disable=SC2086
    { "$@" $args 2>&1 >/dev/null || true; } | head -c 2000
    echo
  fi
}

# file_section NAME PATH: the file's content, or NAME missing.
file_section() {
  if [ -r "$2" ]; then
    section "$1"
    cat "$2"
  else
    section "$1" missing
  fi
}

capture() {
  if [ "$#" -eq 0 ]; then set -- ip; fi
  if ! command -v "$1" >/dev/null 2>&1; then
    section capture-unavailable no-ip
    return 0
  fi
  # busybox ip and iproute2 before 4.13 have no -j: their output would not parse. The first section is its own
  # probe (one exec less of ip, ~40 ms on a slow CPU); only when it is not JSON does `link show lo` tell an ip
  # without -j from one that failed on addr.
  addr=$("$@" -j -d addr show 2>/dev/null) || addr=''
  case $addr in
    '['*)
      section ip-addr
      printf '%s\n' "$addr"
      ;;
    *)
      probe=$("$@" -j link show lo 2>/dev/null) || probe=''
      case $probe in
        '['*) ip_section ip-addr '-j -d addr show' "$@" ;;
        *)
          section capture-unavailable no-ip-json
          return 0
          ;;
      esac
      ;;
  esac
  ip_section ip-route4 '-j -4 route show table all' "$@"
  ip_section ip-route6 '-j -6 route show table all' "$@"
  ip_section ip-rule4 '-j -4 rule show' "$@"
  ip_section ip-rule6 '-j -6 rule show' "$@"

  # Table names are local to the host (rt_tables); the rescue system's ip only knows the numbers.
  section rt-tables
  for f in /usr/share/iproute2/rt_tables /usr/lib/iproute2/rt_tables /etc/iproute2/rt_tables \
    /usr/share/iproute2/rt_tables.d/*.conf /etc/iproute2/rt_tables.d/*.conf; do
    if [ -r "$f" ]; then cat "$f"; fi
  done

  file_section resolv-conf /etc/resolv.conf
  if [ -r /run/systemd/resolve/resolv.conf ]; then
    file_section resolved-resolv-conf /run/systemd/resolve/resolv.conf
  fi
  return 0
}

capture "$@"
