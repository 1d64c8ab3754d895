// /etc/hosts, /etc/resolv.conf and /etc/hostname for a container, pure: docker's contents.

export interface HostsEntry {
  host: string;
  ip: string;
}

/** `noSelf`: no line for the container's own name (--network none: it has no address to give it). */
export function hostsFile(o: { hostname: string; ip?: string; aliases?: string[]; extra?: HostsEntry[]; noSelf?: boolean }): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
  ];
  for (const e of o.extra ?? []) lines.push(`${e.ip}\t${e.host}`);
  if (o.ip) lines.push(`${o.ip}\t${[o.hostname, ...(o.aliases ?? []).filter((a) => a !== o.hostname)].join(" ")}`);
  else if (!o.noSelf) lines.push(`127.0.1.1\t${o.hostname}`);
  return lines.join("\n") + "\n";
}

export interface Resolv {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): Resolv {
  const r: Resolv = { nameservers: [], search: [], options: [] };
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === "nameserver" && rest[0]) r.nameservers.push(rest[0]);
    else if (key === "search" || key === "domain") r.search = rest;
    else if (key === "options") r.options.push(...rest);
  }
  return r;
}

const isLoopback = (ip: string) => ip.startsWith("127.") || ip === "::1";

/**
 * The container's resolv.conf. User networks: the network's embedded DNS (the gateway) first. The default
 * bridge: --dns, else the host's servers minus loopback ones (unreachable from a container's netns;
 * `keepLoopback` for host mode, which shares the host's).
 */
export function resolvConf(o: { host: Resolv; embedded?: string; dns?: string[]; dnsSearch?: string[]; dnsOptions?: string[]; keepLoopback?: boolean }): string {
  const servers = o.embedded ? [o.embedded] : (o.dns?.length ? o.dns : o.host.nameservers.filter((s) => o.keepLoopback || !isLoopback(s)));
  const search = o.dnsSearch?.length ? o.dnsSearch.filter((s) => s !== ".") : o.host.search;
  const options = o.dnsOptions?.length ? o.dnsOptions : o.host.options;
  const lines: string[] = [];
  for (const s of servers) lines.push(`nameserver ${s}`);
  if (search.length) lines.push(`search ${search.join(" ")}`);
  if (options.length) lines.push(`options ${options.join(" ")}`);
  return lines.join("\n") + "\n";
}

/** --add-host host:ip (docker also accepts host=ip). */
export function parseAddHost(text: string): HostsEntry {
  const i = text.search(/[:=]/);
  if (i <= 0) throw new Error(`invalid --add-host "${text}": expected host:ip`);
  return { host: text.slice(0, i), ip: text.slice(i + 1) };
}
