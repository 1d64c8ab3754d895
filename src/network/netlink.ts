// rtnetlink requests as bytes, built in TypeScript and sent by the native helper (op "netlink"): the
// helper only opens a socket in the right network namespace, patches in the values it alone knows (the
// container's pid, an interface index looked up by name in that namespace) and checks the kernel's ack.
// Pure: every function here returns bytes and offsets, nothing is sent.

import type { Op } from "../core/plan.js";

export const RTM = { NEWLINK: 16, DELLINK: 17, NEWADDR: 20, DELADDR: 21, NEWROUTE: 24 } as const;
export const NLM_F = { REQUEST: 0x1, ACK: 0x4, REPLACE: 0x100, EXCL: 0x200, CREATE: 0x400 } as const;
export const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, MASTER: 10, LINKINFO: 18, NET_NS_PID: 19 } as const;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const AF_UNSPEC = 0;
const AF_INET = 2;
export const IFF_UP = 1;
const EEXIST = 17;
const ENODEV = 19;

/** A netlink message and where the helper writes values it learns at run time (0: nowhere). */
export interface NetlinkRequest {
  message: Buffer;
  pidOffset: number;
  ifindexOffset: number;
}

/** An attribute: type and payload, or nested attributes. */
interface Attr {
  type: number;
  data?: Buffer;
  nested?: Attr[];
  /** Raw bytes that precede nested attributes (VETH_INFO_PEER starts with an ifinfomsg). */
  header?: Buffer;
  /** Set by `encodeAttrs`: where this attribute's payload starts within the encoded attributes. */
  marker?: string;
}

const align4 = (n: number) => (n + 3) & ~3;

function encodeAttrs(attrs: Attr[], base: number, markers: Map<string, number>): Buffer {
  const parts: Buffer[] = [];
  let offset = base;
  for (const a of attrs) {
    const headerLen = 4;
    let payload: Buffer;
    if (a.nested) {
      const pre = a.header ?? Buffer.alloc(0);
      const inner = encodeAttrs(a.nested, offset + headerLen + pre.length, markers);
      payload = Buffer.concat([pre, inner]);
    } else {
      payload = a.data ?? Buffer.alloc(0);
      if (a.marker) markers.set(a.marker, offset + headerLen);
    }
    const len = headerLen + payload.length;
    const buf = Buffer.alloc(align4(len));
    buf.writeUInt16LE(len, 0);
    buf.writeUInt16LE(a.type, 2);
    payload.copy(buf, headerLen);
    parts.push(buf);
    offset += buf.length;
  }
  return Buffer.concat(parts);
}

function header(type: number, flags: number, bodyLen: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + bodyLen, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags | NLM_F.REQUEST | NLM_F.ACK, 6);
  return h;
}

function message(type: number, flags: number, fixed: Buffer, attrs: Attr[]): { message: Buffer; markers: Map<string, number> } {
  const markers = new Map<string, number>();
  const body = Buffer.concat([fixed, encodeAttrs(attrs, 16 + fixed.length, markers)]);
  return { message: Buffer.concat([header(type, flags, body.length), body]), markers };
}

function ifinfomsg(o: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

const str = (s: string) => Buffer.from(s + "\0");
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };

export function ipv4Bytes(ip: string): Buffer {
  const parts = ip.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  return Buffer.from(parts);
}

export function macBytes(mac: string): Buffer {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** A bridge, up, with an MTU. */
export function newBridge(name: string, mtu: number): NetlinkRequest {
  const { message: m } = message(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, ifinfomsg({ flags: IFF_UP, change: IFF_UP }), [
    { type: IFLA.IFNAME, data: str(name) },
    { type: IFLA.MTU, data: u32(mtu) },
    { type: IFLA.LINKINFO, nested: [{ type: IFLA_INFO_KIND, data: str("bridge") }] },
  ]);
  return { message: m, pidOffset: 0, ifindexOffset: 0 };
}

/** Brings a link up (its index looked up by the helper). */
export function linkUp(): NetlinkRequest {
  const { message: m } = message(RTM.NEWLINK, 0, ifinfomsg({ flags: IFF_UP, change: IFF_UP }), []);
  return { message: m, pidOffset: 0, ifindexOffset: 20 };
}

/** Deletes a link by name. */
export function delLink(name: string): NetlinkRequest {
  const { message: m } = message(RTM.DELLINK, 0, ifinfomsg(), [{ type: IFLA.IFNAME, data: str(name) }]);
  return { message: m, pidOffset: 0, ifindexOffset: 0 };
}

/**
 * A veth pair in one request: `hostName` up and enslaved to the bridge (its index patched in by the
 * helper), the peer created directly inside the container's network namespace (pid patched in), named
 * `peerName`, with its MAC (down: bring it up with `linkUp` in that namespace).
 */
export function newVethIntoNetns(o: { hostName: string; peerName: string; mtu: number; mac: string; pid?: number }): NetlinkRequest {
  const peer: Attr = {
    type: VETH_INFO_PEER,
    header: ifinfomsg(),
    nested: [
      { type: IFLA.IFNAME, data: str(o.peerName) },
      { type: IFLA.MTU, data: u32(o.mtu) },
      { type: IFLA.ADDRESS, data: macBytes(o.mac) },
      { type: IFLA.NET_NS_PID, data: u32(o.pid ?? 0), marker: "pid" },
    ],
  };
  const { message: m, markers } = message(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, ifinfomsg({ flags: IFF_UP, change: IFF_UP }), [
    { type: IFLA.IFNAME, data: str(o.hostName) },
    { type: IFLA.MTU, data: u32(o.mtu) },
    { type: IFLA.MASTER, data: u32(0), marker: "master" },
    { type: IFLA.LINKINFO, nested: [{ type: IFLA_INFO_KIND, data: str("veth") }, { type: IFLA_INFO_DATA, nested: [peer] }] },
  ]);
  return { message: m, pidOffset: o.pid ? 0 : (markers.get("pid") as number), ifindexOffset: markers.get("master") as number };
}

function ifaddrmsg(prefix: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(prefix, 1);
  return b; // index at offset 4 (message offset 20), patched in by the helper
}

/** An IPv4 address on an interface (its index looked up by the helper). */
export function newAddress(o: { ip: string; prefix: number; broadcast?: string }): NetlinkRequest {
  const attrs: Attr[] = [
    { type: IFA_LOCAL, data: ipv4Bytes(o.ip) },
    { type: IFA_ADDRESS, data: ipv4Bytes(o.ip) },
  ];
  if (o.broadcast) attrs.push({ type: IFA_BROADCAST, data: ipv4Bytes(o.broadcast) });
  const { message: m } = message(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, ifaddrmsg(o.prefix), attrs);
  return { message: m, pidOffset: 0, ifindexOffset: 20 };
}

/** The default route via a gateway on an interface (its index looked up by the helper). */
/** The default route via `gateway`; with `replace`, it takes the place of the one there (if any). */
export function newDefaultRoute(gateway: string, o: { replace?: boolean } = {}): NetlinkRequest {
  // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, u32 flags
  const rtmsg = Buffer.from([AF_INET, 0, 0, 0, 254 /* main */, 3 /* boot */, 0 /* universe */, 1 /* unicast */, 0, 0, 0, 0]);
  const { message: m, markers } = message(RTM.NEWROUTE, NLM_F.CREATE | (o.replace ? NLM_F.REPLACE : NLM_F.EXCL), rtmsg, [
    { type: RTA_GATEWAY, data: ipv4Bytes(gateway) },
    { type: RTA_OIF, data: u32(0), marker: "oif" },
  ]);
  return { message: m, pidOffset: 0, ifindexOffset: markers.get("oif") as number };
}

/** A helper op for a request. `netns`: "" the helper's own, "@CHILD@" the new container's, or a path. */
export function netlinkOp(req: NetlinkRequest, o: { netns: string; ifname?: string; ignoreErrno?: number; what: string }): Op {
  return {
    op: "netlink",
    netns: o.netns,
    message: req.message,
    pidOffset: req.pidOffset,
    ifname: o.ifname ?? "",
    ifindexOffset: o.ifname ? req.ifindexOffset : 0,
    ignoreErrno: o.ignoreErrno ?? 0,
    what: o.what,
  };
}

export const ERRNO = { EEXIST, ENODEV } as const;
