// The network planners, without root: IPAM, -p parsing, nftables text, /etc files, netlink bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BerthError } from "../../src/errors.js";
import {
  allocate, broadcast, checkRequested, chooseSubnet, defaultGateway, defaultPool, formatCidr, intToIp, ipToInt, macFor, overlaps, parseCidr,
} from "../../src/network/ipam.js";
import { conflicts, dockerPorts, parseExpose, parsePublish, portLines, portSpecsFromDocker, proxyAddress, publishAll } from "../../src/network/ports.js";
import { portElementsText, renderRuleset } from "../../src/network/nft.js";
import { hostsFile, parseAddHost, parseResolvConf, resolvConf } from "../../src/network/etc-files.js";
import { delLink, linkUp, netlinkOp, newAddress, newBridge, newDefaultRoute, newVethIntoNetns } from "../../src/network/netlink.js";
import { encodePlan } from "../../src/core/plan.js";
import type { NetworkState } from "../../src/network/types.js";

test("IPv4 addresses and subnets round-trip", () => {
  assert.equal(intToIp(ipToInt("172.18.0.1")), "172.18.0.1");
  assert.equal(ipToInt("255.255.255.255"), 0xffffffff);
  assert.equal(formatCidr(parseCidr("10.1.0.0/16")), "10.1.0.0/16");
  assert.equal(formatCidr(parseCidr("10.1.2.3/16", true)), "10.1.0.0/16");
  assert.throws(() => parseCidr("10.1.2.3/16"), /host bits are set \(did you mean 10\.1\.0\.0\/16\?\)/);
  assert.throws(() => parseCidr("10.1.0.0"), BerthError);
  assert.throws(() => ipToInt("1.2.3.256"), /invalid IPv4 address/);
  assert.equal(broadcast(parseCidr("172.18.0.0/16")), "172.18.255.255");
  assert.equal(defaultGateway(parseCidr("10.200.3.0/24")), "10.200.3.1");
  assert.ok(overlaps(parseCidr("10.0.0.0/8"), parseCidr("10.200.0.0/24")));
  assert.ok(!overlaps(parseCidr("172.18.0.0/16"), parseCidr("172.19.0.0/16")));
});

test("chooseSubnet skips every candidate that collides with a host route or another network", () => {
  const taken = [parseCidr("172.18.0.0/16"), parseCidr("172.16.0.0/13", true)];
  // 172.16.0.0/13 covers 172.16-172.23
  assert.equal(formatCidr(chooseSubnet(defaultPool(), taken)), "172.24.0.0/16");
  assert.throws(() => chooseSubnet(["10.0.0.0/24"], [parseCidr("10.0.0.0/8")]), /no free subnet/);
});

test("allocate hands out addresses round robin, never the gateway, network, broadcast or one in use", () => {
  const net = parseCidr("10.9.0.0/29"); // .1 gateway, .2-.6 usable, .7 broadcast
  const used = new Set<string>();
  const got: string[] = [];
  let last: string | undefined;
  for (let i = 0; i < 5; i++) {
    last = allocate(net, "10.9.0.1", used, last);
    used.add(last);
    got.push(last);
  }
  assert.deepEqual(got, ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]);
  assert.throws(() => allocate(net, "10.9.0.1", used, last), /no free address left in subnet 10\.9\.0\.0\/29/);
  used.delete("10.9.0.3");
  assert.equal(allocate(net, "10.9.0.1", used, last), "10.9.0.3");
  // Round robin: a released address is not reused while later ones are free.
  const used2 = new Set(["10.9.0.2"]);
  assert.equal(allocate(net, "10.9.0.1", used2, "10.9.0.4"), "10.9.0.5");
});

test("a requested --ip is checked against the subnet, gateway and leases", () => {
  const net = parseCidr("10.9.0.0/24");
  assert.equal(checkRequested(net, "10.9.0.1", new Set(), "10.9.0.50", "n"), "10.9.0.50");
  assert.throws(() => checkRequested(net, "10.9.0.1", new Set(), "10.8.0.5", "n"), /not in network n's subnet 10\.9\.0\.0\/24/);
  assert.throws(() => checkRequested(net, "10.9.0.1", new Set(), "10.9.0.1", "n"), /gateway/);
  assert.throws(() => checkRequested(net, "10.9.0.1", new Set(["10.9.0.9"]), "10.9.0.9", "n"), /already in use on network n/);
  assert.equal(macFor("172.17.0.2"), "02:42:ac:11:00:02");
});

test("-p accepts docker's forms, ranges and protocols", () => {
  assert.deepEqual(parsePublish("80"), [{ proto: "tcp", hostIp: "", hostPort: 0, containerPort: 80 }]);
  assert.deepEqual(parsePublish("8080:80"), [{ proto: "tcp", hostIp: "", hostPort: 8080, containerPort: 80 }]);
  assert.deepEqual(parsePublish("127.0.0.1:8080:80/udp"), [{ proto: "udp", hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80 }]);
  assert.deepEqual(parsePublish("127.0.0.1::80"), [{ proto: "tcp", hostIp: "127.0.0.1", hostPort: 0, containerPort: 80 }]);
  assert.deepEqual(parsePublish("0.0.0.0:9000-9001:90-91").map((p) => [p.hostIp, p.hostPort, p.containerPort]), [["", 9000, 90], ["", 9001, 91]]);
  assert.throws(() => parsePublish("9000-9002:90-91"), /differ in size/);
  assert.throws(() => parsePublish("80/sctp"), /invalid protocol "sctp"/);
  assert.throws(() => parsePublish("70000:80"), /invalid host port "70000"/);
  assert.throws(() => parsePublish("host:80:80"), /invalid host address "host"/);
  assert.deepEqual(parseExpose("8000-8001/udp"), ["8000/udp", "8001/udp"]);
  assert.deepEqual(publishAll(["80/tcp"]), [{ proto: "tcp", hostIp: "", hostPort: 0, containerPort: 80 }]);
  // docker's HostConfig.PortBindings
  assert.deepEqual(portSpecsFromDocker({ "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }, { HostPort: "" }], "53/udp": null }), [
    { proto: "tcp", hostIp: "127.0.0.1", hostPort: 8080, containerPort: 80 },
    { proto: "tcp", hostIp: "", hostPort: 0, containerPort: 80 },
    { proto: "udp", hostIp: "", hostPort: 0, containerPort: 53 },
  ]);
});

test("port conflicts: same protocol and port on overlapping addresses", () => {
  const a = { proto: "tcp" as const, hostIp: "", hostPort: 80, containerPort: 80 };
  assert.ok(conflicts(a, { ...a, hostIp: "127.0.0.1" }));
  assert.ok(!conflicts(a, { ...a, proto: "udp" }));
  assert.ok(!conflicts({ ...a, hostIp: "127.0.0.1" }, { ...a, hostIp: "127.0.0.2" }));
  assert.deepEqual(dockerPorts([{ ...a, hostPort: 8080 }], ["80/tcp", "53/udp"]), { "80/tcp": [{ HostIp: "0.0.0.0", HostPort: "8080" }], "53/udp": null });
  assert.deepEqual(portLines([{ ...a, hostPort: 8080 }, { proto: "udp", hostIp: "127.0.0.1", hostPort: 53, containerPort: 53 }], "53"), ["53/udp -> 127.0.0.1:53"]);
});

test("-p with an IPv6 host address: parsed, kept out of the kernel's (IPv4) maps, served by the userland proxy", () => {
  assert.deepEqual(parsePublish("[::1]:8080:80"), [{ proto: "tcp", hostIp: "::1", hostPort: 8080, containerPort: 80 }]);
  assert.deepEqual(parsePublish("[0:0::1]::53/udp"), [{ proto: "udp", hostIp: "::1", hostPort: 0, containerPort: 53 }]);
  assert.deepEqual(parsePublish("[::]:9000-9001:90-91").map((p) => [p.hostIp, p.hostPort, p.containerPort]), [["::", 9000, 90], ["::", 9001, 91]]);
  assert.throws(() => parsePublish("[127.0.0.1]:80:80"), /invalid host address "\[127\.0\.0\.1\]".*IPv6/);
  assert.throws(() => parsePublish("[::1]:80"), /expected \[ipv6\]:\[hostPort\]:containerPort/);
  assert.throws(() => parsePublish("::1:80:80"), /invalid -p ::1:80:80/);
  // Where the proxy listens: IPv6 addresses as they are; a port on every address also on "::" (::1 included).
  const b = { proto: "tcp" as const, hostIp: "", hostPort: 80, containerPort: 80 };
  assert.equal(proxyAddress(b), "::");
  assert.equal(proxyAddress({ ...b, hostIp: "::1" }), "::1");
  assert.equal(proxyAddress({ ...b, hostIp: "127.0.0.1" }), undefined);
  // "::" overlaps every IPv6 address, not IPv4 ones; "" overlaps everything.
  assert.ok(conflicts({ ...b, hostIp: "::" }, { ...b, hostIp: "::1" }));
  assert.ok(conflicts({ ...b, hostIp: "::1" }, b));
  assert.ok(!conflicts({ ...b, hostIp: "::" }, { ...b, hostIp: "127.0.0.1" }));
  assert.ok(!conflicts({ ...b, hostIp: "::1" }, { ...b, hostIp: "::2" }));
  // docker's PortBindings carry the bare address; `port` prints it in brackets, as docker does.
  assert.deepEqual(portSpecsFromDocker({ "80/tcp": [{ HostIp: "::1", HostPort: "8080" }, { HostIp: "::1", HostPort: "" }] }), [
    { proto: "tcp", hostIp: "::1", hostPort: 8080, containerPort: 80 },
    { proto: "tcp", hostIp: "::1", hostPort: 0, containerPort: 80 },
  ]);
  assert.deepEqual(dockerPorts([{ ...b, hostIp: "::1", hostPort: 8080 }]), { "80/tcp": [{ HostIp: "::1", HostPort: "8080" }] });
  assert.deepEqual(portLines([{ ...b, hostIp: "::1", hostPort: 8080 }]), ["80/tcp -> [::1]:8080"]);
  const st = state();
  st.endpoints.e1.ports.push({ proto: "tcp", hostIp: "::1", hostPort: 8081, containerPort: 81 });
  assert.doesNotMatch(renderRuleset(st), /::1|8081/);
  assert.equal(portElementsText("berth", { ip: "172.18.0.2", ports: [{ proto: "tcp", hostIp: "::1", hostPort: 8081, containerPort: 81 }] }, "add"), "");
  assert.match(portElementsText("berth", st.endpoints.e1, "add"), /^add element ip berth pub_tcp \{ 0\.0\.0\.0\/0 \. 8080 : 172\.18\.0\.2 \. 80 \}\n/);
});

function state(): NetworkState {
  return {
    version: 1,
    networks: {
      a: { id: "a", name: "bridge", driver: "bridge", bridge: "berth0", subnet: "172.18.0.0/16", gateway: "172.18.0.1", internal: false, isDefault: true, created: "", labels: {}, options: {} },
      b: { id: "b", name: "priv", driver: "bridge", bridge: "berthbbbbbbbbbb", subnet: "10.200.0.0/24", gateway: "10.200.0.1", internal: true, isDefault: false, created: "", labels: {}, options: {} },
    },
    endpoints: {
      e1: {
        id: "e1", networkId: "a", containerId: "c1", containerName: "web", ip: "172.18.0.2", mac: "", aliases: [], hostVeth: "veth1", ifname: "eth0", owner: "1", created: "",
        ports: [{ proto: "tcp", hostIp: "", hostPort: 8080, containerPort: 80 }, { proto: "udp", hostIp: "127.0.0.1", hostPort: 5353, containerPort: 53 }],
      },
    },
  };
}

test("the nftables ruleset is rendered whole from the state", () => {
  const text = renderRuleset(state());
  assert.match(text, /^table ip berth \{\}\ndelete table ip berth\ntable ip berth \{/);
  assert.match(text, /map pub_tcp \{ type ipv4_addr \. inet_service : ipv4_addr \. inet_service; flags interval; elements = \{ 0\.0\.0\.0\/0 \. 8080 : 172\.18\.0\.2 \. 80 \}; \}/);
  assert.match(text, /map pub_udp .* elements = \{ 127\.0\.0\.1 \. 5353 : 172\.18\.0\.2 \. 53 \}/);
  // Only non-internal networks are masqueraded; internal ones drop everything leaving their bridge.
  assert.match(text, /set masq \{ type ipv4_addr; flags interval; elements = \{ 172\.18\.0\.0\/16 \}; \}/);
  assert.match(text, /chain in-berthbbbbbbbbbb \{\n {4}oifname "berthbbbbbbbbbb" accept\n {4}drop\n {2}\}/);
  assert.match(text, /chain in-berth0 \{\n {4}oifname "berth0" accept\n {4}ct status dnat accept\n {4}oifname @bridges drop\n {4}accept\n {2}\}/);
  assert.match(text, /fib daddr type local dnat to ip daddr \. tcp dport map @pub_tcp/);
  assert.match(text, /oifname @bridges ip saddr 127\.0\.0\.0\/8 masquerade/);
  // Nothing left: only the delete.
  assert.equal(renderRuleset({ version: 1, networks: {}, endpoints: {} }), "table ip berth {}\ndelete table ip berth\n");
});

test("/etc/hosts, resolv.conf and --add-host", () => {
  const hosts = hostsFile({ hostname: "abc", ip: "172.18.0.2", aliases: ["web"], extra: [parseAddHost("db:10.0.0.5")] });
  assert.match(hosts, /^127\.0\.0\.1\tlocalhost\n/);
  assert.match(hosts, /\n10\.0\.0\.5\tdb\n172\.18\.0\.2\tabc web\n$/);
  assert.throws(() => parseAddHost("nohost"), /expected host:ip/);
  const host = parseResolvConf("# comment\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nsearch a.example b.example\noptions ndots:2\n");
  assert.deepEqual(host, { nameservers: ["127.0.0.53", "10.1.1.1"], search: ["a.example", "b.example"], options: ["ndots:2"] });
  assert.equal(resolvConf({ host }), "nameserver 10.1.1.1\nsearch a.example b.example\noptions ndots:2\n");
  assert.equal(resolvConf({ host, embedded: "172.19.0.1", dnsSearch: ["x.test"] }), "nameserver 172.19.0.1\nsearch x.test\noptions ndots:2\n");
  assert.equal(resolvConf({ host, dns: ["10.2.2.2"], dnsOptions: ["timeout:1"] }), "nameserver 10.2.2.2\nsearch a.example b.example\noptions timeout:1\n");
});

test("netlink requests have the kernel's layout and mark what the helper patches", () => {
  // RTM_NEWROUTE as iproute2 sends it: header, 12-byte rtmsg, RTA_GATEWAY, RTA_OIF.
  const route = newDefaultRoute("172.18.0.1");
  assert.equal(route.message.toString("hex"),
    "2c000000" + "1800" + "0506" + "00000000" + "00000000" + "020000" + "00fe0300" + "01" + "00000000" + "08000500ac120001" + "0800040000000000");
  assert.equal(route.ifindexOffset, 40);
  const addr = newAddress({ ip: "10.0.0.2", prefix: 24, broadcast: "10.0.0.255" });
  assert.equal(addr.message.readUInt32LE(0), addr.message.length);
  assert.equal(addr.message.readUInt16LE(4), 20);
  assert.equal(addr.ifindexOffset, 20);
  assert.equal(addr.message[16], 2);
  assert.equal(addr.message[17], 24);
  const up = linkUp();
  assert.equal(up.message.length, 32);
  assert.equal(up.message.readUInt32LE(24), 1);
  const veth = newVethIntoNetns({ hostName: "vethabc", peerName: "eth0", mtu: 1400, mac: "02:42:ac:12:00:02" });
  assert.equal(veth.message.readUInt32LE(0), veth.message.length);
  assert.equal(veth.message.length % 4, 0);
  // The pid placeholder is the payload of IFLA_NET_NS_PID (type 19) inside the peer.
  assert.equal(veth.message.readUInt16LE(veth.pidOffset - 2), 19);
  // The bridge index placeholder is the payload of IFLA_MASTER (type 10).
  assert.equal(veth.message.readUInt16LE(veth.ifindexOffset - 2), 10);
  assert.ok(veth.message.includes(Buffer.from("eth0\0")));
  // With a known pid nothing needs patching.
  assert.equal(newVethIntoNetns({ hostName: "v", peerName: "eth1", mtu: 1500, mac: "02:00:00:00:00:01", pid: 42 }).pidOffset, 0);
  const br = newBridge("berth0", 1500);
  assert.ok(br.message.includes(Buffer.from("bridge\0")));
  assert.ok(delLink("berth0").message.includes(Buffer.from("berth0\0")));
  assert.throws(() => newVethIntoNetns({ hostName: "v", peerName: "e", mtu: 1, mac: "zz" }), /not a MAC address/);
  // The op carries the message to the helper as an opaque field.
  const op = netlinkOp(route, { netns: "@CHILD@", ifname: "eth0", what: "route" });
  assert.equal(op.op, "netlink");
  assert.ok(encodePlan({ flags: 0, ops: [op] }).includes(route.message));
});

test("etc files without a network: --network none has no line for its own name; host mode keeps loopback resolvers", () => {
  const none = hostsFile({ hostname: "myh", extra: [{ host: "h1", ip: "10.0.0.1" }], noSelf: true });
  assert.match(none, /^10\.0\.0\.1\th1$/m);
  assert.doesNotMatch(none, /myh/);
  assert.match(hostsFile({ hostname: "myh" }), /^127\.0\.1\.1\tmyh$/m);
  const host = parseResolvConf("nameserver 127.0.0.53\nnameserver 10.1.1.1\n");
  assert.equal(resolvConf({ host, keepLoopback: true }), "nameserver 127.0.0.53\nnameserver 10.1.1.1\n");
  assert.equal(resolvConf({ host }), "nameserver 10.1.1.1\n");
});
