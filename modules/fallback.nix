# The fallback reboot, a router's "commit confirmed" for the rescue: unless the CLI (once it has verified the
# rescue) or an interactive root login confirms in time, the rescue system reboots through the firmware into the
# host's installed system. scripts/fallback-reboot.sh does the work, the same file the Debian test image's /init
# runs; the deadline is fallback_reboot_seconds in /emergency/restore.env (docs/image-layout.md).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  dataDir = "/emergency";
  # Where the CLI and the login shell find the script, in both images (docs/image-layout.md).
  scriptPath = "/etc/emergency/fallback-reboot.sh";
in
{
  environment.etc."emergency/fallback-reboot.sh".source = ../scripts/fallback-reboot.sh;

  systemd.services.emergency-fallback-reboot = {
    description = "Reboot into the installed system unless this rescue is confirmed in time";
    # Armed as early as stage 2 allows, before the restore, the network and sshd: anything after it may hang, and
    # the deadline must be running by then. No default dependencies, so nothing else it waits for can hang it.
    wantedBy = [ "sysinit.target" ];
    before = [
      "sysinit.target"
      "emergency-restore-keys.service"
      "emergency-restore-network.service"
      "sshd.service"
      "shutdown.target"
    ];
    conflicts = [ "shutdown.target" ];
    unitConfig = {
      DefaultDependencies = false;
      # Booted without restore data (say, to try the image): nothing to fall back from.
      ConditionPathIsDirectory = dataDir;
    };
    # reboot is systemd's (`reboot -f`: a forced reboot through PID 1, never a kexec); sysrq is the script's last resort.
    path = [
      pkgs.coreutils
      pkgs.gnused
      config.systemd.package
    ];
    environment.EMERGENCY_DIR = dataDir;
    serviceConfig = {
      Type = "exec";
      ExecStart = "${lib.getExe pkgs.dash} ${../scripts/fallback-reboot.sh} run";
      StandardOutput = "journal+console";
    };
  };

  # A person at a terminal (ssh with a pty, or the console) logging in as root disarms it: they must not be
  # rebooted under their hands. `ssh root@host cmd` runs no login shell and has no terminal, so it does not.
  environment.loginShellInit = ''
    if [ -f ${scriptPath} ]; then ${lib.getExe pkgs.dash} ${scriptPath} login; fi
  '';
}
