#!/bin/sh
# Builds an image's sidecar (docs/image-layout.md, "The sidecar"): what the operator's side reads instead of the
# whole tarball when the host fetches the image from a URL. Runs at build time in both builders (modules/image.nix,
# ts/test-image/build.ts), never on the host. Needs GNU tar (-R prints each member's header block), sha256sum, awk.
#
# args: TAR OUT   the image tarball; the sidecar to write (by convention TAR.meta)
set -eu

tar=$1 out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# `tar -R -tv` lines: "block N: -rw-r--r-- 0/0 SIZE DATE TIME PATH". A ustar member is one header block, so its
# data starts one block after it. Regular files only ('-'); paths of the layout hold no spaces.
tar --numeric-owner -R -tvf "$tar" | awk '
  $3 ~ /^-/ {
    block = $2; sub(/:$/, "", block)
    path = $8; if (sub(/^(\.\/)?emergency-image\//, "", path) != 1) { print "not under emergency-image/: " $8 > "/dev/stderr"; exit 1 }
    print (block + 1) * 512, $5, path
  }
  $3 ~ /^[^-d]/ && $3 !~ /^\*\*/ { print "unexpected member type: " $0 > "/dev/stderr"; exit 1 }
' >"$work/members"
grep -q ' SHA256SUMS$' "$work/members" || { echo "image-sidecar.sh: $tar has no emergency-image/SHA256SUMS" >&2; exit 1; }

# The small files the orchestrator reads (image.info, cmdline, SHA256SUMS, manifests): at most 64 KiB, not programs.
# drivers.manifest goes in whatever its size: preflight's NIC checks read it before anything is fetched.
small=$(awk '($2 <= 65536 || $3 == "drivers.manifest") && $3 !~ /^(bin|lib)\// { print "emergency-image/" $3 }' "$work/members")
# shellcheck disable=SC2086 # one path per word, by construction
tar -xf "$tar" -C "$work" $small

{
  echo format=1
  echo "tar_bytes=$(wc -c <"$tar" | tr -d ' ')"
  sum=$(sha256sum "$tar")
  echo "tar_sha256=${sum%% *}"
} >"$work/meta.info"

tar --format=ustar --owner=0 --group=0 --numeric-owner --sort=name --mtime=@0 -cf "$out" -C "$work" meta.info members emergency-image
