import { test } from "node:test";
import assert from "node:assert/strict";
import { dockerAdditionalGids, parseGroup, parsePasswd, resolveUser } from "../../src/core/users.js";
import { BerthError } from "../../src/errors.js";

const passwd = [
  "root:x:0:0:root:/root:/bin/sh",
  "# a comment",
  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
  "app:x:1000:1000:App:/home/app:/bin/sh",
  "1234:x:4321:4321:named like a number:/home/num:/bin/sh",
  "nohome:x:1001:1001:::/bin/sh",
  "broken:x:notanumber:0:::",
  "short:x",
  "",
].join("\n");

const group = [
  "root:x:0:",
  "tty:x:5:",
  "staff:x:50:app,other",
  "app:x:1000:app",
  "docker:x:999: app ",
  "wheel:x:10:root",
  "bad:x:zz:app",
].join("\n");

test("parsePasswd and parseGroup skip comments and malformed lines", () => {
  const users = parsePasswd(passwd);
  assert.deepEqual(
    users.map((user) => user.name),
    ["root", "daemon", "app", "1234", "nohome"],
  );
  assert.deepEqual(users[2], { name: "app", uid: 1000, gid: 1000, gecos: "App", home: "/home/app", shell: "/bin/sh" });
  const groups = parseGroup(group);
  assert.deepEqual(groups.map((entry) => entry.name), ["root", "tty", "staff", "app", "docker", "wheel"]);
  assert.deepEqual(groups[2], { name: "staff", gid: 50, members: ["app", "other"] });
  assert.deepEqual(groups[0]!.members, []);
});

test("resolveUser by name gives passwd ids, home and supplementary groups without the primary gid", () => {
  assert.deepEqual(resolveUser("app", passwd, group), {
    uid: 1000,
    gid: 1000,
    additionalGids: [50, 999],
    home: "/home/app",
    username: "app",
  });
});

test("resolveUser with an empty spec is root with root's groups", () => {
  assert.deepEqual(resolveUser("", passwd, group), { uid: 0, gid: 0, additionalGids: [10], home: "/root", username: "root" });
});

test("resolveUser with a uid found in passwd", () => {
  assert.deepEqual(resolveUser("1000", passwd, group), {
    uid: 1000,
    gid: 1000,
    additionalGids: [50, 999],
    home: "/home/app",
    username: "app",
  });
});

test("resolveUser: a numeric spec is always a uid, never a name", () => {
  // "1234" is a user's name, but uid 1234 is in no entry: runc uses uid 1234, gid 0, home "/".
  assert.deepEqual(resolveUser("1234", passwd, group), { uid: 1234, gid: 0, additionalGids: [], home: "/" });
});

test("resolveUser with a uid that is in no file, or without the files at all", () => {
  assert.deepEqual(resolveUser("4242", passwd, group), { uid: 4242, gid: 0, additionalGids: [], home: "/" });
  assert.deepEqual(resolveUser("4242", undefined, undefined), { uid: 4242, gid: 0, additionalGids: [], home: "/" });
  assert.deepEqual(resolveUser("4242:77", undefined, undefined), { uid: 4242, gid: 77, additionalGids: [], home: "/" });
});

test("resolveUser with an explicit group has no supplementary groups", () => {
  assert.deepEqual(resolveUser("app:staff", passwd, group), {
    uid: 1000,
    gid: 50,
    additionalGids: [],
    home: "/home/app",
    username: "app",
  });
  assert.deepEqual(resolveUser("app:4000", passwd, group), {
    uid: 1000,
    gid: 4000,
    additionalGids: [],
    home: "/home/app",
    username: "app",
  });
  assert.deepEqual(resolveUser("1000:5", passwd, group), {
    uid: 1000,
    gid: 5,
    additionalGids: [],
    home: "/home/app",
    username: "app",
  });
  assert.deepEqual(resolveUser("4242:tty", passwd, group), { uid: 4242, gid: 5, additionalGids: [], home: "/" });
});

test("resolveUser: an empty home in passwd becomes /", () => {
  assert.equal(resolveUser("nohome", passwd, group).home, "/");
});

test("resolveUser errors name the user or group and the file", () => {
  assert.throws(
    () => resolveUser("ghost", passwd, group),
    (err: unknown) =>
      err instanceof BerthError && err.message.startsWith("unable to find user ghost: no matching entries in passwd file"),
  );
  assert.throws(() => resolveUser("ghost", undefined, group), /unable to find user ghost: the image has no \/etc\/passwd/);
  assert.throws(() => resolveUser("app:ghosts", passwd, group), /unable to find group ghosts: no matching entries in group file/);
  assert.throws(() => resolveUser("app:ghosts", passwd, undefined), /unable to find group ghosts: the image has no \/etc\/group/);
  assert.throws(() => resolveUser("1:2:3", passwd, group), /invalid user "1:2:3"/);
  assert.throws(() => resolveUser("99999999999", passwd, group), /out of range/);
  assert.throws(() => resolveUser("0:99999999999", passwd, group), /out of range/);
});

test("dockerAdditionalGids: the primary gid first, as docker since CVE-2022-36109, without repeating it", () => {
  assert.deepEqual(dockerAdditionalGids({ gid: 65534, additionalGids: [] }), [65534]);
  assert.deepEqual(dockerAdditionalGids({ gid: 0, additionalGids: [10, 0, 20] }), [0, 10, 20]);
});
