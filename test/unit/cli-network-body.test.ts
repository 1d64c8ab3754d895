// berth run/create network flags -> the create request body. The expected bodies are what docker's CLI
// (28.2) sent for the same flags, captured from a Unix-socket server that printed its requests.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createBody, type EngineRunFlags } from "../../src/cli/engine.js";
import { daemonPortLines, networkCreateFields } from "../../src/cli/network.js";

const base: EngineRunFlags = { env: [], envFile: [], network: "default", capAdd: [], capDrop: [], volume: [], mount: [], tmpfs: [], label: [], securityOpt: [], logOpt: [] };
const none = { publish: [], expose: [], networkAlias: [], dns: [], dnsSearch: [], dnsOption: [], addHost: [] };

/** docker's EndpointSettings with only these fields set. */
const endpoint = (o: { IPAMConfig?: object | null; Aliases?: string[] | null; MacAddress?: string } = {}) => ({
  IPAMConfig: null, Links: null, Aliases: null, MacAddress: "", DriverOpts: null, GwPriority: 0, NetworkID: "", EndpointID: "", Gateway: "",
  IPAddress: "", IPPrefixLen: 0, IPv6Gateway: "", GlobalIPv6Address: "", GlobalIPv6PrefixLen: 0, DNSNames: null, ...o,
});

test("-p, -P and --expose: ExposedPorts, PortBindings, PublishAllPorts and the default endpoint, as docker create -p 127.0.0.1:8080:80 -p 9000 -p 53:53/udp --expose 7000 --expose 7100-7101/tcp -P", () => {
  const r = networkCreateFields({ ...none, network: "default", publish: ["127.0.0.1:8080:80", "9000", "53:53/udp"], expose: ["7000", "7100-7101/tcp"], publishAll: true });
  assert.deepEqual(r.config.ExposedPorts, { "53/udp": {}, "7000/tcp": {}, "7100/tcp": {}, "7101/tcp": {}, "80/tcp": {}, "9000/tcp": {} });
  assert.deepEqual(r.hostConfig, {
    NetworkMode: "default",
    PortBindings: { "53/udp": [{ HostIp: "", HostPort: "53" }], "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }], "9000/tcp": [{ HostIp: "", HostPort: "" }] },
    PublishAllPorts: true, Dns: [], DnsOptions: [], DnsSearch: [], ExtraHosts: null,
  });
  assert.deepEqual(r.networkingConfig, { EndpointsConfig: { default: endpoint() } });
});

test("a user network with --ip, --network-alias, --dns*, --add-host, as docker create --network mynet ...; --mac-address goes in the endpoint (API 1.44's place)", () => {
  const r = networkCreateFields({
    ...none, network: "mynet", networkAlias: ["a", "b"], ip: "10.1.2.3", dns: ["1.1.1.1"], dnsSearch: ["x.y"], dnsOption: ["ndots:2"], addHost: ["h1:1.2.3.4", "h2:host-gateway"],
  });
  assert.equal(r.config.ExposedPorts, undefined);
  assert.deepEqual(r.hostConfig, {
    NetworkMode: "mynet", PortBindings: {}, PublishAllPorts: false, Dns: ["1.1.1.1"], DnsOptions: ["ndots:2"], DnsSearch: ["x.y"], ExtraHosts: ["h1:1.2.3.4", "h2:host-gateway"],
  });
  assert.deepEqual(r.networkingConfig, { EndpointsConfig: { mynet: endpoint({ IPAMConfig: { IPv4Address: "10.1.2.3" }, Aliases: ["a", "b"] }) } });
  const mac = networkCreateFields({ ...none, network: "mynet", macAddress: "02:42:ac:11:00:09" });
  assert.deepEqual(mac.networkingConfig.EndpointsConfig, { mynet: endpoint({ MacAddress: "02:42:ac:11:00:09" }) });
});

test("--network container:NAME, bridge, none: no endpoint entry without endpoint flags; host drops -p with docker's warning", () => {
  for (const mode of ["container:web", "bridge", "none"]) {
    const r = networkCreateFields({ ...none, network: mode });
    assert.equal(r.hostConfig.NetworkMode, mode);
    assert.deepEqual(r.networkingConfig, { EndpointsConfig: {} });
  }
  let warned = "";
  const host = networkCreateFields({ ...none, network: "host", publish: ["8080:80"], dns: ["8.8.8.8"] }, (s) => { warned += s; });
  assert.deepEqual(host.hostConfig.PortBindings, {});
  assert.deepEqual(host.hostConfig.Dns, ["8.8.8.8"]);
  assert.match(warned, /Published ports are discarded when using host network mode/);
});

test("port ranges and addresses: a range per port, a host range for one port stays a range, [::1] and 0.0.0.0 as given", () => {
  const r = networkCreateFields({ ...none, publish: ["8000-8001:80-81", "9000-9010:90", "[::1]:7000:70/udp", "0.0.0.0:6000:60"] });
  assert.deepEqual(r.hostConfig.PortBindings, {
    "80/tcp": [{ HostIp: "", HostPort: "8000" }], "81/tcp": [{ HostIp: "", HostPort: "8001" }], "90/tcp": [{ HostIp: "", HostPort: "9000-9010" }],
    "70/udp": [{ HostIp: "::1", HostPort: "7000" }], "60/tcp": [{ HostIp: "0.0.0.0", HostPort: "6000" }],
  });
});

test("bad network flags are refused before anything is sent, with docker's words", () => {
  assert.throws(() => networkCreateFields({ ...none, network: "bridge", networkAlias: ["x"] }), /network-scoped aliases are only supported for user-defined networks/);
  assert.throws(() => networkCreateFields({ ...none, networkAlias: ["x"] }), /only supported for user-defined networks/);
  assert.throws(() => networkCreateFields({ ...none, dns: ["not-an-ip"] }), /--dns/);
  assert.throws(() => networkCreateFields({ ...none, macAddress: "zz" }), /--mac-address/);
  assert.throws(() => networkCreateFields({ ...none, network: "n", ip: "300.1.1.1" }), /--ip/);
  assert.throws(() => networkCreateFields({ ...none, publish: ["80:99999"] }), /container port/);
  assert.throws(() => networkCreateFields({ ...none, addHost: ["nohost"] }), /--add-host/);
});

test("createBody carries the network fields: top-level ExposedPorts and NetworkingConfig, the rest in HostConfig", () => {
  const b = createBody("img", [], { ...base, ...none, detach: true, name: "web", publish: ["127.0.0.1:8080:80"] }) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
  assert.deepEqual(b.ExposedPorts, { "80/tcp": {} });
  assert.deepEqual(b.HostConfig.PortBindings, { "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }] });
  assert.equal(b.HostConfig.NetworkMode, "default");
  assert.deepEqual(b.NetworkingConfig, { EndpointsConfig: { default: endpoint() } });
  // Without any network flag the body is what it was: NetworkMode "default" and no ExposedPorts.
  const plain = createBody("img", [], base) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
  assert.equal(plain.ExposedPorts, undefined);
  assert.equal(plain.HostConfig.NetworkMode, "default");
});

test("berth port from inspect's Ports: docker's lines, and only the address for one port", () => {
  const ports = { "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }], "53/udp": [{ HostIp: "", HostPort: "5353" }, { HostIp: "::", HostPort: "5353" }], "9000/tcp": null };
  assert.deepEqual(daemonPortLines(ports), ["53/udp -> 0.0.0.0:5353", "53/udp -> [::]:5353", "80/tcp -> 127.0.0.1:8080"]);
  assert.deepEqual(daemonPortLines(ports, "80"), ["127.0.0.1:8080"]);
  assert.deepEqual(daemonPortLines(ports, "9000"), []);
});
