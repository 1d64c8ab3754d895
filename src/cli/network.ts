// `berth network ...`, `berth port`, and the network flags of `berth run`. Thin: flags -> the network
// library (src/network) -> output in docker's formats.

import { type Command, Option } from "commander";
import { BerthError } from "../errors.js";
import { ImageStore } from "../images/store.js";
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
export function parseRunNetwork(flags: RunNetworkFlags, exposedFromImage: string[] = []): { mode: string; publish: PortSpec[]; exposed: string[] } {
  const mode = flags.network === "default" ? "bridge" : flags.network;
  if (!mode) throw new BerthError("invalid --network \"\": give none, host, bridge, a network name or container:NAME");
  const exposed = [...new Set([...exposedFromImage, ...flags.expose.flatMap(parseExpose)])];
  const publish = [...flags.publish.flatMap(parsePublish), ...(flags.publishAll ? publishAll(exposed) : [])];
  if (flags.macAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(flags.macAddress)) throw new BerthError(`invalid --mac-address ${flags.macAddress}`);
  if (mode === "host" && (flags.publish.length || flags.ip || flags.macAddress)) {
    if (flags.ip || flags.macAddress) throw new BerthError("conflicting options: --ip and --mac-address cannot be used with --network host");
  }
  for (const h of flags.addHost) parseAddHost(h);
  return { mode, publish: mode === "host" ? [] : publish, exposed };
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
    .action(async (name: string, f: { driver: string; subnet?: string; gateway?: string; internal?: boolean; label: string[]; opt: string[]; dataRoot: string }) => {
      const r = await createNetwork(ctx(f), { name, driver: f.driver, subnet: f.subnet, gateway: f.gateway, internal: f.internal, labels: parseLabels(f.label), options: parseLabels(f.opt) });
      process.stdout.write(`${r.Id}\n`);
      onExit(0);
    });
  net.command("ls")
    .alias("list")
    .description("List networks")
    .option("-q, --quiet", "only IDs")
    .option("--no-trunc", "full IDs")
    .addOption(dataRootOption())
    .action(async (f: { quiet?: boolean; trunc: boolean; dataRoot: string }) => {
      const list = await listNetworks(ctx(f));
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
    .action(async (refs: string[], f: { dataRoot: string }) => {
      const out = [];
      for (const r of refs) out.push(await inspectNetwork(ctx(f), r));
      process.stdout.write(JSON.stringify(out, null, 4) + "\n");
      onExit(0);
    });
  net.command("rm")
    .alias("remove")
    .description("Remove networks")
    .argument("<network...>")
    .addOption(dataRootOption())
    .action(async (refs: string[], f: { dataRoot: string }) => {
      let code = 0;
      for (const r of refs) {
        try {
          await removeNetwork(ctx(f), r);
          process.stdout.write(`${r}\n`);
        } catch (err) {
          if (!(err instanceof BerthError)) throw err;
          process.stderr.write(`berth: ${err.message}\n`);
          code = 1;
        }
      }
      onExit(code);
    });
  net.command("prune")
    .description("Remove unused networks")
    .option("-f, --force", "do not prompt")
    .addOption(dataRootOption())
    .action(async (f: { dataRoot: string }) => {
      const removed = await pruneNetworks(ctx(f));
      if (removed.length) process.stdout.write(`Deleted Networks:\n${removed.map((r) => `${r}\n`).join("")}`);
      onExit(0);
    });
  net.command("connect")
    .description("Connect a running container to a network")
    .argument("<network>")
    .argument("<container>")
    .option("--ip <address>", "IPv4 address")
    .option("--alias <name>", "network-scoped alias", collect, [])
    .addOption(new Option("--state-root <dir>", "where running containers keep state").default("/run/berth"))
    .addOption(dataRootOption())
    .action(async (network: string, container: string, f: { ip?: string; alias: string[]; stateRoot: string; dataRoot: string }) => {
      const target = findContainerPid(ctx(f), container, f.stateRoot);
      await connectContainer(ctx(f), network, { containerId: target.id, pid: target.pid, ip: f.ip, aliases: f.alias, name: container === target.id ? undefined : container });
      onExit(0);
    });
  net.command("disconnect")
    .description("Disconnect a container from a network")
    .argument("<network>")
    .argument("<container>")
    .option("-f, --force", "force")
    .addOption(dataRootOption())
    .action(async (network: string, container: string, f: { dataRoot: string }) => {
      await disconnectContainer(ctx(f), network, container);
      onExit(0);
    });
  program.command("port")
    .description("List a container's published ports")
    .argument("<container>")
    .argument("[port]")
    .addOption(dataRootOption())
    .action((container: string, port: string | undefined, f: { dataRoot: string }) => {
      const lines = portLines(containerPorts(ctx(f), container), port);
      if (port && lines.length === 0) throw new BerthError(`no public port '${port}' published for ${container}`, { exitCode: 1 });
      process.stdout.write(lines.map((l) => `${l}\n`).join(""));
      onExit(0);
    });
}
