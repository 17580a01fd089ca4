# The hardware watchdog across the jump (docs/watchdog.md): a watchdog the host armed with nowayout right before
# kexec keeps counting in the rescue; this loads its driver and feeds it (scripts/watchdog.sh feed, the same file
# the Debian test image's /init runs) until the fallback reboot is confirmed, then stops it, or keeps feeding it
# where the host's lock keeps it from stopping.
{
  config,
  lib,
  pkgs,
  ...
}:
{
  options.emergency.watchdogModules = lib.mkOption {
    type = lib.types.listOf lib.types.str;
    # Empty, so hosts never arm a watchdog for this image by default: the arming is proven in QEMU with the Debian
    # test image (i6300esb), but this image's side (the unit below, its time from kexec to the first feed, which
    # must stay under the host's timeout) is evaluated, not booted. Opt in with [ "i6300esb" ].
    default = [ ];
    example = [ "i6300esb" ];
    description = ''
      Kernel modules of hardware watchdogs the rescue system takes over. image.info lists them as
      watchdog_modules, and a host arms its watchdog before the jump only when its driver is one of them.
    '';
  };

  config = {
    # Loaded by systemd-modules-load early; the feeder starts right after it and takes over whatever watchdog
    # runs (one the host armed, or one the firmware left running).
    boot.kernelModules = config.emergency.watchdogModules;

    systemd.services.emergency-watchdog = {
      description = "Feed the hardware watchdog the host armed until the rescue is confirmed";
      wantedBy = [ "sysinit.target" ];
      before = [ "sysinit.target" ];
      after = [ "systemd-modules-load.service" ];
      unitConfig.DefaultDependencies = false;
      path = [ pkgs.coreutils ];
      serviceConfig = {
        Type = "exec";
        ExecStart = "${lib.getExe pkgs.dash} ${../scripts/watchdog.sh} feed";
        StandardOutput = "journal+console";
      };
    };
  };
}
