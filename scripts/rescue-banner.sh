#!/bin/sh
# Runs in the rescue system after restore.sh: writes the login banner that greets the operator (shown by a
# login shell's profile in both images, docs/image-layout.md). It says which host this rescue stands in for,
# what the restore did (the restore report), the old system's root, mounts and disks with the first command to
# run (old-system.txt, rendered by the orchestrator from preflight's facts: ts/rescue-summary.ts) and how to leave.
# The CLI prints the same text from the same three inputs (renderRescueSummary); a unit test runs this script
# against it.
#
# `rescue-banner.sh show` is what a login shell runs (both images): it prints the banner. sshd is up before the
# network restore ends (docs/image-layout.md), so a login may come first: while the restore runs (the report's
# .tmp file exists, or the report does and the banner is a moment away) it waits up to 3 s for the banner (the
# network phase usually ends within that), then says the restore is still running and where the banner will be.
#
# Environment (all optional):
#   EMERGENCY_DIR   the restore data                          (default /emergency)
#   RESTORE_REPORT  the restore report restore.sh writes (KIND NAME STATUS MESSAGE lines)
#                                                             (default /var/log/emergency-restore.report)
#   BANNER          the banner file written                   (default /run/emergency/banner)
set -u

data=${EMERGENCY_DIR-/emergency}
report=${RESTORE_REPORT-/var/log/emergency-restore.report}
banner=${BANNER-/run/emergency/banner}

if [ "${1-}" = show ]; then
  tries=0
  # A report without a banner yet: the banner is written right after the report, so it is a moment away.
  while [ ! -r "$banner" ] && { [ -e "$report.tmp" ] || [ -e "$report" ]; } && [ "$tries" -lt 15 ]; do
    sleep 0.2 2>/dev/null
    tries=$((tries + 1))
  done
  if [ -r "$banner" ]; then
    cat "$banner"
  elif [ -e "$report.tmp" ]; then
    printf 'emergency rescue system: the restore is still running (network, gateway check); its results: cat %s\n' "$banner"
  elif [ -e "$report" ]; then
    printf 'emergency rescue system: no login banner at %s; the restore report: %s\n' "$banner" "$report"
  fi
  exit 0
fi

mkdir -p "${banner%/*}"
name=$(sed -n 's/^hostname=//p' "$data/restore.env" 2>/dev/null)
{
  printf "emergency rescue system for %s: running from RAM, the old system's disks are not mounted\n" "${name:-an unnamed host}"
  printf 'restore:\n'
  # The report's `step` and `network` records: one `STATUS  NAME: MESSAGE` line each (parseRestoreSteps).
  if [ -f "$report" ]; then
    awk -F '\t' '
      NF >= 4 && ($1 == "step" || $1 == "network") && ($3 == "ok" || $3 == "failed" || $3 == "skipped") {
        # The message is the rest of the line, tabs and all.
        message = $0; for (i = 0; i < 3; i++) sub(/^[^\t]*\t/, "", message)
        printf "  %-7s  %s: %s\n", $3, ($1 == "step" ? $2 : "network"), message; n++
      }
      END { if (!n) print "  (no steps recorded)" }' "$report"
  else
    printf '  (no restore report at %s: restore.sh did not run, or could not write it)\n' "$report"
  fi
  if [ -f "$data/old-system.txt" ]; then
    cat "$data/old-system.txt"
  else
    printf 'old root:  unknown (the restore data has no old-system.txt)\n'
  fi
  printf 'to leave:  reboot   (boots the installed system; the rescue keeps nothing)\n'
} >"$banner.tmp" && mv -f "$banner.tmp" "$banner"
