# system.build.emergencyImage: the image tarball of docs/image-layout.md, built from this NixOS system
# (kernel, netboot initrd, command line) plus the host-side scripts and static tools.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  emergencyLib = import ./lib.nix;
  cfg = config.emergency.image;
  # uname -m of the hosts this image rescues: kexec-run.sh refuses any other.
  arch = pkgs.stdenv.hostPlatform.uname.processor;
  # The host may have nothing but sh and cat: these run there, so they must not need its libraries.
  hostTools = {
    busybox = lib.getExe' pkgs.pkgsStatic.busybox "busybox";
    kexec = lib.getExe' pkgs.pkgsStatic.kexec-tools "kexec";
    ip = lib.getExe' pkgs.pkgsStatic.iproute2 "ip";
  };
  # $out is a directory: the tarball and its sidecar, to publish side by side (docs/image-layout.md).
  name = "emergency-image-${arch}.tar";
  cmdline = emergencyLib.kernelCmdline "${config.system.build.toplevel}/init" config.boot.kernelParams;
in
{
  options.emergency.image.name = lib.mkOption {
    type = lib.types.strMatching "[^\n=]+";
    default = "NixOS ${config.system.nixos.release} rescue";
    defaultText = lib.literalExpression ''"NixOS ''${config.system.nixos.release} rescue"'';
    description = "The human name of the image, the `name` in its image.info.";
  };

  # Both image builders take the rescue's parameters from modules/kernel-params.json; a module that drops or
  # reorders one (panic=10 above all: without it a panicking rescue waits forever) fails here.
  config.assertions = [
    {
      assertion = emergencyLib.kernelParamProblems (emergencyLib.rescueKernelParams arch) config.boot.kernelParams == [ ];
      message = "emergency: the rescue kernel parameters differ from modules/kernel-params.json: ${
        lib.concatStringsSep "; " (emergencyLib.kernelParamProblems (emergencyLib.rescueKernelParams arch) config.boot.kernelParams)
      }";
    }
  ];

  config.system.build.emergencyImage =
    pkgs.runCommand "emergency-image-${arch}"
      {
        nativeBuildInputs = [
          pkgs.buildPackages.shellcheck-minimal
          pkgs.buildPackages.zstd
        ];
        info = emergencyLib.imageInfo {
          inherit arch;
          inherit (cfg) name;
          inherit (config.emergency) watchdogModules;
        };
        passthru = { inherit arch cmdline; };
      }
      ''
        dir=emergency-image
        mkdir -p $dir/bin

        cp ${config.system.build.kernel}/${config.system.boot.loader.kernelFile} $dir/kernel
        cp ${config.system.build.netbootRamdisk}/initrd $dir/initrd
        printf '%s\n' ${lib.escapeShellArg cmdline} >$dir/cmdline
        # What this kernel can drive and the firmware it has (drivers.nix, docs/image-layout.md).
        cp ${config.system.build.emergencyDriverManifest} $dir/drivers.manifest

        # The host-side scripts: kexec-run.sh with its placeholders (listed at its top) filled in, the others
        # verbatim; all checked as the POSIX sh they run as on the host.
        sed -e 's|@arch@|${arch}|g' ${../scripts/kexec-run.sh} >$dir/kexec-run.sh
        if grep -n '@[a-z_][a-z_]*@' $dir/kexec-run.sh; then
          echo "kexec-run.sh: placeholder left unfilled (see the lines above)" >&2
          exit 1
        fi
        cp ${../scripts/kexec-trigger.sh} $dir/kexec-trigger.sh
        cp ${../scripts/run-tool.sh} $dir/run-tool.sh
        cp ${../scripts/watchdog.sh} $dir/watchdog.sh
        shellcheck --shell=sh $dir/kexec-run.sh $dir/kexec-trigger.sh $dir/run-tool.sh $dir/watchdog.sh
        chmod 755 $dir/kexec-run.sh $dir/kexec-trigger.sh $dir/run-tool.sh $dir/watchdog.sh

        install -m 755 ${hostTools.busybox} $dir/bin/busybox
        install -m 755 ${hostTools.kexec} $dir/bin/kexec
        install -m 755 ${hostTools.ip} $dir/bin/ip

        # What the initrd occupies in RAM once the kernel has unpacked it (preflight compares it with the host's
        # free memory). The initrd is zstd frames back to back, which zstd decompresses as one stream.
        unpacked=$(zstd -dc $dir/initrd | wc -c)
        { printf '%s' "$info"; echo "rescue_unpacked_bytes=$unpacked"; } >$dir/image.info

        (cd $dir && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)

        # Uncompressed: the kernel and initrd are compressed already. Packed exactly as the Debian builder packs
        # it (docs/image-layout.md, "The tarball"); ustar gives one header block per member, which the sidecar's
        # offsets rely on. $out is a directory: the tarball and its sidecar, to publish side by side.
        mkdir $out
        tar --format=ustar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 -cf $out/${name} $dir
        # The sidecar for --image URL: what the operator's side reads instead of the whole tarball.
        sh ${../scripts/image-sidecar.sh} $out/${name} $out/${name}.meta
      '';
}
