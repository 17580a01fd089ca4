#!/bin/sh
# Can the host fetch the image itself (--image URL)? Read-only; runs in preflight's round trip, after
# preflight.sh. The orchestrator decides (ts/image-fetch.ts); this only reports.
#
# args:   URL   the image tarball's http(s) URL, without its #sha256= fragment
# prints: a section `@@emergency-section url-probe` (it runs after preflight.sh's sections) whose lines are
#         url_fetcher=curl|wget|wget-busybox|busybox|none   the host's own downloader (wget-busybox: a busybox
#                                                           wget applet on PATH; busybox: `busybox wget`)
#         url_sha256=sha256sum|busybox|openssl|none         the host's own sha256 tool, to verify the download
#         url_copy=1|0                                      dd and head, to copy members out of the download
#         url_reachable=1|0, url_probe_error=…              a HEAD request within 5 s (busybox: a GET)
set -u

url=$1

fact() { printf '%s=%s\n' "$1" "$2"; }
has() { command -v "$1" >/dev/null 2>&1; }

# bounded SECONDS CMD…: runs CMD, killed after SECONDS (busybox wget has no timeout option of its own).
bounded() {
  limit=$1
  shift
  "$@" >/dev/null 2>"$probe_err" &
  pid=$!
  (sleep "$limit" && kill "$pid" 2>/dev/null) >/dev/null 2>&1 &
  timer=$!
  rc=0
  wait "$pid" || rc=$?
  kill "$timer" 2>/dev/null || true
  return "$rc"
}

printf '@@emergency-section url-probe\n'
fetcher=none
if has curl; then fetcher=curl
elif has wget && wget --version 2>/dev/null | grep -q 'GNU Wget'; then fetcher=wget
elif has wget; then fetcher=wget-busybox
elif has busybox && busybox wget --help >/dev/null 2>&1; then fetcher=busybox
fi
fact url_fetcher "$fetcher"

sha=none
if has sha256sum; then sha=sha256sum
elif has busybox && busybox sha256sum </dev/null >/dev/null 2>&1; then sha=busybox
elif has openssl; then sha=openssl
fi
fact url_sha256 "$sha"
fact url_copy "$(has dd && has head && echo 1 || echo 0)"

probe_err=$(mktemp 2>/dev/null || echo /tmp/emergency-probe.$$)
reachable=0
case $fetcher in
  curl) bounded 6 curl -fsSIL --connect-timeout 3 --max-time 5 "$url" && reachable=1 ;;
  wget) bounded 6 wget -q -t 1 -T 5 --spider "$url" && reachable=1 ;;
  wget-busybox) bounded 5 wget -q --spider "$url" && reachable=1 ;;
  busybox) bounded 5 busybox wget -q --spider "$url" && reachable=1 ;;
esac
fact url_reachable "$reachable"
if [ "$reachable" = 0 ] && [ "$fetcher" != none ]; then
  error=$(head -c 200 "$probe_err" 2>/dev/null | tr '\n' ' ')
  fact url_probe_error "${error:-no answer within 5 s}"
fi
rm -f "$probe_err"
