# nixosModules.emergency: the rescue system. The whole NixOS system lives in the initrd (nixpkgs' netboot
# ramdisk: a squashfs of the store inside the initrd, a tmpfs root), so kexec needs only a kernel, an initrd and
# `init=` on the command line, and nothing of the host's disks is touched unless the admin asks.
#
# Import it into your own configuration to add tools; nixosModules.kexec adds the image and the restore hook.
{
  lib,
  modulesPath,
  pkgs,
  ...
}:
let
  emergencyLib = import ./lib.nix;
  # Shared with the test image's builder: consoles, the rescue marker, panic=10 (a panicking rescue reboots
  # through the firmware into the installed system), loglevel.
  params = emergencyLib.rescueKernelParams pkgs.stdenv.hostPlatform.uname.processor;
in
{
  imports = [
    (modulesPath + "/installer/netboot/netboot.nix")
    ./console.nix
    ./drivers.nix
    ./hardware.nix
    ./network.nix
    ./ssh.nix
    ./size.nix
    ./tools.nix
  ];

  # The orchestrator and the tests recognise the rescue system by emergency.rescue=1 in /proc/cmdline and by
  # /etc/emergency-rescue; image.nix also puts the parameter in the image's cmdline file. NixOS writes
  # loglevel= itself, from consoleLogLevel; image.nix asserts that every shared parameter made it.
  boot.kernelParams = builtins.filter (p: builtins.match "loglevel=.*" p == null) params;
  boot.consoleLogLevel = lib.mkIf (emergencyLib.logLevelOf params != null) (emergencyLib.logLevelOf params);
  environment.etc.emergency-rescue.text = ''
    This is the emergency rescue system, running from RAM. Nothing here survives a reboot.
    Restore log: /var/log/emergency-restore.log
  '';

  networking.hostName = lib.mkDefault "emergency-rescue";

  # Systemd stage 1 (the nixpkgs default): restore.nix carries /emergency across switch-root with an initrd unit.
  boot.initrd.systemd.enable = lib.mkDefault true;

  # Stateless and rebuilt with every image: the state version is simply the release it is built from.
  system.stateVersion = lib.mkDefault lib.trivial.release;
}
