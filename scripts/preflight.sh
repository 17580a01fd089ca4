#!/bin/sh
# Read-only facts about the host, printed as key=value lines and sections (ts/sections.ts), declared in
# ts/boundary/preflight.ts (a fact printed here and not declared there, or the reverse, fails the parse); the
# verdict is made by the orchestrator (ts/preflight/checks.ts) so every check is reported at once.
# Runs as root when it can (root's authorized_keys and the host keys' .pub need it), otherwise as the user.
#
# args: LOGIN_USER [MODULE:FILE...]
#   LOGIN_USER     the user ssh logged in as, whose keys the rescue system must accept too
#   MODULE:FILE    firmware a driver declares (from the image's drivers.manifest): reported when MODULE drives a
#                  NIC here and FILE is in the host's firmware search path, so a file the image lacks can be named
#
# Prints public material only: .pub host keys and authorized_keys. Private host keys are never read here.
set -u

login_user=${1-}
[ $# -eq 0 ] || shift

fact() { printf '%s=%s\n' "$1" "$2"; }
has() { command -v "$1" >/dev/null 2>&1; }
# The helpers below set a variable instead of printing, so that no $(...) subshell is forked: the NIC and disk
# loops call them a dozen times per device, and on a slow CPU (QEMU TCG: about 10 ms a fork) those subshells and
# cats were a third of the whole preflight.
# read_attr FILE: $attr is the file's first line, '' when it cannot be read (sysfs and procfs values are one line).
read_attr() {
  attr=''
  IFS= read -r attr 2>/dev/null <"$1" || :
}
# resolve DIR: $resolved is DIR with every symlink resolved (`cd -P`), '' when it does not exist.
resolve() {
  resolved=''
  if cd -P "$1" 2>/dev/null; then resolved=$PWD; fi
  cd /
}
# squeeze TEXT: $squeezed is TEXT with runs of blanks made one space and none at either end (what `tr -s` and a sed
# trim did), without globbing what it splits.
squeeze() {
  set -f
  # shellcheck disable=SC2086 # split on purpose: that is the squeezing
  set -- $1
  squeezed="$*"
  set +f
}

fact preflight_format 1
fact arch "$(uname -m)"
read_attr /proc/sys/kernel/osrelease
release=${attr:-$(uname -r)}
fact kernel "$release"
fact uid "$(id -u)"
read_attr /proc/sys/kernel/hostname
fact hostname "${attr:-$(hostname)}"
read_attr /proc/sys/kernel/random/boot_id
fact boot_id "$attr"

# kexec: the sysctl exists only in kernels built with kexec; 1 cannot be undone without a reboot.
if [ -r /proc/sys/kernel/kexec_load_disabled ]; then
  read_attr /proc/sys/kernel/kexec_load_disabled
  fact kexec_load_disabled "$attr"
else
  fact kexec_load_disabled missing
fi
# Lockdown, from every read-only source (docs/fault-matrix.md says which can be trusted): securityfs says the
# current level but is often not mounted (busybox init, minimal hosts); lockdown= on the command line sets it at
# boot; the kernel logs "Kernel is locked down from WHERE" whenever the level is raised (command line, Kconfig,
# EFI Secure Boot mode, securityfs), until the ring buffer wraps.
lockdown=unmounted
if [ -r /sys/kernel/security/lockdown ]; then
  lockdown=$(sed -n 's/.*\[\([a-z]*\)\].*/\1/p' /sys/kernel/security/lockdown)
elif grep -qw securityfs /proc/mounts 2>/dev/null; then
  lockdown=none
fi
fact lockdown "${lockdown:-unknown}"
# The last lockdown= word of the command line, as the kernel takes it.
read_attr /proc/cmdline
lockdown_cmdline=''
set -f
for word in $attr; do
  case $word in lockdown=*) lockdown_cmdline=${word#lockdown=} ;; esac
done
set +f
fact lockdown_cmdline "$lockdown_cmdline"
# The last "locked down from" line of the kernel log; dmesg runs once (a large ring buffer is slow to read on a
# slow CPU), its exit status telling an unreadable log (dmesg_restrict) from one without such a line.
if has dmesg && kernel_log=$(dmesg 2>/dev/null); then
  fact lockdown_log "$(printf '%s\n' "$kernel_log" | sed -n 's/.*Kernel is locked down from \(.*\); see .*/\1/p' | tail -n 1)"
else
  fact lockdown_log unreadable
fi
secure_boot=unknown
for var in /sys/firmware/efi/efivars/SecureBoot-*; do
  # 4 bytes of attributes, then the value byte.
  [ -r "$var" ] && secure_boot=$(od -An -t u1 -j 4 -N 1 "$var" 2>/dev/null | tr -d ' ')
done
[ -d /sys/firmware/efi ] || secure_boot=no-efi
fact secure_boot "$secure_boot"

container=none
if [ -f /.dockerenv ]; then container=docker
elif [ -f /run/.containerenv ]; then container=podman
elif [ -d /proc/vz ] && [ ! -d /proc/bc ]; then container=openvz
elif tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -q '^container='; then
  container=$(tr '\0' '\n' </proc/1/environ | sed -n 's/^container=//p' | head -n 1)
elif grep -qE '/(lxc|docker|libpod|kubepods)' /proc/1/cgroup 2>/dev/null; then container=lxc
fi
fact container "$container"
virt=none
if [ -r /sys/hypervisor/type ]; then read_attr /sys/hypervisor/type; virt=$attr; fi
if [ "$virt" = xen ] && [ ! -d /sys/hypervisor/properties ] && grep -q 'control_d' /proc/xen/capabilities 2>/dev/null; then virt=xen-dom0; fi
if [ "$virt" = xen ] && grep -q 'pv' /sys/hypervisor/guest_type 2>/dev/null; then virt=xen-pv; fi
fact virt "$virt"

# The operator's connection: sshd sets SSH_CONNECTION ("client port server port") in the login shell; sudo and
# doas drop it from our environment but not from their own, so the nearest ancestor that has it is asked.
ssh_connection=${SSH_CONNECTION-}
pid=$$
while [ -z "$ssh_connection" ] && [ "${pid:-0}" -gt 1 ]; do
  pid=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)
  [ -n "$pid" ] || break
  ssh_connection=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | sed -n 's/^SSH_CONNECTION=//p' | head -n 1)
done
fact ssh_connection "$ssh_connection"

mem_total_kb='' mem_available_kb=''
while read -r key value _; do
  case $key in
    MemTotal:) mem_total_kb=$value ;;
    MemAvailable:) mem_available_kb=$value ;;
  esac
done </proc/meminfo
fact mem_total_kb "$mem_total_kb"
fact mem_available_kb "$mem_available_kb"

# Where a tmpfs can go: a directory on a writable filesystem to mkdir in, else any existing directory to
# mount over (hidden only while the tmpfs is mounted). The mount table says which is writable, without writing.
mount_options() {
  # The longest mount point that is a prefix of $1 decides.
  awk -v p="$1" '
    { mp = $2; gsub(/\\040/, " ", mp)
      if ((p == mp || index(p, (mp == "/" ? "/" : mp "/")) == 1) && length(mp) >= best) { best = length(mp); opts = $4 } }
    END { print opts }' /proc/self/mounts
}
stage_parent='' stage_mode=''
for dir in /run /dev/shm /tmp /var/tmp; do
  [ -d "$dir" ] || continue
  case ",$(mount_options "$dir")," in *,ro,*) continue ;; esac
  stage_parent=$dir stage_mode=mkdir
  break
done
if [ -z "$stage_parent" ]; then
  for dir in /mnt /media /srv /opt /home; do
    if [ -d "$dir" ]; then stage_parent=$dir stage_mode=over; break; fi
  done
fi
fact stage_parent "$stage_parent"
fact stage_mode "$stage_mode"
fact has_tmpfs "$(grep -qw tmpfs /proc/filesystems 2>/dev/null && echo 1 || echo 0)"

# Staging needs mount, umount and a byte-exact copy from stdin: dd (any) or GNU head (busybox head reads ahead).
# Whether ip speaks JSON is the capture's own business (capture-network.sh).
for tool in dd mount umount; do
  fact "has_$tool" "$(has "$tool" && echo 1 || echo 0)"
done
fact head_gnu "$( (head --version 2>/dev/null | grep -q GNU) && echo 1 || echo 0)"

# Host keys sshd uses: HostKey lines of sshd_config, else the default ones.
host_keys=$(sed -n 's/^[[:space:]]*[Hh][Oo][Ss][Tt][Kk][Ee][Yy][[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' /etc/ssh/sshd_config 2>/dev/null)
[ -n "$host_keys" ] || host_keys=$(ls /etc/ssh/ssh_host_*_key 2>/dev/null)
for key in $host_keys; do
  printf '@@emergency-section host-key %s %s\n' "$key" "$([ -f "$key" ] && echo present || echo missing)"
  cat "$key.pub" 2>/dev/null
done

# Which authorized_keys files sshd reads (AuthorizedKeysFile, %h %u %% expanded per user).
patterns=$(sed -n 's/^[[:space:]]*[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Ee][Dd][Kk][Ee][Yy][Ss][Ff][Ii][Ll][Ee][[:space:]]\{1,\}//p' /etc/ssh/sshd_config 2>/dev/null | head -n 1)
[ -n "$patterns" ] || patterns='.ssh/authorized_keys .ssh/authorized_keys2'

# Users whose keys become root's in the rescue system: root, the admin groups, the login user.
admins=$(awk -F: '$1 == "sudo" || $1 == "wheel" || $1 == "admin" { gsub(",", " ", $4); print $4 }' /etc/group 2>/dev/null)
users=$(printf '%s\n' root "$admins" "$login_user" | tr ' ' '\n' | awk 'NF && !seen[$0]++')
for user in $users; do
  home=$(awk -F: -v u="$user" '$1 == u { print $6; exit }' /etc/passwd 2>/dev/null)
  if [ -z "$home" ] && has getent; then home=$(getent passwd "$user" | cut -d: -f6); fi
  [ -n "$home" ] || continue
  for pattern in $patterns; do
    [ "$pattern" = none ] && continue
    file=$(printf '%s' "$pattern" | sed -e "s|%h|$home|g" -e "s|%u|$user|g" -e 's|%%|%|g')
    case $file in /*) ;; *) file="$home/$file" ;; esac
    if [ -f "$file" ]; then
      if [ -r "$file" ]; then
        printf '@@emergency-section authorized-keys %s %s\n' "$user" "$file"
        cat "$file"
      else
        printf '@@emergency-section unreadable %s %s\n' "$user" "$file"
      fi
    fi
  done
done
# NixOS and some distributions keep keys in /etc/ssh/authorized_keys.d/USER.
for file in /etc/ssh/authorized_keys.d/*; do
  [ -f "$file" ] || continue
  printf '@@emergency-section authorized-keys %s %s\n' "${file##*/}" "$file"
  cat "$file"
done
# The old system's disks, for the rescue's login banner (ts/rescue-summary.ts): the mount table's real file
# systems (and the root line whatever it is), the block devices from sysfs, labels from udev's symlinks and,
# when `timeout` can bound it, blkid (it reads superblocks, and a dying disk must not hang preflight).
printf '@@emergency-section mounts\n'
awk '$2 == "/" || $1 ~ /^\// || $3 == "zfs" || $3 == "btrfs"' /proc/self/mounts 2>/dev/null
printf '@@emergency-section block-devices\n'
for dev in /sys/block/*; do
  [ -r "$dev/size" ] || continue
  name=${dev##*/}
  read_attr "$dev/size"
  size=$attr
  case $name in loop* | ram* | zram*) [ "$size" != 0 ] || continue ;; esac
  read_attr "$dev/device/model"
  squeeze "$attr"
  printf 'disk\t%s\t%s\t%s\n' "$name" "$size" "$squeezed"
  for part in "$dev/$name"*; do
    [ -r "$part/partition" ] || continue
    read_attr "$part/size"
    printf 'part\t%s\t%s\t\n' "${part##*/}" "$attr"
  done
done
printf '@@emergency-section disk-labels\n'
for link in /dev/disk/by-label/*; do
  [ -L "$link" ] || continue
  target=$(readlink "$link")
  printf '%s\t%s\n' "${target##*/}" "${link##*/}"
done
if has blkid && has timeout; then
  printf '@@emergency-section blkid\n'
  timeout 5 blkid 2>/dev/null
fi
# The route the host takes back to the operator (replies leave from the address the connection came in on).
operator=${ssh_connection%% *}
# The third word of "client port server port".
third_word() { server_address=${3-}; }
# shellcheck disable=SC2086 # split on purpose: its words are the fields
third_word $ssh_connection
if [ -n "$operator" ] && has ip; then
  printf '@@emergency-section route-back %s\n' "$operator"
  ip route get "$operator" from "$server_address" 2>/dev/null || ip route get "$operator" 2>&1
fi

# NICs: every interface with a device behind it (bonds, VLANs and bridges have none). `cd -P` resolves the
# driver and module links with nothing but sh.
# driver_of DEVICE: $driver_line is the driver bound to DEVICE, its module, and whether that was loaded
# (initstate exists only for loadable modules); $driver_name and $module_name are its first two parts.
driver_of() {
  resolve "$1/driver"
  driver_name=${resolved##*/}
  resolve "$1/driver/module"
  module_name=${resolved##*/}
  place=builtin
  if [ -n "$module_name" ] && [ -e "/sys/module/$module_name/initstate" ]; then place=loadable; fi
  driver_line="$driver_name ${module_name:-$driver_name} $place"
}
nic_modules=' '
for dev in /sys/class/net/*; do
  [ -e "$dev/device" ] || continue
  resolve "$dev/device"
  device=$resolved
  printf '@@emergency-section nic %s\n' "${dev##*/}"
  read_attr "$dev/address"
  echo "address=$attr"
  # A bond member shows the bond's MAC; its own stays in bonding_slave (and in the capture's permaddr).
  read_attr "$dev/bonding_slave/perm_hwaddr"
  echo "perm_address=$attr"
  read_attr "$device/modalias"
  echo "modalias=$attr"
  if [ -e "$device/driver" ]; then
    driver_of "$device"
    echo "driver=$driver_line"
    nic_modules="$nic_modules$module_name $driver_name "
  fi
  # The buses it hangs off (virtio_pci under a virtio NIC, the USB host controller under a USB NIC).
  parent=${device%/*} depth=0
  while [ "$depth" -lt 4 ] && [ "${parent#/sys/devices/?}" != "$parent" ]; do
    if [ -e "$parent/driver" ] && [ -r "$parent/modalias" ]; then
      read_attr "$parent/modalias"
      driver_of "$parent"
      echo "parent=$attr $driver_line"
    fi
    parent=${parent%/*} depth=$((depth + 1))
  done
done

# Firmware the NICs' drivers declare and the host has, in the kernel's firmware search order.
printf '@@emergency-section host-firmware\n'
read_attr /sys/module/firmware_class/parameters/path
custom=$attr
for candidate in "$@"; do
  module=${candidate%%:*} file=${candidate#*:}
  case $nic_modules in *" $module "*) ;; *) continue ;; esac
  for dir in ${custom:+"$custom"} "/lib/firmware/updates/$release" /lib/firmware/updates "/lib/firmware/$release" /lib/firmware; do
    for path in "$dir/$file" "$dir/$file.zst" "$dir/$file.xz"; do
      if [ -f "$path" ]; then
        printf '%s %s %s\n' "$module" "$file" "$path"
        continue 3
      fi
    done
  done
done

# Keys the kernel trusts for kexec_file_load's signature check (what a locked-down kernel will load); root sees
# the system keyrings' keys in /proc/keys.
printf '@@emergency-section trusted-keys\n'
awk '$8 ~ /^asymmetri/ { d = $9; for (i = 10; i <= NF; i++) d = d " " $i; print d }' /proc/keys 2>/dev/null
printf '@@emergency-section preflight-end\n'
