#!/bin/sh
# Runs one of the image's bin/ tools on the host, the one place that knows how (docs/image-layout.md).
#
# Usage: sh IMAGE_DIR/run-tool.sh TOOL [ARG...]
#   TOOL  a file in the image's bin/ (kexec, ip, busybox)
#
# With lib/ld.so in the image (the Debian builder) the tools are dynamic and start through the image's own
# loader and libraries, never the host's; without it (the Nix builder) they are static and start directly.
# exec, so the caller's signals, exit status and file descriptors reach the tool itself.
set -eu

here=${0%/*}
case $here in /*) ;; *) here=$(cd "$here" && pwd) ;; esac
tool=$1
shift

if [ -e "$here/lib/ld.so" ]; then
  exec "$here/lib/ld.so" --library-path "$here/lib" "$here/bin/$tool" "$@"
fi
exec "$here/bin/$tool" "$@"
