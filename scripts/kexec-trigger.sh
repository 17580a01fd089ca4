#!/bin/sh
# The jump itself: started detached by kexec-run.sh once the rescue system is loaded, so that the ssh command
# running kexec-run.sh returns its result before the kernel is replaced.
#
# Usage: sh IMAGE_DIR/kexec-trigger.sh KEEPER_PID IMAGE_DIR STAGE_DIR   (stdin, stdout, stderr: /dev/null)
#   KEEPER_PID  the stage keeper (scripts/stage.sh); its exit is the orchestrator's acknowledgement
#   IMAGE_DIR   the staged emergency-image/ directory (busybox, kexec and run-tool.sh come from it)
#   STAGE_DIR   the staging tmpfs, removed if the jump fails
#
# It waits for the acknowledgement: the orchestrator, having read kexec_triggered=1, ends the keeper. If the
# orchestrator is gone, it goes ahead after 10 s anyway, because the operator already confirmed. sync runs
# with a deadline (10 s): on a dying disk it can block forever, and the rescue must not wait for it.
# Then, where the host has a hardware watchdog whose driver the rescue image takes over (image.info
# watchdog_modules), it is armed with nowayout (scripts/watchdog.sh arm, docs/watchdog.md): a hang between here and
# the rescue's userspace resets the machine into its installed system.
# If `kexec -e` returns, the old system keeps running: unload the rescue system and remove the stage, and keep
# feeding a watchdog that was armed (it cannot be stopped any more).
set -u

keeper=$1 here=$2 stage_dir=$3

bb() { "$here/bin/busybox" "$@"; }
kexec() { sh "$here/run-tool.sh" kexec "$@"; }

waited=0
while kill -0 "$keeper" 2>/dev/null && [ "$waited" -lt 200 ]; do
  bb usleep 50000
  waited=$((waited + 1))
done

bb sync &
sync_pid=$! waited=0
while kill -0 "$sync_pid" 2>/dev/null && [ "$waited" -lt 500 ]; do
  bb usleep 20000
  waited=$((waited + 1))
done

if kill -0 "$sync_pid" 2>/dev/null; then
  echo "emergency: sync did not finish within 10 s (a slow or dying disk); jumping without it" | bb tee /dev/kmsg >/dev/console 2>&1
fi

# Through busybox's sh, so watchdog.sh's cat, sleep and readlink are the image's applets, not whatever the host has.
watchdog_modules=$(bb sed -n 's/^watchdog_modules=//p' "$here/image.info" 2>/dev/null)
armed=0
if [ -n "$watchdog_modules" ] && [ -f "$here/watchdog.sh" ]; then
  # shellcheck disable=SC2086 # a space-separated list of module names
  if bb sh "$here/watchdog.sh" arm $watchdog_modules | bb tee /dev/kmsg | bb grep '^watchdog_armed=' >/dev/null; then armed=1; fi
fi

# --no-sync: kexec-tools would otherwise sync() again on exec, without a deadline, and hang on a dying disk.
kexec --no-sync -e
echo "emergency: kexec -e failed, the old system keeps running; unloading and removing the stage" >/dev/kmsg
kexec -u
if [ "$armed" = 1 ]; then bb sh "$here/watchdog.sh" keep-feeding </dev/null >/dev/null 2>&1 & fi
cd / && bb umount -l "$stage_dir" && case ${stage_dir##*/} in emergency.*) bb rmdir "$stage_dir" ;; esac
