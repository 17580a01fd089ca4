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

# The image directory is this file's, from the path sh was given. Without a slash (`sh run-tool.sh` in the image
# directory, as docs/image-layout.md writes it) sh read the file from the current directory; bash alone would
# also have found it on PATH, and then where it lies is not known.
case $0 in
  */*) here=${0%/*} ;;
  *)
    if [ ! -f "./$0" ]; then
      echo "run-tool.sh: cannot tell the image directory: $0 is not in the current directory; run it as sh IMAGE_DIR/run-tool.sh TOOL" >&2
      exit 2
    fi
    here=.
    ;;
esac
case $here in /*) ;; *) here=$(cd "$here" && pwd) ;; esac
if [ "$#" = 0 ]; then
  echo "usage: sh IMAGE_DIR/run-tool.sh TOOL [ARG...]" >&2
  exit 2
fi
tool=$1
shift

if [ -e "$here/lib/ld.so" ]; then
  exec "$here/lib/ld.so" --library-path "$here/lib" "$here/bin/$tool" "$@"
fi
exec "$here/bin/$tool" "$@"
