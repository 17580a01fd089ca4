# nixosModules.kexec: the rescue system (rescue.nix) plus what makes it an emergency image: the image tarball
# (image.nix, `system.build.emergencyImage`) and the hook that restores the old system's keys and network
# (restore.nix). Import it, add your own modules, and build `config.system.build.emergencyImage`.
{
  imports = [
    ./rescue.nix
    ./image.nix
    ./restore.nix
  ];
}
