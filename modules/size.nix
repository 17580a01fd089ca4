# The whole system sits in RAM, twice over while it boots (the compressed initrd and the unpacked files), so
# every MB counts: nixpkgs' minimal profile (no documentation, no default packages, no XDG data) and an
# initrd compression that is cheap to unpack.
{ modulesPath, ... }:
{
  imports = [ (modulesPath + "/profiles/minimal.nix") ];

  # zstd unpacks several times faster than xz at a similar size; the kernel unpacks the initrd on one core
  # before anything else runs, so this is boot time. The squashfs inside is zstd as well (netboot.nix).
  boot.initrd.compressor = "zstd";
  boot.initrd.compressorArgs = [ "-19" ];
}
