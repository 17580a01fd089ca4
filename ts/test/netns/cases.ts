/**
 * The network setups the round-trip tests rebuild, one per line of thought: provider setups seen in the wild and
 * the features the restore script must handle. The unit fixtures (ts/test/fixtures/network/) are captures of these.
 */
import type { NetnsCase } from './netns.js';

const m = (n: number) => `52:54:00:12:34:${n.toString(16).padStart(2, '0')}`;

export const CASES: NetnsCase[] = [
  {
    name: 'static-ipv4',
    nics: [{ name: 'eth0', mac: m(1) }],
    setup: `
      ip link set eth0 up
      ip addr add 192.0.2.10/24 dev eth0
      ip route add default via 192.0.2.1`,
    resolvConf: 'search example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n',
  },
  {
    // Hetzner dedicated: a main IPv4 with the gateway reached on-link, an IPv6 /64 with fe80::1 as gateway.
    name: 'hetzner-dedicated',
    nics: [{ name: 'enp0s31f6', mac: m(2) }],
    setup: `
      ip link set enp0s31f6 up
      ip addr add 203.0.113.77/32 dev enp0s31f6
      ip route add default via 203.0.113.65 dev enp0s31f6 onlink
      ip -6 addr add 2a01:4f8:a:b::2/64 dev enp0s31f6
      ip -6 route add default via fe80::1 dev enp0s31f6`,
    resolvConf: 'nameserver 185.12.64.1\nnameserver 2a01:4ff:ff00::add:1\n',
  },
  {
    // OVH: the main /24 with the gateway at .254 and a failover IP as /32 on the same NIC.
    name: 'ovh-failover',
    nics: [{ name: 'eno1', mac: m(3) }],
    setup: `
      ip link set eno1 up
      ip addr add 198.51.100.20/24 dev eno1
      ip addr add 203.0.113.200/32 dev eno1
      ip route add default via 198.51.100.254
      ip -6 addr add 2001:41d0:1:2::1/128 dev eno1
      ip -6 route add 2001:41d0:1:2ff:ff:ff:ff:ff dev eno1
      ip -6 route add default via 2001:41d0:1:2ff:ff:ff:ff:ff dev eno1`,
  },
  {
    // AWS: the address and routes came from DHCP; resolv.conf points at systemd-resolved's stub.
    name: 'aws-dhcp',
    nics: [{ name: 'ens5', mac: m(4) }],
    setup: `
      ip link set ens5 up
      ip link set ens5 mtu 9001
      ip addr add 172.31.5.9/20 dev ens5 valid_lft 3500 preferred_lft 3500
      ip route add default via 172.31.0.1 proto dhcp src 172.31.5.9 metric 100
      ip route add 172.31.0.2 via 172.31.0.1 proto dhcp src 172.31.5.9 metric 100`,
    resolvConf: 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch ec2.internal\n',
    resolvedResolvConf: 'nameserver 172.31.0.2\nsearch ec2.internal\n',
  },
  {
    // IPv6 only, with IPv4 reached through an IPv6 gateway (RFC 8950 style) for the odd legacy destination.
    name: 'ipv6-only',
    nics: [{ name: 'ens3', mac: m(5) }],
    setup: `
      ip link set ens3 up
      ip -6 addr add 2001:db8:10::5/64 dev ens3
      ip -6 route add default via fe80::1 dev ens3
      ip -4 route add default via inet6 fe80::1 dev ens3`,
    resolvConf: 'nameserver 2001:4860:4860::8888\n',
  },
  {
    // Two uplinks with policy routing: replies leave by the interface their address belongs to.
    name: 'policy-routing',
    nics: [
      { name: 'eth0', mac: m(6) },
      { name: 'eth1', mac: m(7) },
    ],
    setup: `
      ip link set eth0 up
      ip link set eth1 up
      ip addr add 10.1.0.2/24 dev eth0
      ip addr add 10.2.0.2/24 dev eth1
      ip route add default via 10.1.0.1
      ip route add default via 10.2.0.1 table 200
      ip route add 10.2.0.0/24 dev eth1 table 200 src 10.2.0.2
      ip rule add from 10.2.0.2 table 200 priority 1000
      ip rule add fwmark 0x2/0xff table 200 priority 1001
      ip rule add iif eth1 table 200 priority 1002
      ip rule add uidrange 2000-2999 unreachable priority 1003
      ip -6 addr add 2001:db8:2::2/64 dev eth1
      ip -6 route add default via 2001:db8:2::1 dev eth1 table 200
      ip -6 rule add from 2001:db8:2::/64 table 200 priority 1000`,
  },
  {
    // The rescue kernel names the NICs the other way round: every address must follow its MAC.
    name: 'swapped-names',
    nics: [
      { name: 'eth0', mac: m(8), rescueName: 'eth1' },
      { name: 'eth1', mac: m(9), rescueName: 'eth0' },
    ],
    setup: `
      ip link set eth0 up
      ip link set eth1 up
      ip addr add 192.0.2.8/24 dev eth0
      ip addr add 198.51.100.9/24 dev eth1
      ip route add default via 192.0.2.1 dev eth0
      ip route add 203.0.113.0/24 via 198.51.100.1 dev eth1`,
  },
  {
    name: 'bridge',
    nics: [
      { name: 'enp1s0', mac: m(10) },
      { name: 'enp2s0', mac: m(11) },
    ],
    setup: `
      ip link add br0 address 52:54:00:aa:bb:01 type bridge stp_state 0 forward_delay 200
      ip link set enp1s0 mtu 9000
      ip link set enp2s0 mtu 9000
      ip link set enp1s0 master br0
      ip link set enp2s0 master br0
      ip link set br0 mtu 9000
      ip link set enp1s0 up
      ip link set enp2s0 up
      ip link set br0 up
      ip addr add 10.20.0.5/16 dev br0
      ip -6 addr add 2001:db8:20::5/64 dev br0
      ip route add default via 10.20.0.1
      ip -6 route add default via 2001:db8:20::1 dev br0`,
  },
  {
    // Several addresses per interface: secondaries, an explicit broadcast, noprefixroute, a point-to-point peer.
    name: 'many-addresses',
    nics: [{ name: 'eth0', mac: m(12) }],
    setup: `
      ip link set eth0 up
      ip addr add 10.3.0.2/24 broadcast 10.3.0.255 dev eth0
      ip addr add 10.3.0.3/24 dev eth0
      ip addr add 10.4.0.2/24 dev eth0 noprefixroute
      ip addr add 10.9.9.1 peer 10.9.9.2/32 dev eth0
      ip -6 addr add 2001:db8:3::2/64 dev eth0
      ip -6 addr add 2001:db8:3::3/64 dev eth0
      ip route add 10.4.0.0/24 dev eth0 src 10.4.0.2 metric 50
      ip route add default via 10.3.0.1`,
  },
  {
    // Route attributes and the route types that need no interface.
    name: 'route-attributes',
    nics: [{ name: 'eth0', mac: m(13) }],
    setup: `
      ip link set eth0 up
      ip link set eth0 mtu 1450
      ip addr add 10.5.0.2/24 dev eth0
      ip route add default via 10.5.0.1 metric 10 mtu 1400 advmss 1360
      ip route add 10.50.0.0/16 via 10.5.0.254 metric 20 proto static
      ip route add 10.51.0.0/16 via 10.5.0.254 table 100
      ip route add blackhole 10.66.0.0/16
      ip route add unreachable 10.67.0.0/16
      ip route add prohibit 10.68.0.0/16
      ip -6 route add blackhole 2001:db8:dead::/48`,
  },
  {
    // Addresses from router advertisements: kept statically and RA accepted again.
    name: 'ipv6-ra',
    nics: [{ name: 'eth0', mac: m(14) }],
    setup: `
      ip link set eth0 up
      ip -6 addr add 2001:db8:14:0:5054:ff:fe12:340e/64 dev eth0 valid_lft 86400 preferred_lft 14400
      ip -6 route add default via fe80::1 dev eth0 proto ra metric 1024`,
  },
  {
    // Anycast addresses on lo, an unused NIC that is down, and a resolver on the host itself.
    name: 'loopback-and-idle',
    nics: [
      { name: 'eth0', mac: m(15) },
      { name: 'eth1', mac: m(16) },
    ],
    setup: `
      ip link set eth0 up
      ip addr add 10.6.0.2/24 dev eth0
      ip addr add 10.255.255.1/32 dev lo
      ip -6 addr add 2001:db8:ffff::1/128 dev lo
      ip route add default via 10.6.0.1`,
    resolvConf: 'nameserver 127.0.0.1\nnameserver 10.6.0.53\n',
  },
  {
    name: 'bond-vlan',
    needs: ['bond', 'vlan'],
    nics: [
      { name: 'eno1', mac: m(17) },
      { name: 'eno2', mac: m(18) },
    ],
    setup: `
      ip link add bond0 type bond mode active-backup miimon 100
      ip link set eno1 down
      ip link set eno2 down
      ip link set eno1 master bond0
      ip link set eno2 master bond0
      ip link set bond0 mtu 9000
      ip link set bond0 up
      ip link add link bond0 name bond0.100 type vlan id 100
      ip link set bond0.100 up
      ip addr add 10.100.0.5/24 dev bond0.100
      ip addr add 10.0.0.5/24 dev bond0
      ip route add default via 10.100.0.1`,
  },
  {
    name: 'vlan-on-nic',
    needs: ['vlan'],
    nics: [{ name: 'eth0', mac: m(19) }],
    setup: `
      ip link set eth0 up
      ip link add link eth0 name eth0.42 type vlan id 42
      ip link set eth0.42 mtu 1400
      ip link set eth0.42 up
      ip addr add 10.42.0.5/24 dev eth0.42
      ip route add default via 10.42.0.1`,
  },
  {
    name: 'dummy-anycast',
    needs: ['dummy'],
    nics: [{ name: 'eth0', mac: m(20) }],
    setup: `
      ip link set eth0 up
      ip addr add 10.7.0.2/24 dev eth0
      ip link add anycast0 address 52:54:00:aa:bb:02 type dummy
      ip link set anycast0 up
      ip addr add 192.0.2.100/32 dev anycast0
      ip route add default via 10.7.0.1`,
  },
];
