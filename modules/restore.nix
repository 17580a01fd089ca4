# The restore hook: puts the old system's host keys, root's authorized keys and network back, from the cpio
# archive kexec-run.sh appended to the initrd (docs/image-layout.md, "The restore interface"). It runs
# scripts/restore.sh, the same file the Nix-free test image runs.
#
# Where the data is: the kernel unpacks every cpio in the initrd into the initramfs, so /emergency lands in
# the *stage-1* root. Netboot then mounts a fresh tmpfs as the real root (/sysroot) and switch-root deletes
# the initramfs, /emergency with it. So the hook has two halves:
#
# 1. Stage 1 only carries the data over: a small initrd unit copies /emergency to /sysroot/emergency once
#    /sysroot is mounted. (nixos-images' kexec installer copies its /ssh data into /sysroot/etc/ssh at the
#    same point; we copy the raw data instead and install it in stage 2, because the NixOS activation in
#    switch-root only then creates /etc, which may be an overlay that hides anything written earlier.)
# 2. Stage 2 runs restore.sh in its two phases (docs/image-layout.md, the boot order), as two oneshot units:
#    emergency-restore-keys (`restore.sh keys`: host keys, root's keys) before sshd, so sshd starts with the old
#    host keys in place and need not wait for the network; and emergency-restore-network (`restore.sh network`,
#    then the banner) after it and before network-pre.target. network-pre.target is systemd's hook for exactly
#    this: every network manager (dhcpcd, networkd, scripted networking) is ordered after it, and the unit pulls
#    it in, so the addresses are set before any of them starts. sshd is not ordered after network.target here
#    (nixpkgs orders it so; network.target comes after network-pre.target, hence after the network unit): it
#    listens on every address and needs none to start. The original tool used networking.localCommands, which
#    runs *after* network-pre.target, alongside DHCP, and not before sshd.
#
# Booted without appended data (say, to try the image), both units are skipped by their conditions.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  dataDir = "/emergency";

  # restore.sh and the network.sh it runs are POSIX sh; run them under dash, as on a Debian host, so a bashism
  # fails here too. network.sh is started as `sh`, so `sh` must be dash on the unit's PATH.
  dashAsSh = pkgs.runCommand "emergency-dash-as-sh" { } ''
    mkdir -p $out/bin
    ln -s ${lib.getExe pkgs.dash} $out/bin/sh
  '';

  # The old machine-id goes in place here, before systemd in stage 2 reads it, so the rescue has the old system's
  # identity from its start (systemd-networkd derives its DHCP DUID from it); restore.sh installs the rest of the
  # DHCP client identity (DUIDs, leases) at the same paths before network.sh starts dhcpcd.
  carryOver = root: ''
    rm -rf ${root}${dataDir}
    cp -a ${dataDir} ${root}${dataDir}
    chmod 700 ${root}${dataDir}
    if [ -f ${dataDir}/dhcp-identity/files/etc/machine-id ]; then
      mkdir -p ${root}/etc
      cp ${dataDir}/dhcp-identity/files/etc/machine-id ${root}/etc/machine-id
    fi
  '';

  # restore.sh's last-chance DHCP uses busybox's udhcpc with an add-only hook; only the busybox binary goes on
  # the unit's PATH, so its applets never shadow coreutils or iproute2.
  # Where restore.sh and rescue-banner.sh read and write, for both phases (docs/image-layout.md).
  restoreEnvironment = {
    EMERGENCY_DIR = dataDir;
    SSH_DIR = "/etc/ssh";
    ROOT_SSH_DIR = "/root/.ssh";
    RESTORE_LOG = "/var/log/emergency-restore.log";
    RESTORE_REPORT = "/var/log/emergency-restore.report";
    BANNER = "/run/emergency/banner";
  };

  busyboxOnly = pkgs.runCommand "emergency-busybox-only" { } ''
    mkdir -p $out/bin
    ln -s ${lib.getExe' pkgs.busybox "busybox"} $out/bin/busybox
  '';
in
{
  config = lib.mkMerge [
    (lib.mkIf config.boot.initrd.systemd.enable {
      boot.initrd.systemd.services.emergency-carry-over = {
        description = "Carry the emergency restore data into the rescue system's root";
        wantedBy = [ "initrd.target" ];
        before = [
          "initrd.target"
          "shutdown.target"
        ];
        conflicts = [ "shutdown.target" ];
        unitConfig = {
          DefaultDependencies = false;
          RequiresMountsFor = "/sysroot";
          ConditionPathIsDirectory = dataDir;
        };
        serviceConfig.Type = "oneshot";
        script = carryOver "/sysroot";
      };
    })

    # Scripted stage 1 (boot.initrd.systemd.enable = false): the same copy, once the root is at /mnt-root.
    (lib.mkIf (!config.boot.initrd.systemd.enable) {
      boot.initrd.postMountCommands = ''
        if [ -d ${dataDir} ]; then
          ${carryOver "/mnt-root"}
        fi
      '';
    })

    {
      # Phase 1: what sshd needs, nothing that waits for devices or the network.
      systemd.services.emergency-restore-keys = {
        description = "Restore the old system's host keys and root's authorized keys";
        wantedBy = [ "multi-user.target" ];
        before = [
          "sshd.service"
          "sshd.socket"
        ];
        unitConfig.ConditionPathIsDirectory = dataDir;
        # cp, chmod, mkdir, tr: nothing else in this phase.
        path = [ pkgs.coreutils ];
        environment = restoreEnvironment;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${lib.getExe pkgs.dash} ${../scripts/restore.sh} keys";
          StandardOutput = "journal+console";
        };
      };

      # Phase 2: the network, beside sshd; it continues the report phase 1 began, so it comes after it.
      systemd.services.emergency-restore-network = {
        description = "Restore the old system's network";
        wantedBy = [ "multi-user.target" ];
        # network.sh finds each interface by MAC once, so the NICs must exist: udev-settle waits until the
        # events of the coldplug (driver loads, firmware, the new interfaces) are handled.
        wants = [
          "network-pre.target"
          "systemd-udev-settle.service"
        ];
        after = [
          "systemd-udev-settle.service"
          "emergency-restore-keys.service"
        ];
        before = [ "network-pre.target" ];
        unitConfig.ConditionPathIsDirectory = dataDir;
        path = [
          dashAsSh
          pkgs.coreutils
          pkgs.gnugrep
          # restore.sh lists the DHCP identity files with find
          pkgs.findutils
          pkgs.gnused
          pkgs.iproute2
          # rescue-banner.sh formats the restore's step results with awk.
          pkgs.gawk
          # network.sh starts a DHCP client (in the background) only on interfaces whose addresses the old
          # system had leased, and keeps the last lease statically too; dhcpcd is the client it finds here.
          pkgs.dhcpcd
          # the default-gateway check after network.sh: ping makes the kernel resolve the gateway (ARP / ND)
          pkgs.iputils
          busyboxOnly
        ];
        environment = restoreEnvironment;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "${lib.getExe pkgs.dash} ${../scripts/restore.sh} network";
          # The login banner from the restore's results and the old system's disks (docs/image-layout.md).
          ExecStartPost = "${lib.getExe pkgs.dash} ${../scripts/rescue-banner.sh}";
          StandardOutput = "journal+console";
        };
      };

      # nixpkgs orders sshd after network.target, which comes after network-pre.target and so after the network
      # restore: without it sshd starts once its host keys are there (docs/image-layout.md, the boot order).
      # sshd-keygen.service is nixpkgs' other entry, kept (it never runs here: generateHostKeys = false).
      systemd.services.sshd.after = lib.mkForce [
        "sshd-keygen.service"
        "emergency-restore-keys.service"
      ];

      # Every login shell (ssh, the autologin console) starts with the banner rescue-banner.sh wrote.
      # It may come while the network phase still runs: `show` then waits briefly or says so.
      environment.loginShellInit = ''
        ${lib.getExe pkgs.dash} ${../scripts/rescue-banner.sh} show
      '';
    }
  ];
}
