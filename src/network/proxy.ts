// The userland proxy: published ports where the kernel path (nftables DNAT in table `ip berth`, IPv4
// only) cannot serve, i.e. IPv6 host addresses: `-p [::1]:8080:80`, and the IPv6 side of a port
// published on every address (docker's docker-proxy does the same). It runs inside the process that owns
// the container's network (the daemon, or `berth run` in-process), so it never outlives that process;
// a restarted daemon starts it again for its running containers. TCP: one upstream connection per client;
// UDP: one upstream socket per client address, dropped after a quiet minute and a half.

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, type Server } from "node:net";
import { BerthError } from "../errors.js";

export interface ProxyTarget {
  proto: "tcp" | "udp";
  /** IPv6 address to listen on ("::" = every IPv6 address, ::1 included). */
  host: string;
  port: number;
  /** The container's address and port. */
  targetIp: string;
  targetPort: number;
}

export interface PortProxy {
  readonly target: ProxyTarget;
  close(): void;
}

const UDP_IDLE_MS = 90_000;

const where = (t: ProxyTarget) => `[${t.host}]:${t.port}/${t.proto}`;

function listenError(t: ProxyTarget, err: NodeJS.ErrnoException): BerthError {
  return new BerthError(err.code === "EADDRINUSE"
    ? `cannot publish port ${where(t)}: address already in use (another program on the host listens there)`
    : `cannot publish port ${where(t)}: ${err.message}`, { cause: err });
}

function startTcp(t: ProxyTarget): Promise<PortProxy> {
  const conns = new Set<() => void>();
  // Half-open on both sides, each direction passed on by itself (as docker-proxy does): a client that
  // sends its request and then shuts its side (nc, socket.end(request)) still gets the answer. With
  // Node's default, its FIN ended our side towards it too and the pair was torn down before the
  // container had answered.
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
    const upstream = connect({ host: t.targetIp, port: t.targetPort, allowHalfOpen: true });
    const destroy = () => { client.destroy(); upstream.destroy(); };
    conns.add(destroy);
    // An error on either side ends both; a clean end of both directions closes each socket by itself
    // (pipe() passes each FIN on), and destroying the other then would drop what it still has to send.
    client.on("error", destroy);
    upstream.on("error", destroy);
    let open = 2;
    const closed = () => { if (--open === 0) conns.delete(destroy); };
    client.on("close", closed);
    upstream.on("close", closed);
    upstream.once("connect", () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", (err) => reject(listenError(t, err)));
    server.listen({ host: t.host, port: t.port, ipv6Only: true, exclusive: true }, () => {
      server.removeAllListeners("error");
      server.on("error", () => {});
      resolve({
        target: t,
        close: () => {
          server.close();
          for (const destroy of conns) destroy();
        },
      });
    });
  });
}

function startUdp(t: ProxyTarget): Promise<PortProxy> {
  const sock = createSocket({ type: "udp6", ipv6Only: true });
  const flows = new Map<string, { up: UdpSocket; timer: NodeJS.Timeout }>();
  const drop = (key: string) => {
    const f = flows.get(key);
    if (!f) return;
    clearTimeout(f.timer);
    f.up.close();
    flows.delete(key);
  };
  sock.on("message", (msg: Buffer, from: RemoteInfo) => {
    const key = `${from.address}|${from.port}`;
    let f = flows.get(key);
    if (!f) {
      const up = createSocket("udp4");
      up.on("message", (reply: Buffer, rinfo: RemoteInfo) => {
        if (rinfo.address !== t.targetIp || rinfo.port !== t.targetPort) return;
        sock.send(reply, from.port, from.address);
        flows.get(key)?.timer.refresh();
      });
      up.on("error", () => drop(key));
      f = { up, timer: setTimeout(() => drop(key), UDP_IDLE_MS) };
      f.timer.unref();
      flows.set(key, f);
    }
    f.timer.refresh();
    f.up.send(msg, t.targetPort, t.targetIp);
  });
  return new Promise((resolve, reject) => {
    sock.once("error", (err) => reject(listenError(t, err)));
    sock.bind({ address: t.host, port: t.port, exclusive: true }, () => {
      sock.removeAllListeners("error");
      sock.on("error", () => {});
      resolve({
        target: t,
        close: () => {
          for (const key of [...flows.keys()]) drop(key);
          sock.close();
        },
      });
    });
  });
}

export function startProxy(t: ProxyTarget): Promise<PortProxy> {
  return t.proto === "tcp" ? startTcp(t) : startUdp(t);
}
