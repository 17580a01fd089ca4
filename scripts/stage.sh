#!/bin/sh
# Stages the image in a fresh tmpfs and keeps it only while this ssh session lives.
# Runs as root. Needs from the host: sh, cat, head, mount, umount (preflight checks them).
#
# args:  PARENT MODE TMPFS_BYTES BUSYBOX_BYTES BUSYBOX_SHA256 TAR_BYTES TAR_SHA256
#          PARENT/MODE  from preflight: `mkdir` makes PARENT/emergency.PID; `over` mounts over PARENT itself
#          TAR_SHA256   sha256 of the whole image tarball (docs/image-layout.md, "On the host"): the orchestrator
#                       read it from the local file, whose every member it checked against SHA256SUMS, or it is
#                       the pinned hash of --image URL. It covers every byte tar reads, names and modes included.
# stdin: BUSYBOX_BYTES of the image's static busybox, then TAR_BYTES of the image tarball, then nothing:
#        the orchestrator keeps stdin open while it needs the stage. EOF (done, Ctrl-C, or the connection
#        dropped) unmounts the tmpfs, so an interrupted rescue leaves the host as it was found.
# prints: stage_dir=…, then staged=1 once every checksum passed. The tar is hashed as it arrives (tee into
#         sha256sum while tar unpacks), so no file is read a second time and no second copy sits in RAM.
# With `file` as the 8th argument (the host has the memory for the tarball on top of the unpacked files), the
# tarball is written whole into the tmpfs, hashed, and unpacked only once it matched: faster on a slow CPU.
#
# With --image URL, when preflight found the host able to fetch it (scripts/probe-url.sh), the host downloads
# the tarball itself instead and stdin carries nothing but the keeper's EOF:
# args:  … the seven above (BUSYBOX_SHA256 unused: '-') … url FETCHER SHA_TOOL URL SUMS_SHA256 BUSYBOX_OFFSET SUMS_OFFSET SUMS_BYTES
#          FETCHER/SHA_TOOL  the host's own downloader and sha256 tool, as probe-url.sh named them
#          SUMS_SHA256       sha256 of the sidecar's copy of SHA256SUMS; OFFSETs and SUMS_BYTES from the sidecar
#        Nothing from the download runs before the whole tarball matches TAR_SHA256 (the pinned hash) and its
#        SHA256SUMS matches SUMS_SHA256, both checked with the host's tools (docs/image-layout.md, "The sidecar");
#        nobody read its members before, so the unpacked files are then checked against that SHA256SUMS too.
# prints also: fetched=BYTES about once a second while downloading, fetch_cs=CENTISECONDS, fetch_verified=1.
set -eu

parent=$1 mode=$2 tmpfs_bytes=$3 busybox_bytes=$4 busybox_sha256=$5 tar_bytes=$6 tar_sha256=$7
image_source=${8-stream}
if [ "$image_source" = url ]; then
  fetcher=$9 sha_tool=${10} url=${11} sums_sha256=${12} busybox_offset=${13} sums_offset=${14} sums_bytes=${15}
fi

fail() {
  printf '@@emergency-error %s\n' "$*"
  exit 1
}
case $image_source in stream | file | url) ;; *) fail "unknown image source $image_source" ;; esac

# Tmpfs mounts of an earlier run whose keeper died without cleaning up (e.g. the host side was SIGKILLed).
remove_stale_stages() {
  while read -r source mountpoint fstype _; do
    if [ "$source" != emergency-stage ] || [ "$fstype" != tmpfs ]; then continue; fi
    keeper=$(cat "$mountpoint/keeper.pid" 2>/dev/null || echo)
    if [ -n "$keeper" ] && kill -0 "$keeper" 2>/dev/null; then continue; fi
    umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" 2>/dev/null || continue
    case ${mountpoint##*/} in emergency.*) rmdir "$mountpoint" 2>/dev/null || true ;; esac
    printf 'stale_stage_removed=%s\n' "$mountpoint"
  done </proc/mounts
}

mounted=0 created=0 dir='' hash_pid=''
cleanup() {
  trap - EXIT HUP INT TERM PIPE
  cd /
  # A hasher still waiting on its FIFO (the upload broke off before tee opened it) would hold the tmpfs busy.
  if [ -n "$hash_pid" ]; then kill "$hash_pid" 2>/dev/null || true; fi
  # After kexec-run.sh triggered the jump, its trigger runs busybox and kexec from this tmpfs: leave it.
  if [ "$mounted" = 1 ] && [ -e "$dir/.kexec-triggered" ]; then
    printf 'stage_kept_for_kexec=%s\n' "$dir" 2>/dev/null || true
    return
  fi
  # A download still running holds files in the tmpfs; stop it first.
  if [ -s "$dir/fetch.pid" ]; then kill "$(cat "$dir/fetch.pid")" 2>/dev/null || true; fi
  if [ "$mounted" = 1 ]; then umount "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true; fi
  if [ "$created" = 1 ]; then rmdir "$dir" 2>/dev/null || true; fi
  printf 'stage_removed=%s\n' "$dir" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE

remove_stale_stages

case $mode in
  mkdir)
    dir="$parent/emergency.$$"
    mkdir -m 700 "$dir" || fail "cannot create $dir"
    created=1
    ;;
  over) dir=$parent ;;
  *) fail "unknown stage mode $mode" ;;
esac
mount -t tmpfs -o "size=$tmpfs_bytes,mode=0700" emergency-stage "$dir" || fail "cannot mount a tmpfs on $dir"
mounted=1
echo $$ >"$dir/keeper.pid"
printf 'stage_dir=%s\n' "$dir"

# exact_copy N: copies exactly N bytes of stdin and reads not one byte more, because the tar follows at once.
# dd with count_bytes (GNU, busybox >= 1.33) and GNU head -c read exactly; busybox head buffers ahead and
# would swallow the start of the tar. dd bs=1 is exact everywhere, and slow: the last resort.
if [ "$(echo probe | dd bs=64 count=5 iflag=fullblock,count_bytes 2>/dev/null)" = probe ]; then
  exact_copy() { dd bs=65536 count="$1" iflag=fullblock,count_bytes 2>/dev/null; }
elif head --version 2>/dev/null | grep -q GNU; then
  exact_copy() { head -c "$1"; }
else
  exact_copy() { dd bs=1 count="$1" 2>/dev/null; }
fi

bb() { "$dir/busybox" "$@"; }

if [ "$image_source" = url ]; then
  # sha256 with the host's own tool: nothing from the download may vouch for the download.
  host_sha256() {
    case $sha_tool in
      sha256sum) sha256sum "$1" ;;
      busybox) busybox sha256sum "$1" ;;
      openssl) openssl dgst -sha256 -r "$1" ;;
      *) fail "unknown sha256 tool $sha_tool" ;;
    esac
  }
  # member OFFSET SIZE: one member's data out of the downloaded tar (offsets are 512-aligned in a tar).
  member() { dd if="$dir/image.tar" bs=512 skip=$(($1 / 512)) count=$((($2 + 511) / 512)) 2>/dev/null | head -c "$2"; }
  uptime_cs() { read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }

  started=$(uptime_cs)
  : >"$dir/image.tar"
  # In the background, so a progress line goes out every second: it also ends this script (SIGPIPE) soon
  # after the ssh session is gone. fetch.pid is the downloader itself, for cleanup to stop.
  (
    case $fetcher in
      curl) curl -fsSL --max-filesize "$tar_bytes" -o "$dir/image.tar" "$url" 2>"$dir/fetch.err" & ;;
      wget) wget -q -t 1 -T 30 -O "$dir/image.tar" "$url" 2>"$dir/fetch.err" & ;;
      wget-busybox) wget -q -O "$dir/image.tar" "$url" 2>"$dir/fetch.err" & ;;
      busybox) busybox wget -q -O "$dir/image.tar" "$url" 2>"$dir/fetch.err" & ;;
      *) echo "unknown downloader $fetcher" >"$dir/fetch.err"; echo 1 >"$dir/fetch.rc"; exit 0 ;;
    esac
    echo $! >"$dir/fetch.pid"
    rc=0
    wait $! || rc=$?
    echo "$rc" >"$dir/fetch.rc"
  ) &
  while [ ! -s "$dir/fetch.rc" ]; do
    sleep 1
    printf 'fetched=%s\n' "$(wc -c <"$dir/image.tar" | tr -d ' ')"
  done
  rm -f "$dir/fetch.pid"
  if [ "$(cat "$dir/fetch.rc")" != 0 ]; then
    fail "the host could not download $url: $(head -c 300 "$dir/fetch.err" | tr '\n' ' ')"
  fi
  printf 'fetch_cs=%s\n' "$(($(uptime_cs) - started))"
  got=$(wc -c <"$dir/image.tar" | tr -d ' ')
  [ "$got" = "$tar_bytes" ] || fail "image hash mismatch: the download has $got bytes, the pinned image $tar_bytes; refused, nothing of it ran"
  sum=$(host_sha256 "$dir/image.tar")
  [ "${sum%% *}" = "$tar_sha256" ] || fail "image hash mismatch: the downloaded image has sha256 ${sum%% *}, not the pinned $tar_sha256; refused, nothing of it ran"
  member "$sums_offset" "$sums_bytes" >"$dir/SHA256SUMS"
  sum=$(host_sha256 "$dir/SHA256SUMS")
  [ "${sum%% *}" = "$sums_sha256" ] || fail "the image's SHA256SUMS differs from its sidecar's: the sidecar does not belong to this image"
  busybox_sha256=''
  while read -r hash path; do
    if [ "$path" = bin/busybox ]; then busybox_sha256=$hash; fi
  done <"$dir/SHA256SUMS"
  [ -n "$busybox_sha256" ] || fail "the image's SHA256SUMS lists no bin/busybox"
  member "$busybox_offset" "$busybox_bytes" >"$dir/busybox"
  sum=$(host_sha256 "$dir/busybox")
  [ "${sum%% *}" = "$busybox_sha256" ] || fail "busybox in the download does not match SHA256SUMS: the sidecar's offsets are wrong"
  chmod 700 "$dir/busybox"
  rm -f "$dir/SHA256SUMS" "$dir/fetch.err" "$dir/fetch.rc"
  printf 'fetch_verified=1\n'
  # Verified: from here on the image's own busybox unpacks it, and the tarball's copy is freed at once.
  bb tar -x -o -C "$dir" <"$dir/image.tar" || fail "cannot unpack the verified image"
  rm -f "$dir/image.tar"
  image="$dir/emergency-image"
  [ -f "$image/SHA256SUMS" ] || fail "the image has no SHA256SUMS"
  sum=$(bb sha256sum "$image/SHA256SUMS")
  [ "${sum%% *}" = "$sums_sha256" ] || fail "the unpacked SHA256SUMS differs from its sidecar's: the image was changed in the tmpfs"
  (cd "$image" && bb sha256sum -c -s SHA256SUMS) || fail "image checksums do not match: the pinned image is inconsistent with its own SHA256SUMS"
else
  exact_copy "$busybox_bytes" >"$dir/busybox"
  chmod 700 "$dir/busybox"
  got=$(wc -c <"$dir/busybox" | tr -d ' ')
  [ "$got" = "$busybox_bytes" ] || fail "upload broke off: busybox has $got of $busybox_bytes bytes"
  # A host sha256sum is preferred: the busybox checking itself only proves it is not truncated.
  if command -v sha256sum >/dev/null 2>&1; then
    sum=$(sha256sum "$dir/busybox")
  else
    sum=$(bb sha256sum "$dir/busybox")
  fi
  [ "${sum%% *}" = "$busybox_sha256" ] || fail "busybox checksum mismatch: the upload was corrupted"
fi

if [ "$image_source" != url ]; then
  # The tar's length bounds what tar reads (it would wait for EOF otherwise). Nothing follows it, so reading
  # ahead is harmless: dd's 1 MiB reads cost far fewer syscalls than head's 4 KiB stdio buffer, which is what
  # limited the upload on a slow CPU (stage 8.1-10.7 s -> 5.0-5.6 s in QEMU TCG). head -c if this busybox's dd
  # lacks the flags.
  if [ "$(echo probe | bb dd bs=64 count=5 iflag=fullblock,count_bytes 2>/dev/null)" = probe ]; then
    tar_stream() { bb dd bs=1048576 count="$tar_bytes" iflag=fullblock,count_bytes 2>/dev/null; }
  else
    tar_stream() { bb head -c "$tar_bytes"; }
  fi
fi
if [ "$image_source" = file ]; then
  # Written whole into the tmpfs, hashed, and only then unpacked (from the file, then deleted): nothing of the
  # image is even unpacked before it is verified. The orchestrator picks this when the host has the memory for the
  # tarball on top of the unpacked files (ts/image-fetch.ts, planStream): on a slow CPU it is the fastest, since
  # one dd writes the stream with 1 MiB writes and no pipe between processes (busybox tee moves 1 KiB per
  # read and write; measured in QEMU TCG: 3.3-4.0 s against 9-15 s for the tee below).
  tar_stream >"$dir/image.tar" || fail "upload broke off: the tarball could not be written to the tmpfs"
  got=$(wc -c <"$dir/image.tar" | tr -d ' ')
  [ "$got" = "$tar_bytes" ] || fail "upload broke off: the tarball has $got of $tar_bytes bytes"
  sum=$(bb sha256sum "$dir/image.tar")
  [ "${sum%% *}" = "$tar_sha256" ] || fail "image checksum mismatch: the upload has sha256 ${sum%% *}, not the $tar_sha256 the image has; refused, nothing of it ran"
  bb tar -x -o -C "$dir" -f "$dir/image.tar" || fail "the image tarball is corrupt"
  bb rm -f "$dir/image.tar"
  image="$dir/emergency-image"
fi
if [ "$image_source" = stream ]; then
  # Hashed as it arrives, for a host without the memory for a second copy of the tarball: tee hands every byte to sha256sum (through a FIFO in the tmpfs) and to tar, so the
  # check needs no second read of the unpacked files. Until the hash matches nothing extracted runs: only the
  # verified busybox (dd, tee, sha256sum, tar) has, and on a mismatch the stage fails and the tmpfs goes. The
  # cat after tar drains what tar leaves unread (the end-of-archive blocks), so the hash covers all TAR_BYTES;
  # a short upload cannot match. The hasher is the busybox binary itself, started in the background with its
  # own redirections (kexec-run.sh says why not through the bb function).
  bb mkfifo -m 600 "$dir/.tar-hash"
  "$dir/busybox" sha256sum <"$dir/.tar-hash" >"$dir/.tar-sha256" &
  hash_pid=$!
  tar_stream | bb tee "$dir/.tar-hash" | { bb tar -x -o -C "$dir" && bb cat >/dev/null; } || fail "upload broke off or the image tarball is corrupt"
  wait "$hash_pid" || fail "cannot hash the upload"
  hash_pid=''
  read -r sum _ <"$dir/.tar-sha256" || sum=''
  [ "$sum" = "$tar_sha256" ] || fail "image checksum mismatch: the upload has sha256 ${sum:-(none)}, not the $tar_sha256 the image has; refused, nothing of it ran"
  bb rm -f "$dir/.tar-hash" "$dir/.tar-sha256"
  image="$dir/emergency-image"
fi
bb rm -f "$dir/busybox"
printf 'image_dir=%s\n' "$image"
printf 'staged=1\n'

# Hold the stage until the orchestrator closes stdin; cat is the host's, the upload streams are done.
cat >/dev/null
