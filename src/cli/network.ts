// `berth network ...`, `berth port`, and the network flags of `berth run`. Thin: flags -> the network
// library (src/network) -> output in docker's formats.

import { type Command, Option } from "commander";
import { isIP, isIPv4 } from "node:net";
import { BerthError } from "../errors.js";
import { ImageStore } from "../images/store.js";
import { ApiError, Client } from "./client.js";
import {
  connectContainer, type ContainerNetwork, containerPorts, createNetwork, disconnectContainer, findContainerPid, inspectNetwork,
  listNetworks, networkContext, parseAddHost, parseExpose, parsePublish, portLines, prepareContainerNetwork, pruneNetworks,
  publishAll, removeNetwork, type PortSpec,
} from "../network/index.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];

export interface RunNetworkFlags {
  network: string;
  publish: string[];
  publishAll?: boolean;
  expose: string[];
  ip?: string;
  networkAlias: string[];
  macAddress?: string;
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
}

/** The network flags of `run` (besides --network, which berth.ts declares). */
export function addRunNetworkOptions(cmd: Command): Command {
  return cmd
    .option("-p, --publish <[ip:][hostPort:]containerPort[/proto]>", "publish a container's port to the host", collect, [])
    .option("-P, --publish-all", "publish every exposed port to a free host port")
    .option("--expose <port[/proto]>", "expose a port (for -P)", collect, [])
    .option("--ip <address>", "IPv4 address on a user-defined network")
    .option("--network-alias <name>", "extra name on a user-defined network", collect, [])
    .option("--mac-address <mac>", "container MAC address")
    .option("--dns <ip>", "DNS server", collect, [])
    .option("--dns-search <domain>", "DNS search domain", collect, [])
    .option("--dns-option <opt>", "DNS resolver option", collect, [])
    .option("--add-host <host:ip>", "add a line to /etc/hosts", collect, []);
}

/** Checks the network flags (no effects): what `run` needs to know before it touches the host. */
export function parseRunNetwork(flags: RunNetworkFlags, exposedFromImage: string[] = [], warn: (s: string) => void = () => {}): { mode: string; publish: PortSpec[]; exposed: string[] } {
  const mode = flags.network === "default" ? "bridge" : flags.network;
  if (!mode) throw new BerthError("invalid --network \"\": give none, host, bridge, a network name or container:NAME");
  const exposed = [...new Set([...exposedFromImage, ...flags.expose.flatMap(parseExpose)])];
  const publish = [...flags.publish.flatMap(parsePublish), ...(flags.publishAll ? publishAll(exposed) : [])];
  if (flags.macAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(flags.macAddress)) throw new BerthError(`invalid --mac-address ${flags.macAddress}`);
  if (mode === "host" && (flags.publish.length || flags.ip || flags.macAddress)) {
    if (flags.ip || flags.macAddress) throw new BerthError("conflicting options: --ip and --mac-address cannot be used with --network host");
  }
  for (const h of flags.addHost) parseAddHost(h);
  // As docker: -p with --network host runs with a warning, with none silently; neither publishes anything.
  if (mode === "host" && flags.publish.length) warn("WARNING: Published ports are discarded when using host network mode\n");
  return { mode, publish: mode === "host" || mode === "none" ? [] : publish, exposed };
}

/** docker's EndpointSettings as its CLI sends them (every field, empty unless a flag set it). */
function endpointSettings(o: { ip?: string; aliases?: string[]; mac?: string }): Record<string, unknown> {
  return {
    IPAMConfig: o.ip ? { IPv4Address: o.ip } : null, Links: null, Aliases: o.aliases?.length ? o.aliases : null, MacAddress: o.mac ?? "",
    DriverOpts: null, GwPriority: 0, NetworkID: "", EndpointID: "", Gateway: "", IPAddress: "", IPPrefixLen: 0, IPv6Gateway: "",
    GlobalIPv6Address: "", GlobalIPv6PrefixLen: 0, DNSNames: null,
  };
}

const isUserDefined = (mode: string) => !["default", "bridge", "host", "none"].includes(mode) && !mode.startsWith("container:");

/** -p's host port text: "8080", a range "8000-8010", or "" (any free port). */
function hostPortText(spec: string): string {
  const body = spec.replace(/\/[^/]*$/, "");
  const v6 = /^\[[^\]]*\]:(.*)$/.exec(body);
  const parts = (v6 ? v6[1] : body).split(":");
  return parts.length >= 2 ? parts[parts.length - 2] : "";
}

/**
 * The network part of POST /containers/create, filled as docker's CLI (28) fills it: Config.ExposedPorts
 * (-p and --expose ports), HostConfig.PortBindings / PublishAllPorts / Dns / DnsSearch / DnsOptions /
 * ExtraHosts / NetworkMode, and NetworkingConfig.EndpointsConfig (--ip, --network-alias, --mac-address;
 * docker's "default" entry without --network). Pure: it checks the flags and touches nothing.
 */
export function networkCreateFields(flags: Partial<RunNetworkFlags> & { network?: string }, warn: (s: string) => void = () => {}): {
  config: { ExposedPorts?: Record<string, object> };
  hostConfig: Record<string, unknown>;
  networkingConfig: { EndpointsConfig: Record<string, unknown> };
} {
  const mode = flags.network || "default";
  const publish = flags.publish ?? [];
  const aliases = flags.networkAlias ?? [];
  for (const d of flags.dns ?? []) if (!isIP(d)) throw new BerthError(`invalid argument "${d}" for "--dns" flag: ${d} is not an ip address`);
  if (flags.macAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(flags.macAddress)) throw new BerthError(`invalid argument "${flags.macAddress}" for "--mac-address" flag: ${flags.macAddress} is not a valid mac address`);
  if (flags.ip && !isIPv4(flags.ip)) throw new BerthError(`invalid argument "${flags.ip}" for "--ip" flag: invalid IPv4 address`);
  for (const h of flags.addHost ?? []) parseAddHost(h);
  if (aliases.length && !isUserDefined(mode)) throw new BerthError("network-scoped aliases are only supported for user-defined networks");
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  const exposed: Record<string, object> = {};
  for (const spec of publish) {
    const parsed = parsePublish(spec);
    const host = hostPortText(spec);
    const rawIp = /^0\.0\.0\.0:/.test(spec) ? "0.0.0.0" : undefined;
    for (const p of parsed) {
      const key = `${p.containerPort}/${p.proto}`;
      // A host range for one container port goes as the range (the daemon takes a free port of it).
      const hostPort = parsed.length === 1 && host.includes("-") ? host : p.hostPort ? String(p.hostPort) : "";
      (bindings[key] ??= []).push({ HostIp: rawIp ?? p.hostIp, HostPort: hostPort });
      exposed[key] = {};
    }
  }
  for (const e of flags.expose ?? []) for (const key of parseExpose(e)) exposed[key] = {};
  let portBindings = bindings;
  if (mode === "host" && Object.keys(bindings).length) {
    warn("WARNING: Published ports are discarded when using host network mode\n");
    portBindings = {};
  }
  const ep = { ip: flags.ip, aliases, mac: flags.macAddress };
  const endpoints: Record<string, unknown> = {};
  // docker's CLI: without --network, a "default" entry always; with one, an entry only when a flag set one.
  if (!flags.network || flags.network === "default" || ep.ip || aliases.length || ep.mac) endpoints[mode] = endpointSettings(ep);
  return {
    config: Object.keys(exposed).length ? { ExposedPorts: exposed } : {},
    hostConfig: {
      NetworkMode: mode,
      PortBindings: portBindings,
      PublishAllPorts: Boolean(flags.publishAll),
      Dns: flags.dns ?? [],
      DnsOptions: flags.dnsOption ?? [],
      DnsSearch: flags.dnsSearch ?? [],
      ExtraHosts: flags.addHost?.length ? flags.addHost : null,
    },
    networkingConfig: { EndpointsConfig: endpoints },
  };
}

/** Leases the container's address and ports and writes its /etc files: the network part of `run`. */
export async function prepareRunNetwork(
  flags: RunNetworkFlags,
  o: { containerId: string; name?: string; hostname: string; dataRoot: string; image?: string },
): Promise<ContainerNetwork> {
  // -P publishes the image's ExposedPorts too.
  let exposedFromImage: string[] = [];
  if (o.image && flags.publishAll) {
    const config = await new ImageStore(o.dataRoot).imageConfig(o.image);
    exposedFromImage = Object.keys(config.config?.ExposedPorts ?? {}).flatMap(parseExpose);
  }
  const { mode, publish } = parseRunNetwork(flags, exposedFromImage);
  return prepareContainerNetwork(networkContext({ dataRoot: o.dataRoot }), {
    containerId: o.containerId,
    name: o.name,
    hostname: o.hostname,
    mode,
    ip: flags.ip,
    aliases: flags.networkAlias,
    mac: flags.macAddress,
    publish,
    dns: flags.dns,
    dnsSearch: flags.dnsSearch,
    dnsOptions: flags.dnsOption,
    addHosts: flags.addHost.map(parseAddHost),
  });
}

function parseLabels(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const i = l.indexOf("=");
    out[i < 0 ? l : l.slice(0, i)] = i < 0 ? "" : l.slice(i + 1);
  }
  return out;
}

const dataRootOption = () => new Option("--data-root <dir>", "where Berth keeps its state").env("BERTH_DATA_ROOT").default("/var/lib/berth");

/** The in-process path (the network library on this data root) is only for BERTH_NO_DAEMON=1. */
const inProcess = () => process.env.BERTH_NO_DAEMON === "1";

/** The daemon's client: -H / BERTH_HOST, else the daemon of --data-root (started when none answers). */
function daemon(cmd: Command, dataRoot: string): Client {
  let root = cmd;
  while (root.parent) root = root.parent;
  return new Client((root.opts() as { host?: string }).host, dataRoot);
}

/** docker's "Error response from daemon: ..." lines, one per failed name; exit 1 if any failed. */
async function eachRef(refs: string[], fn: (ref: string) => Promise<void>): Promise<number> {
  let code = 0;
  for (const r of refs) {
    try {
      await fn(r);
      process.stdout.write(`${r}\n`);
    } catch (err) {
      if (!(err instanceof BerthError)) throw err;
      process.stderr.write(err instanceof ApiError ? `${err.message}\n` : `berth: ${err.message}\n`);
      code = 1;
    }
  }
  return code;
}

const enc = encodeURIComponent;

export function registerNetworkCommands(program: Command, onExit: (code: number) => void): void {
  const net = program.command("network").description("Manage networks");
  const ctx = (flags: { dataRoot: string }) => networkContext({ dataRoot: flags.dataRoot });
  net.command("create")
    .description("Create a network")
    .argument("<name>")
    .option("-d, --driver <driver>", "driver (bridge)", "bridge")
    .option("--subnet <cidr>", "subnet, e.g. 172.25.0.0/16")
    .option("--gateway <ip>", "gateway address in the subnet")
    .option("--internal", "no access outside the network")
    .option("--label <key=value>", "label", collect, [])
    .option("-o, --opt <key=value>", "driver option", collect, [])
    .addOption(dataRootOption())
    .action(async (name: string, f: { driver: string; subnet?: string; gateway?: string; internal?: boolean; label: string[]; opt: string[]; dataRoot: string }, cmd: Command) => {
      if (f.gateway && !f.subnet) throw new BerthError("every ip-range or gateway must have a corresponding subnet");
      const r = inProcess()
        ? await createNetwork(ctx(f), { name, driver: f.driver, subnet: f.subnet, gateway: f.gateway, internal: f.internal, labels: parseLabels(f.label), options: parseLabels(f.opt) })
        : await daemon(cmd, f.dataRoot).json<{ Id: string }>("POST", "/networks/create", {
          // docker's CLI body: IPAM.Config only when --subnet is given.
          Name: name, Driver: f.driver, Internal: Boolean(f.internal), Attachable: false, Ingress: false, EnableIPv6: null,
          IPAM: { Driver: "default", Options: {}, Config: f.subnet ? [{ Subnet: f.subnet, ...(f.gateway ? { Gateway: f.gateway } : {}) }] : [] },
          Options: parseLabels(f.opt), Labels: parseLabels(f.label),
        });
      process.stdout.write(`${r.Id}\n`);
      onExit(0);
    });
  net.command("ls")
    .alias("list")
    .description("List networks")
    .option("-q, --quiet", "only IDs")
    .option("--no-trunc", "full IDs")
    .addOption(dataRootOption())
    .action(async (f: { quiet?: boolean; trunc: boolean; dataRoot: string }, cmd: Command) => {
      const list = inProcess() ? await listNetworks(ctx(f)) : await daemon(cmd, f.dataRoot).json<{ Id: string; Name: string; Driver: string; Scope: string }[]>("GET", "/networks");
      list.sort((a, b) => a.Name.localeCompare(b.Name));
      const id = (s: string) => (f.trunc ? s.slice(0, 12) : s);
      if (f.quiet) {
        process.stdout.write(list.map((n) => `${id(n.Id)}\n`).join(""));
      } else {
        const rows = [["NETWORK ID", "NAME", "DRIVER", "SCOPE"], ...list.map((n) => [id(n.Id), n.Name, n.Driver, n.Scope])];
        const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
        process.stdout.write(rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i] + 3) : c)).join("")).join("\n") + "\n");
      }
      onExit(0);
    });
  net.command("inspect")
    .description("Show networks in JSON")
    .argument("<network...>")
    .addOption(dataRootOption())
    .action(async (refs: string[], f: { dataRoot: string }, cmd: Command) => {
      const out = [];
      for (const r of refs) out.push(inProcess() ? await inspectNetwork(ctx(f), r) : await daemon(cmd, f.dataRoot).json("GET", `/networks/${enc(r)}`));
      process.stdout.write(JSON.stringify(out, null, 4) + "\n");
      onExit(0);
    });
  net.command("rm")
    .alias("remove")
    .description("Remove networks")
    .argument("<network...>")
    .addOption(dataRootOption())
    .action(async (refs: string[], f: { dataRoot: string }, cmd: Command) => {
      onExit(await eachRef(refs, async (r) => {
        if (inProcess()) await removeNetwork(ctx(f), r);
        else await daemon(cmd, f.dataRoot).request("DELETE", `/networks/${enc(r)}`);
      }));
    });
  net.command("prune")
    .description("Remove unused networks")
    .option("-f, --force", "do not prompt")
    .addOption(dataRootOption())
    .action(async (f: { dataRoot: string }, cmd: Command) => {
      const removed = inProcess() ? await pruneNetworks(ctx(f)) : (await daemon(cmd, f.dataRoot).json<{ NetworksDeleted: string[] | null }>("POST", "/networks/prune")).NetworksDeleted ?? [];
      if (removed.length) process.stdout.write(`Deleted Networks:\n${removed.map((r) => `${r}\n`).join("")}`);
      onExit(0);
    });
  net.command("connect")
    .description("Connect a running container to a network")
    .argument("<network>")
    .argument("<container>")
    .option("--ip <address>", "IPv4 address")
    .option("--alias <name>", "network-scoped alias", collect, [])
    .addOption(new Option("--state-root <dir>", "where running containers keep state (BERTH_NO_DAEMON=1)").default("/run/berth"))
    .addOption(dataRootOption())
    .action(async (network: string, container: string, f: { ip?: string; alias: string[]; stateRoot: string; dataRoot: string }, cmd: Command) => {
      if (inProcess()) {
        const target = findContainerPid(ctx(f), container, f.stateRoot);
        await connectContainer(ctx(f), network, { containerId: target.id, pid: target.pid, ip: f.ip, aliases: f.alias, name: container === target.id ? undefined : container });
      } else {
        await daemon(cmd, f.dataRoot).request("POST", `/networks/${enc(network)}/connect`, {
          Container: container, EndpointConfig: { IPAMConfig: f.ip ? { IPv4Address: f.ip } : null, Aliases: f.alias.length ? f.alias : null },
        });
      }
      onExit(0);
    });
  net.command("disconnect")
    .description("Disconnect a container from a network")
    .argument("<network>")
    .argument("<container>")
    .option("-f, --force", "force")
    .addOption(new Option("--state-root <dir>", "where running containers keep state (BERTH_NO_DAEMON=1)").default("/run/berth"))
    .addOption(dataRootOption())
    .action(async (network: string, container: string, f: { force?: boolean; stateRoot: string; dataRoot: string }, cmd: Command) => {
      if (inProcess()) {
        // Its init, so that the default route can move to the network that takes it over.
        let pid: number | undefined;
        try { pid = findContainerPid(ctx(f), container, f.stateRoot).pid; } catch { /* not running: no route to move */ }
        await disconnectContainer(ctx(f), network, container, { pid });
      } else await daemon(cmd, f.dataRoot).request("POST", `/networks/${enc(network)}/disconnect`, { Container: container, Force: Boolean(f.force) });
      onExit(0);
    });
  program.command("port")
    .description("List a container's published ports")
    .argument("<container>")
    .argument("[port]")
    .addOption(dataRootOption())
    .action(async (container: string, port: string | undefined, f: { dataRoot: string }, cmd: Command) => {
      let lines: string[];
      if (inProcess()) {
        lines = portLines(containerPorts(ctx(f), container), port);
      } else {
        const info = await daemon(cmd, f.dataRoot).json<{ NetworkSettings: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> | null } }>("GET", `/containers/${enc(container)}/json`);
        lines = daemonPortLines(info.NetworkSettings.Ports ?? {}, port);
      }
      if (port && lines.length === 0) throw new BerthError(`no public port '${port}' published for ${container}`, { exitCode: 1 });
      process.stdout.write(lines.map((l) => `${l}\n`).join(""));
      onExit(0);
    });
}

/** `docker port` from inspect's NetworkSettings.Ports: "80/tcp -> 127.0.0.1:8080"; with a port, only "127.0.0.1:8080". */
export function daemonPortLines(ports: Record<string, { HostIp: string; HostPort: string }[] | null>, filter?: string): string[] {
  const host = (b: { HostIp: string; HostPort: string }) => `${b.HostIp.includes(":") ? `[${b.HostIp}]` : b.HostIp || "0.0.0.0"}:${b.HostPort}`;
  if (filter) {
    const key = filter.includes("/") ? filter : `${filter}/tcp`;
    return (ports[key] ?? []).map(host);
  }
  const keys = Object.keys(ports).sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));
  return keys.flatMap((k) => (ports[k] ?? []).map((b) => `${k} -> ${host(b)}`));
}
