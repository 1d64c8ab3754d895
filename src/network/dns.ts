// DNS messages, pure: enough of RFC 1035 for the embedded server (parse a query, answer A / PTR, refuse
// or fail the rest) and for tests (build a query, read an answer).

export const TYPE = { A: 1, PTR: 12, AAAA: 28 } as const;
export const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4 } as const;

export interface Question {
  name: string;
  type: number;
  cls: number;
}

export interface Message {
  id: number;
  flags: number;
  questions: Question[];
  answers: { name: string; type: number; ttl: number; data: string }[];
}

function readName(buf: Buffer, start: number): [string, number] {
  const labels: string[] = [];
  let off = start;
  let end = -1;
  for (let hops = 0; hops < 64; hops++) {
    if (off >= buf.length) throw new Error("truncated name");
    const len = buf[off];
    if (len === 0) {
      if (end < 0) end = off + 1;
      return [labels.join("."), end];
    }
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1];
      continue;
    }
    labels.push(buf.toString("latin1", off + 1, off + 1 + len));
    off += 1 + len;
  }
  throw new Error("name loop");
}

function writeName(name: string): Buffer {
  const parts = name.replace(/\.$/, "").split(".").filter(Boolean);
  const bufs = parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, "latin1")]));
  return Buffer.concat([...bufs, Buffer.from([0])]);
}

export function decode(buf: Buffer): Message {
  if (buf.length < 12) throw new Error("short message");
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let off = 12;
  const questions: Question[] = [];
  for (let i = 0; i < qd; i++) {
    const [name, next] = readName(buf, off);
    questions.push({ name, type: buf.readUInt16BE(next), cls: buf.readUInt16BE(next + 2) });
    off = next + 4;
  }
  const answers: Message["answers"] = [];
  for (let i = 0; i < an; i++) {
    const [name, next] = readName(buf, off);
    const type = buf.readUInt16BE(next);
    const ttl = buf.readUInt32BE(next + 4);
    const rdlen = buf.readUInt16BE(next + 8);
    const rd = next + 10;
    let data = buf.subarray(rd, rd + rdlen).toString("hex");
    if (type === TYPE.A && rdlen === 4) data = [...buf.subarray(rd, rd + 4)].join(".");
    else if (type === TYPE.PTR) data = readName(buf, rd)[0];
    answers.push({ name, type, ttl, data });
    off = rd + rdlen;
  }
  return { id, flags, questions, answers };
}

export function encodeQuery(id: number, name: string, type: number): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2); // RD
  h.writeUInt16BE(1, 4);
  const q = Buffer.alloc(4);
  q.writeUInt16BE(type, 0);
  q.writeUInt16BE(1, 2);
  return Buffer.concat([h, writeName(name), q]);
}

export interface Answer {
  type: number;
  /** A: dotted quad; PTR: a name. */
  data: string;
}

/** A response to `query` (its id, question, RD echoed) with these answers and rcode. */
export function encodeResponse(query: Message, answers: Answer[], rcode: number, ttl = 600): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(query.id, 0);
  // QR, opcode 0, AA, RD as asked, RA.
  h.writeUInt16BE(0x8000 | 0x0400 | (query.flags & 0x0100) | 0x0080 | (rcode & 0xf), 2);
  const q = query.questions[0];
  h.writeUInt16BE(q ? 1 : 0, 4);
  h.writeUInt16BE(answers.length, 6);
  const parts: Buffer[] = [h];
  if (q) {
    const qt = Buffer.alloc(4);
    qt.writeUInt16BE(q.type, 0);
    qt.writeUInt16BE(q.cls, 2);
    parts.push(writeName(q.name), qt);
  }
  for (const a of answers) {
    const rdata = a.type === TYPE.A ? Buffer.from(a.data.split(".").map(Number)) : writeName(a.data);
    const rr = Buffer.alloc(10);
    rr.writeUInt16BE(a.type, 0);
    rr.writeUInt16BE(1, 2);
    rr.writeUInt32BE(ttl, 4);
    rr.writeUInt16BE(rdata.length, 8);
    parts.push(Buffer.from([0xc0, 12]), rr, rdata);
  }
  return Buffer.concat(parts);
}

/** "4.3.2.1.in-addr.arpa" -> "1.2.3.4" (undefined for other names). */
export function reverseName(name: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa\.?$/i.exec(name);
  return m ? `${m[4]}.${m[3]}.${m[2]}.${m[1]}` : undefined;
}

export interface NameTable {
  /** lower-case name -> addresses */
  forward: Map<string, string[]>;
  /** address -> name */
  reverse: Map<string, string>;
}

/**
 * What the embedded server says to a query: an answer from the table, "forward" for names it does not
 * know (the host's resolvers decide), or an error rcode.
 */
export function answerFromTable(query: Message, table: NameTable): { answers: Answer[]; rcode: number } | "forward" {
  const q = query.questions[0];
  if (!q || query.questions.length !== 1) return { answers: [], rcode: RCODE.NOTIMP };
  const name = q.name.toLowerCase().replace(/\.$/, "");
  if (q.type === TYPE.PTR) {
    const ip = reverseName(name);
    const host = ip ? table.reverse.get(ip) : undefined;
    return host ? { answers: [{ type: TYPE.PTR, data: host }], rcode: RCODE.NOERROR } : "forward";
  }
  const ips = table.forward.get(name);
  if (!ips) return "forward";
  if (q.type === TYPE.A) return { answers: ips.map((data) => ({ type: TYPE.A, data })), rcode: RCODE.NOERROR };
  return { answers: [], rcode: RCODE.NOERROR }; // the name exists, with no records of this type
}
