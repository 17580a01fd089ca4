# Serial and VGA console with root logged in: when the network did not come back, the console (KVM, IPMI
# serial-over-LAN, a cloud provider's serial console) is the only way in.
{ ... }:
{
  # The consoles are on the kernel command line, from modules/kernel-params.json (rescue.nix): the serial port
  # goes last, so it becomes /dev/console, where systemd's getty generator starts a serial getty, and tty1
  # keeps its usual getty on the VGA screen.
  # No password exists in the rescue system; whoever has the console already has the machine.
  services.getty.autologinUser = "root";
  services.getty.helpLine = ''
    emergency rescue system: running from RAM. Restore log: /var/log/emergency-restore.log
  '';
  # Root has no password and its SSH keys only arrive at boot (restore.nix), which the users module cannot see.
  users.allowNoPasswordLogin = true;
}
