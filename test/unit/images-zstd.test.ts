// zstd layers are decoded by zstd(1) when installed, else by the fzstd package: both give the same
// bytes, and both word a truncated or damaged stream the same way.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { test } from "node:test";
import { Decompressor } from "../../src/images/layer.js";

const haveZstd = spawnSync("zstd", ["--version"]).status === 0;
const skip = haveZstd ? false : "needs zstd(1) to make test data (apt-get install zstd)";

// Compressible but not trivial: a few MB of numbered lines.
const original = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i} ${(i * 2654435761) % 4294967296}\n`).join(""));
const compressed = haveZstd ? spawnSync("zstd", ["-q", "-c", "-3"], { input: original, maxBuffer: 64 << 20 }).stdout : Buffer.alloc(0);

async function decode(input: Buffer, zstdTool: boolean): Promise<Buffer> {
  const out: Buffer[] = [];
  // Small chunks, as a network or file stream delivers them.
  const chunks = Array.from({ length: Math.ceil(input.length / 16384) }, (_, i) => input.subarray(i * 16384, (i + 1) * 16384));
  await pipeline(Readable.from(chunks), new Decompressor({ zstdTool }), new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } }));
  return Buffer.concat(out);
}

for (const tool of [true, false]) {
  const how = tool ? "zstd(1)" : "fzstd";
  test(`${how}: a whole stream decodes to the original bytes`, { skip }, async () => {
    assert.ok(compressed.length < original.length / 2);
    assert.ok((await decode(compressed, tool)).equals(original));
  });

  test(`${how}: a truncated stream is an error that says so`, { skip }, async () => {
    await assert.rejects(decode(compressed.subarray(0, Math.floor(compressed.length / 2)), tool), /^Error: zstd: the compressed data ends early \(truncated\)$/);
  });

  test(`${how}: damaged data after the magic number is a one-line zstd error`, { skip }, async () => {
    const bad = Buffer.concat([compressed.subarray(0, 4), Buffer.alloc(4096, 0xa5)]);
    await assert.rejects(decode(bad, tool), (err: Error) => /^zstd: \S/.test(err.message) && !err.message.includes("\n"));
  });
}
