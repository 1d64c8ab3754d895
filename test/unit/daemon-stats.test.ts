// stats' network and block I/O parsers and the CLI's docker-style sums and units.
import { test } from "node:test";
import assert from "node:assert/strict";
import { blkioJson, blkioTotals, parseBlkioV1, parseIoStatV2, parseNetDev } from "../../src/daemon/stats.js";
import { humanSizeDecimal } from "../../src/cli/engine.js";

test("parseNetDev: every interface but lo, docker's counter names", () => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0:    1390      17    1    2    0     0          0         0      632       8    3    4    0     0       0          0
`;
  assert.deepEqual(parseNetDev(text), {
    eth0: { rx_bytes: 1390, rx_packets: 17, rx_errors: 1, rx_dropped: 2, tx_bytes: 632, tx_packets: 8, tx_errors: 3, tx_dropped: 4 },
  });
  assert.deepEqual(parseNetDev(text.split("\n").slice(0, 3).join("\n")), {});
});

test("parseBlkioV1 keeps device lines (not the Total summary); parseIoStatV2 gives read/write per device", () => {
  const v1 = "254:0 Read 786432\n254:0 Write 5242880\n254:0 Sync 6029312\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 6029312\nTotal 6029312\n";
  const e = parseBlkioV1(v1);
  assert.equal(e.length, 6);
  assert.deepEqual(e[1], { major: 254, minor: 0, op: "Write", value: 5242880 });
  assert.deepEqual(blkioTotals(e), { read: 786432, write: 5242880 });
  assert.deepEqual(parseBlkioV1("Total 0\n"), []);
  const v2 = parseIoStatV2("8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=3 wios=4\n");
  assert.deepEqual(v2.bytes, [
    { major: 8, minor: 0, op: "read", value: 4096 }, { major: 8, minor: 0, op: "write", value: 8192 },
    { major: 8, minor: 16, op: "read", value: 1 }, { major: 8, minor: 16, op: "write", value: 2 },
  ]);
  assert.deepEqual(blkioTotals(v2.ios), { read: 4, write: 6 });
  const json = blkioJson(e, []);
  assert.deepEqual(Object.keys(json), ["io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive", "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive", "sectors_recursive"]);
  assert.deepEqual(blkioTotals(null), { read: 0, write: 0 });
});

test("humanSizeDecimal matches docker's HumanSizeWithPrecision(n, 3)", () => {
  assert.equal(humanSizeDecimal(0), "0B");
  assert.equal(humanSizeDecimal(632), "632B");
  assert.equal(humanSizeDecimal(1390), "1.39kB");
  assert.equal(humanSizeDecimal(5242880), "5.24MB");
  assert.equal(humanSizeDecimal(786432), "786kB");
  assert.equal(humanSizeDecimal(1000), "1kB");
});
