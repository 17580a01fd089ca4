# Networking belongs to the restore hook (restore.nix): network.sh, generated from the old system's live state,
# sets addresses, routes and /etc/resolv.conf on the interfaces with the old MACs. Nothing else may touch them.
{ ... }:
{
  # No DHCP service: a lease could add a second default route or, on a host with static addresses, none at all,
  # and networkd would remove the "foreign" addresses and routes network.sh set. network.sh itself starts a
  # DHCP client only on the interfaces that were DHCP-configured before (restore.nix puts dhcpcd on its PATH).
  networking.useDHCP = false;
  networking.dhcpcd.enable = false;
  networking.useNetworkd = false;

  # resolvconf.service rewrites /etc/resolv.conf early at boot, which would race network.sh writing it.
  networking.resolvconf.enable = false;

  # sshd is the only listener, and the old system's firewall rules are not known here: a default-deny
  # firewall could only get in the way of reaching the rescue system. It also saves the nftables closure.
  networking.firewall.enable = false;
}
