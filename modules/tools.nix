# What an admin reaches for when a server is broken: disks, file systems, volumes, copying data off, the network.
{ lib, pkgs, ... }:
{
  environment.systemPackages = with pkgs; [
    # file systems and volumes
    btrfs-progs
    e2fsprogs
    xfsprogs
    dosfstools
    ntfs3g
    lvm2
    mdadm
    cryptsetup
    # partitions and disks
    parted
    gptfdisk
    smartmontools
    nvme-cli
    ddrescue
    # getting data off, working on it
    rsync
    tmux
    vim
    curl
    # network and processes
    iproute2
    ethtool
    tcpdump
    htop
    lsof
    strace
  ];

  # ZFS tools and kernel module. Pools are never imported at boot: the rescue system has no ZFS file systems
  # of its own, and importing the old system's pools is the admin's decision (`zpool import -f`).
  boot.supportedFilesystems.zfs = true;
  boot.zfs.forceImportRoot = false;
  # ZFS refuses to start without a host id. A fixed one, different from the old system's, makes ZFS ask for
  # `-f` before importing a pool the old system may still have claimed: the right question in a rescue.
  networking.hostId = lib.mkDefault "8425e349";
}
