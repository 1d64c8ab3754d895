// What the network state file holds. One JSON file under the data root, changed only under its lock and
// written atomically, so a crash never leaves half of it and a restart knows every address in use.

export interface PortBinding {
  proto: "tcp" | "udp";
  /** "" = every host address (docker's 0.0.0.0). */
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

export interface NetworkRecord {
  id: string;
  name: string;
  driver: "bridge";
  /** The Linux bridge. */
  bridge: string;
  subnet: string;
  gateway: string;
  internal: boolean;
  /** The default network ("bridge"): no embedded DNS, containers get the host's resolvers. */
  isDefault: boolean;
  created: string;
  labels: Record<string, string>;
  options: Record<string, string>;
  /** Last address handed out (round robin). */
  lastIp?: string;
}

export interface EndpointRecord {
  /** Endpoint id (64 hex). */
  id: string;
  networkId: string;
  containerId: string;
  containerName: string;
  ip: string;
  mac: string;
  aliases: string[];
  ports: PortBinding[];
  /** The host end of the veth pair. */
  hostVeth: string;
  /** The interface inside the container. */
  ifname: string;
  /** --dns: the embedded DNS server relays this container's other questions there (default: the host's). */
  dns?: string[];
  /** The process whose life bounds this endpoint ("PID STARTTIME"): the container's or its owner's. */
  owner: string;
  created: string;
}

export interface NetworkState {
  version: 1;
  networks: Record<string, NetworkRecord>;
  endpoints: Record<string, EndpointRecord>;
}
