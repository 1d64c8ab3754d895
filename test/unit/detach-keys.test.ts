// Detach keys: docker's key list syntax and the stream scanner (sequence split across chunks, held
// prefixes passed on when the sequence does not complete, bytes after the sequence dropped).
import { test } from "node:test";
import assert from "node:assert/strict";
import { attachDetachKeys, DetachScanner, detachKeyBytes, execDetachKeys } from "../../src/daemon/detach-keys.js";
import type { EngineError } from "../../src/daemon/util.js";

test("detachKeyBytes follows docker's term.ToBytes", () => {
  assert.deepEqual([...detachKeyBytes("ctrl-p,ctrl-q")], [16, 17]);
  assert.deepEqual([...detachKeyBytes("ctrl-@,ctrl-a,ctrl-z,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_")], [0, 1, 26, 27, 28, 29, 30, 31]);
  assert.deepEqual([...detachKeyBytes("a,Z,DEL,ctrl-x")], [97, 90, 127, 24]);
  assert.throws(() => detachKeyBytes("ctrl-1"), /Unknown character: 'ctrl-1'/);
  assert.throws(() => detachKeyBytes("CTRL-A"), /Unknown character/); // docker's table is lower case
  assert.throws(() => detachKeyBytes("ab"), /Unknown character/);
  assert.deepEqual([...attachDetachKeys("")], [16, 17]);
  assert.deepEqual([...attachDetachKeys(null)], [16, 17]);
  const err = (fn: () => unknown) => { try { fn(); } catch (e) { return e as EngineError; } return undefined; };
  assert.equal(err(() => attachDetachKeys("ctrl-1"))?.status, 400);
  assert.equal(err(() => attachDetachKeys("ctrl-1"))?.message, "Invalid detach keys (ctrl-1) provided");
  assert.equal(err(() => execDetachKeys("ctrl-1"))?.message, "Invalid escape keys (ctrl-1) provided");
});

function feed(keys: string, chunks: string[]): { passed: string; detachedAt: number } {
  const s = new DetachScanner(detachKeyBytes(keys));
  let passed = "";
  for (let i = 0; i < chunks.length; i++) {
    const r = s.push(Buffer.from(chunks[i], "latin1"));
    passed += r.data.toString("latin1");
    if (r.detached) return { passed, detachedAt: i };
  }
  return { passed, detachedAt: -1 };
}

test("DetachScanner: the sequence in one chunk, split across chunks, or not completed", () => {
  assert.deepEqual(feed("ctrl-p,ctrl-q", ["before\n\x10\x11after\n"]), { passed: "before\n", detachedAt: 0 });
  assert.deepEqual(feed("ctrl-p,ctrl-q", ["one\x10", "\x11two"]), { passed: "one", detachedAt: 1 });
  assert.deepEqual(feed("ctrl-p,ctrl-q", ["a", "\x10", "\x11"]), { passed: "a", detachedAt: 2 });
  // ctrl-p followed by something else reaches the process, in order.
  assert.deepEqual(feed("ctrl-p,ctrl-q", ["three\x10", "x\n"]), { passed: "three\x10x\n", detachedAt: -1 });
  assert.deepEqual(feed("ctrl-p,ctrl-q", ["\x10\x10\x11"]), { passed: "\x10", detachedAt: 0 });
  assert.deepEqual(feed("ctrl-p,ctrl-q", ["\x11\x10"]), { passed: "\x11", detachedAt: -1 });
  // Custom keys of three bytes; the default ones are then ordinary input.
  assert.deepEqual(feed("ctrl-x,y,z", ["\x10\x11", "ab\x18y", "q\x18", "y", "z!"]), { passed: "\x10\x11ab\x18yq", detachedAt: 4 });
  assert.deepEqual(feed("a", ["xxa"]), { passed: "xx", detachedAt: 0 });
});
