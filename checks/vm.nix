# checks.x86_64-linux.vm: the whole rescue in NixOS VMs, the Nix twin of the QEMU end-to-end test in `npm test`.
#
# `server` is an ordinary NixOS machine with a static network that is not trivial and keys known in advance;
# `operator` runs the packaged orchestrator with the built image against it. After the rescue, every fact is
# read through the operator's ssh, since the test driver's own channel into `server` dies with its old kernel.
#
#   nix build .#checks.x86_64-linux.vm -L
{
  pkgs,
  emergency,
  image,
}:
let
  # Keys made once per build of the test, never committed: the server's host key, the operator's login key,
  # a sudo user's key, and a backup key with a forced command that must not become a root login.
  keys = pkgs.runCommand "emergency-vm-test-keys" { nativeBuildInputs = [ pkgs.openssh ]; } ''
    mkdir $out
    for name in host operator alice backup; do
      ssh-keygen -q -t ed25519 -N "" -C "$name@emergency-test" -f $out/$name
    done
  '';

  serverMac = "52:54:00:12:01:02"; # the test framework's MAC for vlan 1, node 2 (nodes sort: operator, server)
in
pkgs.testers.runNixOSTest {
  name = "emergency-vm";

  nodes.server = {
    # The rescue system, its staged image and the kexec copy of it all need RAM at once (docs/nix.md).
    virtualisation.memorySize = 4096;
    virtualisation.vlans = [ 1 ];

    services.openssh = {
      enable = true;
      hostKeys = [
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
    };
    environment.etc."ssh/ssh_host_ed25519_key" = {
      source = "${keys}/host";
      mode = "0600";
    };
    environment.etc."ssh/ssh_host_ed25519_key.pub".source = "${keys}/host.pub";

    users.users.alice = {
      isNormalUser = true;
      extraGroups = [ "wheel" ];
    };

    # On top of the framework's 192.168.1.2/24 and 2001:db8:1::2/64 on eth1: a second address of each family,
    # an extra route of each family, an IPv6 default route via a link-local gateway, two nameservers.
    networking.interfaces.eth1 = {
      ipv4.addresses = [
        {
          address = "198.51.100.2";
          prefixLength = 24;
        }
      ];
      ipv6.addresses = [
        {
          address = "2001:db8:42::2";
          prefixLength = 64;
        }
      ];
      ipv4.routes = [
        {
          address = "203.0.113.0";
          prefixLength = 24;
          via = "192.168.1.1";
        }
      ];
      ipv6.routes = [
        {
          address = "2001:db8:99::";
          prefixLength = 48;
          via = "2001:db8:1::1";
        }
      ];
    };
    networking.defaultGateway6 = {
      address = "fe80::1";
      interface = "eth1";
    };
    networking.nameservers = [
      "192.0.2.53"
      "2001:db8::53"
    ];
  };

  nodes.operator = {
    virtualisation.vlans = [ 1 ];
    virtualisation.additionalPaths = [
      image
      keys
    ];
    environment.systemPackages = [ emergency ];
  };

  testScript = ''
    import json

    def global_addresses(ip_json):
        """MAC -> set of address/prefix: every IPv4 address, and IPv6 ones of global scope that are static."""
        by_mac = {}
        for link in json.loads(ip_json):
            mac = link.get("address")
            for a in link.get("addr_info", []):
                if a["family"] == "inet6" and (a.get("scope") != "global" or a.get("dynamic")):
                    continue
                if a.get("scope") == "host":
                    continue
                by_mac.setdefault(mac, set()).add(f"{a['local']}/{a['prefixlen']}")
        return by_mac

    start_all()
    server.wait_for_unit("sshd.service")
    server.wait_for_unit("network-online.target")
    operator.wait_for_unit("multi-user.target")

    def key(name):
        """The base64 part of a test key, which is what identifies it in any file."""
        return operator.succeed(f"cat ${keys}/{name}.pub").split()[1]

    with subtest("the old system, as the operator sees it"):
        # The keys are files in ~/.ssh, as on most hosts; the test keys are build outputs, so they are put
        # in place here rather than read into the configuration (that would be import-from-derivation).
        server.succeed(
            "install -D -m 600 ${keys}/operator.pub /root/.ssh/authorized_keys",
            "install -d -m 700 -o alice /home/alice/.ssh",
            "{ cat ${keys}/alice.pub; printf 'command=\"/run/current-system/sw/bin/true\" '; cat ${keys}/backup.pub; }"
            " > /home/alice/.ssh/authorized_keys",
            "chown alice /home/alice/.ssh/authorized_keys",
        )
        operator.succeed(
            "install -D -m 600 ${keys}/operator /root/.ssh/id_ed25519",
            "printf 'server,192.168.1.2 %s\\n' \"$(cut -d' ' -f1,2 ${keys}/host.pub)\" > /root/.ssh/known_hosts",
        )
        operator.succeed("ssh -o BatchMode=yes root@server true")
        old_addresses = global_addresses(server.succeed("ip -j addr show"))
        assert "${serverMac}" in old_addresses, f"no addresses for ${serverMac} before: {old_addresses}"
        old_host_key = server.succeed("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
        old_boot_id = server.succeed("cat /proc/sys/kernel/random/boot_id").strip()

    with subtest("emergency rescues the server"):
        operator.succeed("emergency --yes --image ${image} root@server >&2", timeout=900)

    def rescue(cmd):
        return operator.succeed(f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes root@server -- {cmd}")

    with subtest("the rescue system is running, not the old one"):
        cmdline = rescue("cat /proc/cmdline")
        assert "emergency.rescue=1" in cmdline, f"not the rescue kernel: {cmdline}"
        rescue("test -e /etc/emergency-rescue")
        hostname = rescue("hostname").strip()
        assert hostname == "emergency-rescue", f"hostname is {hostname}, not emergency-rescue"
        new_boot_id = rescue("cat /proc/sys/kernel/random/boot_id").strip()
        assert new_boot_id != old_boot_id, "boot id unchanged: the server never kexec-ed"
        rescue("systemctl is-active emergency-restore-keys.service emergency-restore-network.service")

    with subtest("same host key"):
        # StrictHostKeyChecking=yes above already refused any other key; say which key it was.
        new_host_key = rescue("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[1]
        assert new_host_key == old_host_key, f"host key changed: {old_host_key} -> {new_host_key}"

    with subtest("root accepts the expected keys, and no forced-command key"):
        authorized = rescue("cat /root/.ssh/authorized_keys")
        for name in ["operator", "alice"]:
            assert key(name) in authorized, f"{name}'s key missing from root's authorized_keys"
        assert key("backup") not in authorized, "the forced-command backup key became a root login"

    with subtest("addresses on the interface with the same MAC"):
        new_addresses = global_addresses(rescue("ip -j addr show"))
        for mac, addresses in old_addresses.items():
            missing = addresses - new_addresses.get(mac, set())
            assert not missing, f"{mac}: {sorted(missing)} not restored (now {new_addresses.get(mac)})"

    with subtest("routes"):
        out = rescue("ip route get 203.0.113.7")
        assert "via 192.168.1.1" in out, f"extra IPv4 route missing: {out}"
        out = rescue("ip -6 route get 2001:db8:99::7")
        assert "via 2001:db8:1::1" in out, f"extra IPv6 route missing: {out}"
        out = rescue("ip -6 route show default")
        assert "via fe80::1" in out, f"IPv6 default via a link-local gateway missing: {out}"
        links = {l["address"]: l["ifname"] for l in json.loads(rescue("ip -j link show"))}
        assert f"dev {links['${serverMac}']}" in out, f"IPv6 default route not on the interface with ${serverMac}: {out}"

    with subtest("nameservers"):
        resolv = rescue("cat /etc/resolv.conf")
        for ns in ["192.0.2.53", "2001:db8::53"]:
            assert f"nameserver {ns}" in resolv, f"nameserver {ns} missing: {resolv}"

    # The driver cannot shut the rescue system down through its old channel.
    server.crash()
  '';
}
