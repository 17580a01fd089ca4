# nixosModules.kexec: the rescue system (rescue.nix) plus what makes it an emergency image: the image tarball
# (image.nix, `system.build.emergencyImage`), the hook that restores the old system's keys and network
# (restore.nix) and the fallback reboot that undoes a rescue nobody can reach (fallback.nix). Import it, add your own modules, and build `config.system.build.emergencyImage`.
{
  imports = [
    ./rescue.nix
    ./image.nix
    ./restore.nix
    ./fallback.nix
    ./watchdog.nix
  ];
}
