#!/bin/sh
# Runs in the rescue system after restore.sh: writes the login banner that greets the operator (shown by a
# login shell's profile in both images, docs/image-layout.md). It says which host this rescue stands in for,
# what the restore did, the old system's root, mounts and disks with the first command to run (old-system.txt,
# rendered by the orchestrator from preflight's facts: ts/rescue-summary.ts) and how to leave. The CLI prints the
# same text (renderRescueSummary); a unit test runs this script against it.
#
# Environment (all optional):
#   EMERGENCY_DIR   the restore data                          (default /emergency)
#   RESTORE_REPORT  the restore report, when restore.sh writes one (KIND NAME STATUS MESSAGE lines)
#                                                             (default /var/log/emergency-restore.report)
#   RESTORE_STEPS   restore.sh's step results (STATUS TEXT lines), read when there is no report
#                                                             (default /run/emergency/restore-steps)
#   FALLBACK_STATE  the fallback reboot's state, when armed   (default /run/emergency/fallback-reboot)
#   BANNER          the banner file written                   (default /run/emergency/banner)
set -u

data=${EMERGENCY_DIR-/emergency}
report=${RESTORE_REPORT-/var/log/emergency-restore.report}
steps=${RESTORE_STEPS-/run/emergency/restore-steps}
fallback=${FALLBACK_STATE-/run/emergency/fallback-reboot}
banner=${BANNER-/run/emergency/banner}

mkdir -p "$(dirname "$banner")"
name=$(sed -n 's/^hostname=//p' "$data/restore.env" 2>/dev/null)
{
  printf "emergency rescue system for %s: running from RAM, the old system's disks are not mounted\n" "${name:-an unnamed host}"
  # The report's `step` and `network` records, else the plain step results: one `STATUS  TEXT` line each.
  results=
  if [ -f "$report" ]; then results=$report; elif [ -f "$steps" ]; then results=$steps; fi
  if [ -n "$results" ]; then
    printf 'restore:\n'
    awk -F '\t' '
      function show(status, text) { if (status == "ok" || status == "failed" || status == "skipped") { printf "  %-7s  %s\n", status, text; n++ } }
      NF >= 4 && ($1 == "step" || $1 == "network") { show($3, ($1 == "step" ? $2 : "network") ": " $4); next }
      NF < 4 { show($1, substr($0, length($1) + 2)) }
      END { if (!n) print "  (no steps recorded)" }' "$results"
  fi
  if [ -f "$data/old-system.txt" ]; then
    cat "$data/old-system.txt"
  else
    printf 'old root:  unknown (the restore data has no old-system.txt)\n'
  fi
  printf 'to leave:  reboot   (boots the installed system; the rescue keeps nothing)\n'
  if [ -f "$fallback" ]; then printf 'fallback:  %s\n' "$(head -n 1 "$fallback")"; fi
} >"$banner.tmp" && mv -f "$banner.tmp" "$banner"
