import { test } from "node:test";
import assert from "node:assert/strict";
import { expandCpuset, parseCpus, parseCpuset, parseMemorySwap, parseSize } from "../../src/util/size.js";
import { BerthError } from "../../src/errors.js";

test("parseSize accepts docker's RAMInBytes forms with binary units", () => {
  assert.equal(parseSize("1024", "--memory"), 1024);
  assert.equal(parseSize("512b", "--memory"), 512);
  assert.equal(parseSize("64k", "--memory"), 64 * 1024);
  assert.equal(parseSize("64K", "--memory"), 64 * 1024);
  assert.equal(parseSize("64m", "--memory"), 64 * 1024 ** 2);
  assert.equal(parseSize("64mb", "--memory"), 64 * 1024 ** 2);
  assert.equal(parseSize("64MiB", "--memory"), 64 * 1024 ** 2);
  assert.equal(parseSize("1g", "--memory"), 1024 ** 3);
  assert.equal(parseSize("1G", "--memory"), 1024 ** 3);
  assert.equal(parseSize("1.5g", "--memory"), 1.5 * 1024 ** 3);
  assert.equal(parseSize("1.5k", "--memory"), 1536);
  assert.equal(parseSize("2t", "--memory"), 2 * 1024 ** 4);
  assert.equal(parseSize("10 m", "--memory"), 10 * 1024 ** 2);
});

test("parseSize rejects bad input naming the value and the flag", () => {
  for (const bad of ["12x", "", "m", "-1", "1.g", "1gg", "0x10", "1e3"]) {
    assert.throws(
      () => parseSize(bad, "--memory"),
      (err: unknown) =>
        err instanceof BerthError &&
        err.message === `invalid value "${bad}" for --memory: expected a size such as 512m or 1g`,
      bad,
    );
  }
});

test("parseMemorySwap allows -1 for unlimited", () => {
  assert.equal(parseMemorySwap("-1", "--memory-swap"), -1);
  assert.equal(parseMemorySwap("1g", "--memory-swap"), 1024 ** 3);
  assert.throws(() => parseMemorySwap("-2", "--memory-swap"), /--memory-swap/);
});

test("parseCpus turns CPUs into a quota over a 100ms period", () => {
  assert.deepEqual(parseCpus("1", "--cpus"), { quota: 100000, period: 100000 });
  assert.deepEqual(parseCpus("1.5", "--cpus"), { quota: 150000, period: 100000 });
  assert.deepEqual(parseCpus("0.1", "--cpus"), { quota: 10000, period: 100000 });
  assert.deepEqual(parseCpus(".5", "--cpus"), { quota: 50000, period: 100000 });
  assert.deepEqual(parseCpus("2.", "--cpus"), { quota: 200000, period: 100000 });
  assert.deepEqual(parseCpus("0.000000001", "--cpus"), { quota: 0, period: 100000 });
  for (const bad of ["", ".", "abc", "-1", "1,5", "1e2"]) {
    assert.throws(() => parseCpus(bad, "--cpus"), /invalid value .* for --cpus/, bad);
  }
  assert.throws(() => parseCpus("0.0000000001", "--cpus"), /too precise/);
});

test("parseCpuset validates lists and ranges", () => {
  assert.equal(parseCpuset("0-1,3", "--cpuset-cpus"), "0-1,3");
  assert.equal(parseCpuset(" 0, 2-3 ", "--cpuset-cpus"), "0,2-3");
  assert.equal(parseCpuset("7", "--cpuset-mems"), "7");
  for (const bad of ["", "a", "0-", "-1", "1,,2", "0-1-2", "3-1", "1,"]) {
    assert.throws(() => parseCpuset(bad, "--cpuset-cpus"), /invalid value .* for --cpuset-cpus/, bad);
  }
  assert.deepEqual(expandCpuset("0-2,5,1"), [0, 1, 2, 5]);
  assert.throws(() => expandCpuset("0-99999999"), /beyond/);
});
