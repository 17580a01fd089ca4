# What the rescue kernel can drive, and the one-line fixes when preflight says it cannot (issue 9).
#
# The options feed the kernel's module tree and the firmware set; `system.build.emergencyDriverManifest` is the
# image's drivers.manifest (docs/image-layout.md), generated from exactly that tree and firmware, so preflight
# (ts/preflight/nics.ts) refuses a host whose NIC the rescue system could not bring up.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.emergency.drivers;
  kernel = config.boot.kernelPackages.kernel;
  version = kernel.modDirVersion;
in
{
  options.emergency.drivers = {
    modulePackages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ config.boot.kernelPackages.r8168 ]";
      description = ''
        Kernel module packages for NICs the kernel's own tree does not drive (out-of-tree drivers); added to
        `boot.extraModulePackages`, and their modalias patterns to the image's driver manifest.
      '';
    };
    firmware = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      example = [ "intel/ice/ddp/ice.pkg" ];
      description = ''
        Paths under linux-firmware's lib/firmware (shell globs) the rescue system ships. The default (hardware.nix)
        is the firmware of common server NICs and storage controllers; a definition adds to it.
      '';
    };
    firmwarePackages = lib.mkOption {
      type = lib.types.listOf lib.types.package;
      default = [ ];
      example = lib.literalExpression "[ pkgs.linux-firmware ]";
      description = "More firmware packages for the rescue system (all of linux-firmware adds several hundred MB of RAM).";
    };
  };

  config = {
    boot.extraModulePackages = cfg.modulePackages;
    hardware.firmware = cfg.firmwarePackages;

    # One record per line (docs/image-layout.md). The module tree is the aggregated one modprobe uses (kernel +
    # extraModulePackages, depmod'ed); hardware.firmware is the firmware environment udev's loader searches.
    system.build.emergencyDriverManifest =
      pkgs.runCommand "emergency-drivers.manifest"
        {
          nativeBuildInputs = [ pkgs.buildPackages.kmod ];
          modules = "${config.system.modulesTree}/lib/modules/${version}";
          firmware = "${config.hardware.firmware}/lib/firmware";
          inherit version;
        }
        ''
          {
            echo '# emergency driver manifest (docs/image-layout.md)'
            echo "kernel $version"
            find -L "$modules" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' | LC_ALL=C sort |
              while read -r ko; do
                rel=''${ko#"$modules"/}
                rel=''${rel%.xz} rel=''${rel%.zst} rel=''${rel%.gz}
                name=$(basename "$rel" .ko | tr - _)
                echo "module $name loadable $rel"
                modinfo -F firmware "$ko" | grep -v ' ' | sed "s|^|wants $name |"
              done
            sed -n 's|^\(.*/\)\{0,1\}\([^/]*\)\.ko$|module \2 builtin &|p' "$modules/modules.builtin" |
              awk '{ gsub("-", "_", $2); print }'
            grep '^alias [^ ]* [^ ]*$' "$modules/modules.alias"
            if [ -e "$modules/modules.builtin.modinfo" ]; then
              tr '\0' '\n' <"$modules/modules.builtin.modinfo" | grep -v '^[^=]*=.* ' |
                sed -n -e 's/^\([^.=]*\)\.alias=\(.*\)$/alias \2 \1/p' -e 's/^\([^.=]*\)\.firmware=\(.*\)$/wants \1 \2/p'
            fi
            (cd "$firmware" && find -L . -type f) | grep -v ' ' | sed -e 's|^\./|firmware |' -e 's/\.\(xz\|zst\)$//' | LC_ALL=C sort -u
          } >$out
          grep -q '^alias ' $out || { echo "drivers.manifest: no modalias patterns found under $modules" >&2; exit 1; }
        '';
  };
}
