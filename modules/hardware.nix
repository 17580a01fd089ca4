# Drivers for real hardware. The rescue system's root is a tmpfs, so no storage or network driver is needed in
# stage 1: stage 2 has the kernel's whole module tree and udev loads what the machine has. What is chosen here is
# the firmware: all of linux-firmware would add several hundred MB to a system that lives in RAM, so only the
# blobs that server network cards and storage controllers load at probe time are shipped.
{ config, lib, pkgs, ... }:
let
  # Paths under lib/firmware, as shell globs (emergency.drivers.firmware, drivers.nix: users add to it). A card
  # missing here still works if its driver needs no firmware (Intel igb/ixgbe/i40e, Mellanox mlx4/mlx5, virtio,
  # most SAS/RAID HBAs); preflight names what a host's NIC needs and the image lacks.
  defaultFirmware = [
    "bnx2" # Broadcom NetXtreme II (bnx2)
    "bnx2x" # Broadcom NetXtreme II 10G (bnx2x)
    "tigon" # Broadcom tg3 on some chips
    "rtl_nic" # Realtek r8169 family
    "intel/ice" # Intel E810 (ice) DDP package; without it the card runs in safe mode
    "e100" # Intel e100
    "qed" # QLogic FastLinQ (qede)
    "cxgb4" # Chelsio T4-T6
    "qlogic" # QLogic SCSI (qla1280) and others
    "ql2*_fw.bin" # QLogic Fibre Channel HBAs (qla2xxx)
    "advansys" # AdvanSys SCSI
    "aic94xx-seq.fw" # Adaptec SAS
  ];

  # Dereferenced copies: linux-firmware dedups with symlinks across directories, and nixpkgs' firmware
  # compression refuses the dangling links a partial copy would leave.
  rescueFirmware = pkgs.runCommand "emergency-rescue-firmware" { } ''
    src=${pkgs.linux-firmware}/lib/firmware
    mkdir -p $out/lib/firmware
    copied=0
    for glob in ${lib.escapeShellArgs config.emergency.drivers.firmware}; do
      for path in "$src"/$glob; do
        [ -e "$path" ] || continue
        rel=''${path#"$src"/}
        mkdir -p "$out/lib/firmware/$(dirname "$rel")"
        cp -rL --no-preserve=mode "$path" "$out/lib/firmware/$rel"
        copied=$((copied + 1))
      done
    done
    if [ "$copied" = 0 ]; then
      echo "no firmware matched: linux-firmware's layout changed, update modules/hardware.nix" >&2
      exit 1
    fi
  '';
in
{
  emergency.drivers.firmware = defaultFirmware;
  hardware.firmware = [ rescueFirmware ];

  # These GPU drivers cannot initialise without firmware that is not shipped, and by then they have already
  # taken the screen from the boot framebuffer: the VGA console of a KVM would go black. The firmware
  # framebuffer (efifb/simpledrm/vgacon) keeps working without them.
  boot.blacklistedKernelModules = [
    "amdgpu"
    "radeon"
  ];
}
