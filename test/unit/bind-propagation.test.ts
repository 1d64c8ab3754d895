// dockerd's bind propagation check, from mountinfo text: which mount holds a path, and its words.

import assert from "node:assert/strict";
import { test } from "node:test";
import { bindPropagationError, sourceMount } from "../../src/daemon/bind-propagation.js";

const MOUNTINFO = [
  "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw",
  "30 22 0:40 / /srv/shared\\040dir rw shared:5 - tmpfs t rw",
  "31 22 0:41 / /srv/slave rw master:7 - tmpfs t rw",
  "32 22 0:42 / /srv/both rw shared:8 master:9 - tmpfs t rw",
  "33 31 0:43 / /srv/slave/inner rw - tmpfs t rw",
].join("\n");

test("the mount holding a path: the longest containing mount point, escapes decoded, / for the rest", () => {
  assert.equal(sourceMount("/srv/shared dir/x", MOUNTINFO)?.mountPoint, "/srv/shared dir");
  assert.equal(sourceMount("/srv/slave/inner/y", MOUNTINFO)?.mountPoint, "/srv/slave/inner");
  assert.equal(sourceMount("/srv/slaveish", MOUNTINFO)?.mountPoint, "/", "a name prefix is not a parent");
});

test("shared needs a shared source, slave a shared or slave one; private modes need nothing", () => {
  assert.equal(bindPropagationError("/srv/shared dir/x", "rshared", MOUNTINFO), undefined);
  assert.equal(bindPropagationError("/srv/slave/a", "rslave", MOUNTINFO), undefined);
  assert.equal(bindPropagationError("/srv/both", "shared", MOUNTINFO), undefined);
  assert.equal(bindPropagationError("/srv/shared dir", "slave", MOUNTINFO), undefined);
  assert.equal(bindPropagationError("/srv/slave/a", "rshared", MOUNTINFO), "path /srv/slave/a is mounted on /srv/slave but it is not a shared mount");
  assert.equal(bindPropagationError("/opt/h", "rslave", MOUNTINFO), "path /opt/h is mounted on / but it is not a shared or slave mount");
  assert.equal(bindPropagationError("/srv/slave/inner/z", "slave", MOUNTINFO), "path /srv/slave/inner/z is mounted on /srv/slave/inner but it is not a shared or slave mount");
  assert.equal(bindPropagationError("/opt/h", "rprivate", MOUNTINFO), undefined);
  assert.equal(bindPropagationError("/opt/h", "", MOUNTINFO), undefined);
});
