#!/bin/sh
# Host side of the point of no return. Runs as root from the staged image directory
# (docs/image-layout.md) with only `sh` and `cat` from the host; everything else is the image's own bin/.
#
# stdin:  a tar with the restore data chosen by the orchestrator (network.sh, authorized_keys, restore.env,
#         old-system.txt)
# args:   [--load-only] HOST_KEY_PATH...   private host key paths; each needs its .pub beside it
# prints: key=value facts, ending with `kexec_loaded=1` when the rescue system is loaded
#
# Packs the host keys (they never leave this machine), the restore data and nothing else into an extra cpio
# appended to the rescue initrd, loads it with kexec_load --no-checks or else kexec_file_load, and then starts
# kexec-trigger.sh detached, so the ssh command returns first; the trigger syncs and runs `kexec -e`.
#
# Placeholders (filled in by the image builder):
#   @arch@   uname -m this image boots on
set -eu

image_arch='@arch@'
here=${0%/*}
case $here in /*) ;; *) here=$(cd "$here" && pwd) ;; esac

fail() {
  printf '@@emergency-error %s\n' "$*"
  exit 1
}

# busybox is static in every image; kexec and ip start through run-tool.sh, which knows whether they are dynamic.
bb() { "$here/bin/busybox" "$@"; }
tool() { sh "$here/run-tool.sh" "$@"; }

load_only=0
if [ "${1-}" = --load-only ]; then
  load_only=1
  shift
fi

[ "$(bb uname -m)" = "$image_arch" ] || fail "this image is for $image_arch, the host is $(bb uname -m)"
[ "$(bb id -u)" = 0 ] || fail "must run as root"
# Appending twice would stack two copies of the keys; a fresh stage is cheap, a confused rescue is not.
[ ! -e "$here/.initrd-appended" ] || fail "this stage was used already; stage the image again"

extra="$here/extra"
bb rm -rf "$extra"
bb mkdir -p "$extra/emergency/host-keys"
bb chmod 700 "$extra" "$extra/emergency" "$extra/emergency/host-keys"

bb tar -xf - -C "$extra/emergency" || fail "restore data from the orchestrator is not a readable tar"
for required in network.sh authorized_keys restore.env; do
  [ -f "$extra/emergency/$required" ] || fail "restore data lacks $required"
done

keys=0
for key in "$@"; do
  if [ ! -f "$key" ] || [ ! -f "$key.pub" ]; then fail "host key $key or its .pub is missing"; fi
  read -r key_type _ <"$key.pub" || fail "cannot read $key.pub"
  case $key_type in
    ssh-ed25519) short=ed25519 ;;
    ssh-rsa) short=rsa ;;
    ecdsa-sha2-*) short=ecdsa ;;
    ssh-dss) short=dsa ;;
    *) fail "host key $key has an unknown type $key_type" ;;
  esac
  dest="$extra/emergency/host-keys/ssh_host_${short}_key"
  (umask 077 && cat "$key" >"$dest") || fail "cannot copy host key $key"
  cat "$key.pub" >"$dest.pub" || fail "cannot copy $key.pub"
  keys=$((keys + 1))
done
[ "$keys" -gt 0 ] || fail "no host keys given: the rescue system could not prove it is this host"
printf 'host_keys_packed=%s\n' "$keys"

# The DHCP client identity, read here like the host keys (it never goes through the operator): the machine-id
# (systemd-networkd derives its DUID from it), the DUIDs and lease files of dhcpcd, dhclient and networkd. The
# rescue system installs them at the same paths (scripts/restore.sh), so its DHCP client renews the same lease.
# Each read has a deadline and may fail: this is a broken host, and a missing lease must not stop the rescue.
identity="$extra/emergency/dhcp-identity/files"
identity_files=0
for path in /etc/machine-id /etc/dhcpcd.duid /var/lib/dhcpcd/duid /var/lib/dhcpcd/*.lease /var/lib/dhcpcd/*.lease6 \
  /var/lib/dhcpcd5/duid /var/lib/dhcpcd5/*.lease /var/db/dhcpcd/duid /var/db/dhcpcd/*.lease \
  /var/lib/dhcp/dhclient*.leases /var/lib/dhclient/*.lease /var/lib/dhclient/*.leases \
  /var/lib/NetworkManager/*.lease /run/systemd/netif/leases/*; do
  [ -f "$path" ] || continue
  [ "$(bb stat -c %s "$path" 2>/dev/null || echo 0)" -le 1048576 ] || continue
  bb mkdir -p "$identity${path%/*}"
  if bb timeout 5 "$here/bin/busybox" cat "$path" >"$identity$path" 2>/dev/null; then
    identity_files=$((identity_files + 1))
  else
    bb rm -f "$identity$path"
  fi
done
printf 'dhcp_identity_files=%s\n' "$identity_files"

# The kernel only finds an uncompressed cpio that starts on a 4-byte boundary of the whole initrd;
# zero bytes between archives are skipped.
size=$(bb stat -c %s "$here/initrd")
pad=$(((4 - size % 4) % 4))
if [ "$pad" -gt 0 ]; then bb head -c "$pad" /dev/zero >>"$here/initrd"; fi
(cd "$extra" && bb find . | bb cpio -o -H newc 2>/dev/null) >>"$here/initrd" || fail "cannot append the restore data to the initrd"
: >"$here/.initrd-appended"
bb rm -rf "$extra"

cmdline=$(cat "$here/cmdline")
# The fastest method first, on both architectures (docs/benchmarks.md, "The jump"): kexec_load with --no-checks,
# so purgatory does not hash the segments again before jumping (seconds under TCG, minutes on arm64 hardware,
# where purgatory runs with the caches off); stage.sh verified every byte of them moments ago. kexec_file_load is
# the fallback that works under lockdown with a signed kernel, and where kexec_load is not built in.
# --no-sync: kexec-tools calls sync() after loading unless told not to, and on a dying disk that never returns
# (measured: 64 MiB under writeback at 4 KiB/s held this step past 110 s). The trigger's one bounded sync is the
# only one.
if tool kexec --no-sync -c -i -l "$here/kernel" --initrd="$here/initrd" --command-line="$cmdline" 2>"$here/kexec-load.err"; then
  printf 'kexec_method=kexec_load_no_checks\n'
elif tool kexec --no-sync -s -l "$here/kernel" --initrd="$here/initrd" --command-line="$cmdline" 2>"$here/kexec-file.err"; then
  printf 'kexec_method=kexec_file_load\n'
else
  printf 'kexec_file_load_error=%s\n' "$(bb tr '\n' ' ' <"$here/kexec-file.err")"
  printf 'kexec_load_error=%s\n' "$(bb tr '\n' ' ' <"$here/kexec-load.err")"
  fail "the kernel refused to load the rescue system"
fi
printf 'kexec_loaded=1\n'

[ "$load_only" = 0 ] || exit 0

# Detach the trigger (kexec-trigger.sh: acknowledgement wait, bounded sync, kexec -e) so this ssh command returns
# its result before the kernel is replaced. The keeper leaves the tmpfs mounted once .kexec-triggered exists,
# since the trigger still runs busybox and kexec from it.
stage_dir=${here%/*}
keeper=$(cat "$stage_dir/keeper.pid" 2>/dev/null || echo "$$")
: >"$stage_dir/.kexec-triggered"
# The busybox binary, not the bb function: dash does not apply the redirections of a backgrounded function call
# to what it starts, so the trigger kept sshd's stdout pipe open and this ssh command did not return until the
# kernel was gone (measured: +10 s waiting for the acknowledgement that could not come, +6 s for ssh to notice).
"$here/bin/busybox" setsid sh "$here/kexec-trigger.sh" "$keeper" "$here" "$stage_dir" </dev/null >/dev/null 2>&1 &
printf 'kexec_triggered=1\n'
