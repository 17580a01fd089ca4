#!/bin/sh
# /init of the Debian test image's rescue system (docs/test-image.md): the stand-in for the NixOS rescue system.
# /bin/sh is dash: Debian's busybox-static shell prefers its own applets over PATH, so under it `ip` would be
# busybox's, not the iproute2 the restore script needs.
# Mounts the API filesystems, loads the NIC drivers and waits for the NICs, marks the system as the rescue,
# arms the fallback reboot and runs the project's restore script's keys phase (the same files the NixOS image
# runs), then hands PID 1 to busybox init, which runs sshd with the restored host keys and, at the same time, the
# restore's network phase and the login banner. It never generates host keys: a rescue that cannot prove it is
# the host must not answer as one.
#
# Placeholders (filled in by ts/test-image/build.ts):
#   @name@      the image's human name (image.info `name`)
#   @modules@   NIC and network-restore kernel modules to load, space-separated
#   @watchdog_modules@  hardware watchdog drivers to load and feed (image.info watchdog_modules; may be empty)
#
# Test switch on the kernel command line (ts/test/e2e/watchdog.test.ts): emergency.test.hang=early stops here,
# before the fallback reboot is armed and before any watchdog is fed, as a rescue that hangs in early boot would.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=755,nosuid,nodev run /run
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm

log() { echo "emergency-rescue: $*" >/dev/console; }

case " $(cat /proc/cmdline) " in
  *" emergency.test.hang=early "*)
    log "emergency.test.hang=early: hanging before the fallback reboot is armed"
    while :; do sleep 3600; done
    ;;
esac

# A hardware watchdog the host armed before the jump keeps counting (docs/watchdog.md): load its driver and take it
# over before anything that could take long; it is fed until the rescue is confirmed.
watchdog_modules='@watchdog_modules@'
for module in $watchdog_modules; do
  modprobe "$module" || log "cannot load watchdog module $module"
done
sh /usr/lib/emergency/watchdog.sh feed </dev/null >/dev/null 2>&1 &

# The fallback reboot first, before anything that could hang: unless the CLI or an interactive root login confirms
# this rescue in time, it reboots into the installed system (scripts/fallback-reboot.sh, the NixOS image's too).
sh /etc/emergency/fallback-reboot.sh run </dev/null >/dev/null 2>&1 &

modules='@modules@'
for module in $modules; do
  modprobe "$module" || log "cannot load module $module"
done

# Wait until every PCI network controller (class 0x02xxxx) has an interface: the restore script matches NICs by
# MAC and must see all of them. Poll for at most 10 s; a NIC without a driver must not block the rescue forever.
nics_expected() {
  n=0
  for class in /sys/bus/pci/devices/*/class; do
    case $(cat "$class" 2>/dev/null) in 0x02*) n=$((n + 1)) ;; esac
  done
  echo "$n"
}
nics_present() {
  n=0
  for dev in /sys/class/net/*/device; do
    [ -e "$dev" ] && n=$((n + 1))
  done
  echo "$n"
}
expected=$(nics_expected)
tries=0
while [ "$(nics_present)" -lt "$expected" ] && [ "$tries" -lt 100 ]; do
  usleep 100000
  tries=$((tries + 1))
done
log "network interfaces: $(nics_present) of $expected after $tries polls"

ip link set lo up
# The old system's name, so prompts and logs say which host this rescue stands in for.
name=$(sed -n 's/^hostname=//p' /emergency/restore.env 2>/dev/null)
hostname "${name:-emergency-rescue}"
printf 'name=%s\nbooted_at=%s\n' '@name@' "$(date +%s)" >/etc/emergency-rescue

# The restore's first phase: the host keys and root's keys, all sshd needs (docs/image-layout.md, the boot order).
# restore.sh writes each line to the console itself; its stdout would only repeat them there.
sh /usr/lib/emergency/restore.sh keys >/dev/null

# The network phase and then the login banner (the old system's disks, what the restore did, how to leave), started
# by busybox init as a `::once:` entry: init runs it after `::sysinit:` (there is none) without waiting for it,
# beside sshd's `::respawn:`, so sshd starts while the network is restored. An init entry rather than `&` here:
# init is PID 1 then and reaps it, and its console output is init's, not a child of a shell that exec'd away.
# The restore's log on the console says when it is done.
echo '::once:/bin/sh -c "sh /usr/lib/emergency/restore.sh network >/dev/null; sh /usr/lib/emergency/rescue-banner.sh"' >>/etc/inittab

mkdir -p /run/sshd
chmod 755 /run/sshd
# One -h per restored key, so sshd uses exactly those (sshd_config names none).
keys=
for key in /etc/ssh/ssh_host_*_key; do
  [ -f "$key" ] && keys="$keys -h $key"
done
if [ -n "$keys" ]; then
  # sshd re-executes itself, so it must be started by its absolute path.
  echo "::respawn:/usr/sbin/sshd -D -e$keys" >>/etc/inittab
else
  log "no host keys were restored: sshd is not started (the rescue never makes new host keys)"
fi
log "rescue system ready"
exec /bin/busybox init
