#!/bin/sh
# The hardware watchdog across the jump (docs/watchdog.md says what holds, with the kernel code paths).
#
#   watchdog.sh arm MODULES...   on the host, by kexec-trigger.sh just before `kexec -e`: start a free watchdog
#                                whose driver is one of MODULES (the ones the rescue image takes it over with),
#                                with nowayout set first, so the watchdog core's reboot notifier cannot stop it
#                                during kexec (i6300esb then sets its hardware lock). Prints watchdog_armed=DEV
#                                and watchdog_timeout_s=N, or watchdog_skipped=WHY.
#   watchdog.sh keep-feeding     on the host, when `kexec -e` returned: an armed watchdog cannot be stopped any
#                                more, so feed it for as long as this system runs.
#   watchdog.sh feed             in the rescue, started early by its init: take /dev/watchdog over and feed it
#                                until the fallback reboot is confirmed (or is off), then stop it; where it
#                                cannot stop (the host's nowayout lock), keep feeding it.
#
# Environment (optional, for tests):
#   EMERGENCY_FALLBACK_DIR   the fallback reboot's state (default /run/emergency-fallback, scripts/fallback-reboot.sh)
#   EMERGENCY_WATCHDOG_MIN_S the shortest host timeout worth arming: it must cover kexec up to the rescue's feeder
#                            (default 20)
#   EMERGENCY_SYSFS, EMERGENCY_DEV  where sysfs and the device nodes are (default /sys, /dev)
#   EMERGENCY_CONSOLE        where messages go besides stdout (default /dev/console: the serial or IPMI console
#                            is where someone looks when the machine did not come back)
set -u

fallback=${EMERGENCY_FALLBACK_DIR-/run/emergency-fallback}
min_timeout_s=${EMERGENCY_WATCHDOG_MIN_S-20}
sysfs=${EMERGENCY_SYSFS-/sys}
devdir=${EMERGENCY_DEV-/dev}
console=${EMERGENCY_CONSOLE-/dev/console}

say() {
  printf 'emergency-watchdog: %s\n' "$*"
  if [ -w "$console" ]; then printf 'emergency-watchdog: %s\n' "$*" >>"$console" 2>/dev/null; fi
  return 0
}

# Whether watchdog class device $1 (a /sys/class/watchdog/watchdogN directory) is driven by module $2: through
# its parent device's driver where it has one, else by its identity, which drivers such as i6300esb also use as
# their driver's name (/sys/module/i6300esb/drivers/pci:i6300ESB timer); their class device has no parent.
driven_by() {
  link=$(readlink "$1/device/driver/module" 2>/dev/null) && [ "${link##*/}" = "$2" ] && return 0
  identity=$(cat "$1/identity" 2>/dev/null) || return 1
  for driver in "$sysfs/module/$2/drivers/"*; do
    [ "${driver##*:}" = "$identity" ] && return 0
  done
  return 1
}

# Feeds the watchdog open on fd 3 every $1 seconds while `$2` (a command) fails; returns when it succeeds.
feed_until() {
  period=$1
  shift
  until "$@"; do
    printf '.' >&3 || return 1
    sleep "$period"
  done
}

never() { return 1; }

# The rescue is confirmed, or nobody will confirm it (fallback off): the watchdog's work is done.
confirmed() {
  [ -f "$fallback/decision/confirmed" ] || [ "$(cat "$fallback/seconds" 2>/dev/null)" = off ]
}

# A feeding period well inside the timeout of watchdog class device $1.
period_for() {
  timeout=$(cat "$1/timeout" 2>/dev/null || echo 30)
  period=$((timeout / 4))
  [ "$period" -ge 1 ] || period=1
  echo "$period"
}

arm() {
  found=0
  for dev in "$sysfs"/class/watchdog/watchdog*; do
    [ -d "$dev" ] || continue
    found=1
    name=${dev##*/}
    module=
    for m in "$@"; do driven_by "$dev" "$m" && module=$m; done
    if [ -z "$module" ]; then
      echo "watchdog_skipped=$name: its driver ($(cat "$dev/identity" 2>/dev/null)) is not one the rescue image takes over"
      continue
    fi
    timeout=$(cat "$dev/timeout" 2>/dev/null || echo 0)
    if [ "$timeout" -lt "$min_timeout_s" ]; then
      echo "watchdog_skipped=$name: timeout ${timeout} s does not cover the rescue's boot (at least $min_timeout_s s)"
      continue
    fi
    if [ "$(cat "$dev/state" 2>/dev/null)" = active ]; then
      # Someone (systemd's RuntimeWatchdogSec, a watchdog daemon) already runs it: whether it survives the jump
      # is theirs to decide (docs/watchdog.md); opening it would fail with EBUSY anyway.
      echo "watchdog_skipped=$name: already running under another owner"
      continue
    fi
    # nowayout first: the driver reads it when the timer starts (i6300esb: the hardware lock bit), and the
    # reboot notifier, which runs during kexec, can then not stop it.
    if ! echo 1 >"$dev/nowayout" 2>/dev/null; then
      echo "watchdog_skipped=$name: nowayout cannot be set (no writable $dev/nowayout)"
      continue
    fi
    # Opening starts it; closing without the magic 'V' leaves it running with the full timeout from this ping.
    if ! { printf '.' >"$devdir/$name"; } 2>/dev/null; then
      echo "watchdog_skipped=$name: $devdir/$name cannot be opened"
      continue
    fi
    say "$name ($module) armed with ${timeout} s: unless the rescue system takes it over, it resets this machine"
    echo "watchdog_armed=$name"
    echo "watchdog_timeout_s=$timeout"
    return 0
  done
  [ "$found" = 1 ] || echo 'watchdog_skipped=none: no watchdog device'
}

keep_feeding() {
  for dev in "$sysfs"/class/watchdog/watchdog*; do
    [ "$(cat "$dev/state" 2>/dev/null)" = active ] || continue
    name=${dev##*/}
    exec 3>"$devdir/$name" || return 1
    say "$name cannot be stopped any more: fed for as long as this system runs"
    feed_until "$(period_for "$dev")" never
  done
}

feed() {
  dev=
  for candidate in "$sysfs"/class/watchdog/watchdog*; do
    [ -d "$candidate" ] && dev=$candidate && break
  done
  if [ -z "$dev" ]; then
    say 'no watchdog device: nothing to take over'
    return 0
  fi
  name=${dev##*/}
  exec 3>"$devdir/$name" || {
    say "cannot open $devdir/$name"
    return 1
  }
  period=$(period_for "$dev")
  say "$name taken over: fed every $period s until the rescue is confirmed"
  feed_until "$period" confirmed
  # The magic close stops a watchdog that can stop; a locked one stays active and must be fed for good.
  printf 'V' >&3
  exec 3>&-
  sleep 1
  if [ "$(cat "$dev/state" 2>/dev/null)" = active ]; then
    exec 3>"$devdir/$name" || return 1
    say "$name cannot be stopped (nowayout): fed for as long as the rescue runs"
    feed_until "$period" never
  fi
  say "$name stopped: the rescue is confirmed"
}

case ${1-} in
  arm)
    shift
    arm "$@"
    ;;
  keep-feeding) keep_feeding ;;
  feed) feed ;;
  *)
    echo "usage: watchdog.sh arm MODULES... | keep-feeding | feed" >&2
    exit 2
    ;;
esac
