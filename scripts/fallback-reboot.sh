#!/bin/sh
# The rescue system's fallback reboot, a router's "commit confirmed": unless someone confirms within
# fallback_reboot_seconds (from /emergency/restore.env) that the rescue system is reachable, it syncs (with a
# deadline) and reboots through the firmware into the host's installed system, which answered SSH before the kexec.
# Both images run this one file: the Debian test image's /init starts `run` in the background, the NixOS image
# runs it as a systemd unit (modules/fallback.nix). Layout and state: docs/image-layout.md.
#
#   fallback-reboot.sh run           arm from restore.env and wait; reboots unless confirmed (the long-running part)
#   fallback-reboot.sh confirm BY    confirm (BY: cli, login, …); prints the state; exit 1 when it is too late
#   fallback-reboot.sh login         what the login shell's profile calls: confirms only for root at a terminal
#   fallback-reboot.sh status        prints the state
#
# State lines printed by confirm and status (key=value; the CLI parses them, ts/fallback.ts):
#   fallback_state=off|not-armed|armed|confirmed|rebooting
#   fallback_seconds=N               (armed, confirmed, rebooting)
#   fallback_remaining_s=N           (armed: seconds until the reboot)
#   fallback_confirmed_by=BY         (confirmed)
#   fallback_confirmed_after_s=N     (confirmed: seconds after it was armed)
#
# The decision between "confirmed" and "reboot" is one `mkdir` (atomic): whoever creates the directory first wins,
# so a confirmation that arrives as the deadline passes is either honoured or told that it came too late.
#
# Environment (all optional, for tests):
#   EMERGENCY_DIR               the restore data                   (default /emergency)
#   EMERGENCY_FALLBACK_DIR      the state directory                (default /run/emergency-fallback)
#   EMERGENCY_FALLBACK_REBOOT   a command run by sh -c instead of the real reboot (tests)
#   EMERGENCY_CONSOLE           where messages go besides stdout   (default /dev/console)
set -u

data=${EMERGENCY_DIR-/emergency}
state=${EMERGENCY_FALLBACK_DIR-/run/emergency-fallback}
console=${EMERGENCY_CONSOLE-/dev/console}
# Bounds for the reboot itself: sync may block forever on a dying disk, and reboot -f under systemd goes through
# PID 1, which may be wedged; after both, the kernel's own sysrq reboot.
sync_deadline_s=10
reboot_deadline_s=20

say() {
  printf 'emergency-fallback: %s\n' "$*"
  if [ -w "$console" ]; then printf 'emergency-fallback: %s\n' "$*" >"$console" 2>/dev/null; fi
  return 0
}

# Seconds since boot: monotonic, unlike the wall clock, which the rescue kernel took from an RTC that may be wrong.
uptime_s() {
  read -r up _ </proc/uptime
  echo "${up%.*}"
}

read_state() {
  cat "$state/$1" 2>/dev/null
}

print_state() {
  if [ ! -f "$state/seconds" ]; then
    echo 'fallback_state=not-armed'
    return
  fi
  seconds=$(read_state seconds)
  if [ "$seconds" = off ]; then
    echo 'fallback_state=off'
    return
  fi
  if [ -f "$state/decision/confirmed" ]; then
    echo 'fallback_state=confirmed'
    echo "fallback_seconds=$seconds"
    echo "fallback_confirmed_by=$(sed -n 1p "$state/decision/confirmed")"
    echo "fallback_confirmed_after_s=$(sed -n 2p "$state/decision/confirmed")"
  elif [ -d "$state/decision" ]; then
    echo 'fallback_state=rebooting'
    echo "fallback_seconds=$seconds"
  else
    remaining=$(($(read_state deadline) - $(uptime_s)))
    [ "$remaining" -ge 0 ] || remaining=0
    echo 'fallback_state=armed'
    echo "fallback_seconds=$seconds"
    echo "fallback_remaining_s=$remaining"
  fi
}

# await_decision: the decision directory is made first (the atomic part) and its confirmed or reboot file a moment
# later; waits for that file (at most 20 s), so that who decided can be read.
await_decision() {
  tries=0
  while [ ! -f "$state/decision/confirmed" ] && [ ! -f "$state/decision/reboot" ] && [ "$tries" -lt 20 ]; do
    sleep 1
    tries=$((tries + 1))
  done
}

# confirm BY: returns 0 when confirmed (now or before) or off, 1 when the reboot was already decided or nothing is armed.
confirm() {
  by=$1
  if [ ! -f "$state/seconds" ]; then
    print_state
    return 1
  fi
  if [ "$(read_state seconds)" = off ]; then
    print_state
    return 0
  fi
  if mkdir "$state/decision" 2>/dev/null; then
    printf '%s\n%s\n' "$by" "$(($(uptime_s) - $(read_state armed_at)))" >"$state/decision/confirmed.tmp"
    mv -f "$state/decision/confirmed.tmp" "$state/decision/confirmed"
    say "fallback reboot disarmed: confirmed by $by"
  fi
  # A confirmation that lost the race to the reboot: mkdir failed and no confirmed file will ever appear.
  await_decision
  print_state
  [ -f "$state/decision/confirmed" ]
}

wait_bounded() {
  pid=$1 limit=$2 waited=0
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt "$limit" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  ! kill -0 "$pid" 2>/dev/null
}

reboot_now() {
  if [ -n "${EMERGENCY_FALLBACK_REBOOT-}" ]; then
    sh -c "$EMERGENCY_FALLBACK_REBOOT"
    return
  fi
  sync &
  wait_bounded $! "$sync_deadline_s" || say "sync did not finish within $sync_deadline_s s; rebooting anyway"
  # reboot -f: busybox calls reboot(2) at once, systemd's asks PID 1 for a forced reboot; neither kexecs
  # (LINUX_REBOOT_CMD_RESTART), so the firmware boots the installed system from its disk.
  reboot -f &
  wait_bounded $! "$reboot_deadline_s"
  say "reboot -f did not reboot within $reboot_deadline_s s; rebooting through sysrq"
  echo b >/proc/sysrq-trigger
}

run() {
  seconds=$(sed -n 's/^fallback_reboot_seconds=//p' "$data/restore.env" 2>/dev/null)
  mkdir -p "$state"
  case $seconds in
    '' | off)
      # No deadline in the restore data: switched off (--fallback-reboot off), or booted without restore data.
      echo off >"$state/seconds"
      say "fallback reboot is off"
      return 0
      ;;
    *[!0-9]*)
      # A broken value must not strand the host: fall back to the default.
      say "fallback_reboot_seconds=$seconds in $data/restore.env is not a number of seconds; using 900"
      seconds=900
      ;;
  esac
  now=$(uptime_s)
  echo "$now" >"$state/armed_at"
  echo $((now + seconds)) >"$state/deadline"
  echo "$seconds" >"$state/seconds"
  say "fallback reboot armed: unless confirmed within $seconds s, this rescue system reboots into the installed system"
  while [ "$(uptime_s)" -lt "$((now + seconds))" ]; do
    if [ -d "$state/decision" ]; then
      # Seen between confirm's mkdir and its confirmed file, this said "confirmed by " (an e2e run caught it).
      await_decision
      say "fallback reboot disarmed (confirmed by $(sed -n 1p "$state/decision/confirmed" 2>/dev/null))"
      return 0
    fi
    sleep 1
  done
  if ! mkdir "$state/decision" 2>/dev/null; then
    say "fallback reboot disarmed at its deadline (confirmed by $(sed -n 1p "$state/decision/confirmed" 2>/dev/null))"
    return 0
  fi
  : >"$state/decision/reboot"
  say "not confirmed within $seconds s: syncing and rebooting into the installed system"
  reboot_now
}

case ${1-} in
  run) run ;;
  confirm)
    [ $# -ge 2 ] || { echo 'usage: fallback-reboot.sh confirm BY' >&2; exit 2; }
    confirm "$2"
    ;;
  login)
    # Only a person at a terminal, as root: `ssh root@host cmd` (no terminal, no login shell) and other users
    # leave the fallback armed.
    if [ -t 0 ] && [ "$(id -u)" = 0 ] && [ -f "$state/seconds" ] && [ "$(read_state seconds)" != off ] && [ ! -d "$state/decision" ]; then
      confirm login >/dev/null && echo 'emergency: fallback reboot disarmed by this login; reboot yourself when done' >&2
    fi
    exit 0
    ;;
  status) print_state ;;
  *)
    echo 'usage: fallback-reboot.sh run | confirm BY | login | status' >&2
    exit 2
    ;;
esac
