// Networking: bridges, veth pairs, IPAM, published ports, embedded DNS. See manager.ts for the library.
export * from "./manager.js";
export { parsePublish, parseExpose, publishAll, portLines, dockerPorts, portSpecsFromDocker, type PortSpec } from "./ports.js";
export { parseAddHost, type HostsEntry } from "./etc-files.js";
export type { NetworkRecord, EndpointRecord, PortBinding } from "./types.js";
