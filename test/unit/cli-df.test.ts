import { test } from "node:test";
import assert from "node:assert/strict";
import { dfCounts } from "../../src/cli/images.js";

test("dfCounts: system df's container and volume rows from the daemon's /system/df, as docker's CLI counts them", () => {
  const { containers, volumes } = dfCounts({
    Containers: [{ State: "running", SizeRw: 10 }, { State: "exited", SizeRw: 5 }, { State: "created" }],
    Volumes: [{ UsageData: { Size: 100, RefCount: 1 } }, { UsageData: { Size: 7, RefCount: 0 } }, { UsageData: { Size: -1, RefCount: 0 } }],
  });
  assert.deepEqual(containers, { total: 3, active: 1, size: 15, reclaimable: 5 });
  assert.deepEqual(volumes, { total: 3, active: 1, size: 107, reclaimable: 7 });
});
