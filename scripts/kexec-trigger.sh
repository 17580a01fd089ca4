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
# If `kexec -e` returns, the old system keeps running: unload the rescue system and remove the stage.
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

# --no-sync: kexec-tools would otherwise sync() again on exec, without a deadline, and hang on a dying disk.
kexec --no-sync -e
echo "emergency: kexec -e failed, the old system keeps running; unloading and removing the stage" >/dev/kmsg
kexec -u
cd / && bb umount -l "$stage_dir" && case ${stage_dir##*/} in emergency.*) bb rmdir "$stage_dir" ;; esac
