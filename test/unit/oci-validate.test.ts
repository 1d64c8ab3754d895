import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BerthError } from "../../src/errors.js";
import type { Spec } from "../../src/oci/spec.js";
import { defaultSpec } from "../../src/oci/default-spec.js";
import {
  checkNamespacePaths,
  isCpuList,
  jsonSyntaxError,
  mountDestination,
  type NamespaceFs,
  parseCgroupsPath,
  parseSpec,
  validateSpec,
} from "../../src/oci/validate.js";
import {
  knownMountOptions,
  MOUNT_ATTR__ATIME,
  MOUNT_ATTR_IDMAP,
  MOUNT_ATTR_NOATIME,
  MOUNT_ATTR_NOSUID,
  MOUNT_ATTR_RDONLY,
  mountFlagNames,
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_RELATIME,
  MS_SHARED,
  MS_SLAVE,
  MS_STRICTATIME,
  MS_UNBINDABLE,
  parseMountOptions,
} from "../../src/oci/mount-options.js";

// `runc spec` (runc 1.1.5, Debian 12), byte for byte.
const RUNC_SPEC = `{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": true,
		"user": {
			"uid": 0,
			"gid": 0
		},
		"args": [
			"sh"
		],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"effective": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"permitted": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			],
			"ambient": [
				"CAP_AUDIT_WRITE",
				"CAP_KILL",
				"CAP_NET_BIND_SERVICE"
			]
		},
		"rlimits": [
			{
				"type": "RLIMIT_NOFILE",
				"hard": 1024,
				"soft": 1024
			}
		],
		"noNewPrivileges": true
	},
	"root": {
		"path": "rootfs",
		"readonly": true
	},
	"hostname": "runc",
	"mounts": [
		{
			"destination": "/proc",
			"type": "proc",
			"source": "proc"
		},
		{
			"destination": "/dev",
			"type": "tmpfs",
			"source": "tmpfs",
			"options": [
				"nosuid",
				"strictatime",
				"mode=755",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/pts",
			"type": "devpts",
			"source": "devpts",
			"options": [
				"nosuid",
				"noexec",
				"newinstance",
				"ptmxmode=0666",
				"mode=0620",
				"gid=5"
			]
		},
		{
			"destination": "/dev/shm",
			"type": "tmpfs",
			"source": "shm",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"mode=1777",
				"size=65536k"
			]
		},
		{
			"destination": "/dev/mqueue",
			"type": "mqueue",
			"source": "mqueue",
			"options": [
				"nosuid",
				"noexec",
				"nodev"
			]
		},
		{
			"destination": "/sys",
			"type": "sysfs",
			"source": "sysfs",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"ro"
			]
		},
		{
			"destination": "/sys/fs/cgroup",
			"type": "cgroup",
			"source": "cgroup",
			"options": [
				"nosuid",
				"noexec",
				"nodev",
				"relatime",
				"ro"
			]
		}
	],
	"linux": {
		"resources": {
			"devices": [
				{
					"allow": false,
					"access": "rwm"
				}
			]
		},
		"namespaces": [
			{
				"type": "pid"
			},
			{
				"type": "network"
			},
			{
				"type": "ipc"
			},
			{
				"type": "uts"
			},
			{
				"type": "mount"
			}
		],
		"maskedPaths": [
			"/proc/acpi",
			"/proc/asound",
			"/proc/kcore",
			"/proc/keys",
			"/proc/latency_stats",
			"/proc/timer_list",
			"/proc/timer_stats",
			"/proc/sched_debug",
			"/sys/firmware",
			"/proc/scsi"
		],
		"readonlyPaths": [
			"/proc/bus",
			"/proc/fs",
			"/proc/irq",
			"/proc/sys",
			"/proc/sysrq-trigger"
		]
	}
}`;

function throwsPath(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BerthError, `not a BerthError: ${String(err)}`);
    assert.equal(err.message, message);
    assert.equal(err.exitCode, 1);
    assert.ok(!err.message.includes("\n"), "one line");
    return true;
  });
}

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A valid config.json with every namespace the cross-field checks look for. */
function base(): Json {
  const s = JSON.parse(JSON.stringify(defaultSpec())) as Json;
  s.linux.namespaces.push({ type: "cgroup" });
  return s;
}

/** validateSpec of base() after `edit`; must throw `message`. */
function rejects(edit: (s: Json) => void, message: string): void {
  const s = base();
  edit(s);
  throwsPath(() => validateSpec(s), message);
}

function accepts(edit: (s: Json) => void): Spec {
  const s = base();
  edit(s);
  return validateSpec(s);
}

// ---- default spec ----------------------------------------------------------------------------------

test("defaultSpec is byte-identical to runc spec", () => {
  assert.equal(JSON.stringify(defaultSpec(), null, "\t"), RUNC_SPEC);
});

test("defaultSpec returns a fresh object and passes validation", () => {
  const a = defaultSpec();
  a.process!.args!.push("x");
  assert.deepEqual(defaultSpec().process!.args, ["sh"]);
  assert.deepEqual(validateSpec(defaultSpec()), defaultSpec());
  assert.deepEqual(parseSpec(RUNC_SPEC, "config.json"), defaultSpec());
});

// ---- parseSpec -------------------------------------------------------------------------------------

test("parseSpec: syntax errors give file, line and column", () => {
  throwsPath(() => parseSpec('{\n  "ociVersion": "1.0.0",\n  "root": }\n', "config.json"),
    'config.json: invalid JSON at line 3 column 11: expected a value, found "}"');
  throwsPath(() => parseSpec('{"a":1', "config.json"), 'config.json: invalid JSON at line 1 column 7: expected "," or "}", found end of input');
  throwsPath(() => parseSpec("", "/b/config.json"), "/b/config.json: invalid JSON at line 1 column 1: expected a value, found end of input");
  throwsPath(() => parseSpec('{"a":1,}', "config.json"), 'config.json: invalid JSON at line 1 column 8: expected a double-quoted property name, found "}"');
  throwsPath(() => parseSpec('{"a":1}\n\nx', "config.json"), 'config.json: invalid JSON at line 3 column 1: unexpected "x" after the end of the value');
});

test("jsonSyntaxError agrees with JSON.parse", () => {
  const good = ["{}", "[]", '{"a":[1,-2.5e3,true,false,null,"x\\u00e9\\n"]}', " 0 ", '""', RUNC_SPEC];
  for (const t of good) assert.equal(jsonSyntaxError(t), null, t);
  const bad = ["{", "[1,]", "01", "-", '"\\x"', '"a\nb"', "tru", "{'a':1}", "[1 2]", '{"a" 1}', "1.", "\uFEFF{}"];
  for (const t of bad) {
    assert.throws(() => JSON.parse(t));
    assert.notEqual(jsonSyntaxError(t), null, t);
  }
  assert.deepEqual(jsonSyntaxError("[1 2]"), { offset: 3, message: 'expected "," or "]", found "2"' });
});

test("parseSpec validates after parsing", () => {
  throwsPath(() => parseSpec('{"ociVersion":"2.0.0"}', "config.json"), 'ociVersion: unsupported version "2.0.0" (berth-oci supports 1.x)');
  throwsPath(() => parseSpec("[]", "config.json"), "config: must be a JSON object, got array");
});

// ---- ociVersion, root ------------------------------------------------------------------------------

test("ociVersion: any 1.x (a newer minor only adds optional fields), not another major", () => {
  for (const v of ["1.0.0", "1.0.2-dev", "1.0.0-rc5", "1.1.0", "1.2.1", "1.3.0", "1.3.7+build", "1.4.0", "1.12.3-rc1"]) accepts((s) => (s.ociVersion = v));
  rejects((s) => (s.ociVersion = "2.0.0"), 'ociVersion: unsupported version "2.0.0" (berth-oci supports 1.x)');
  rejects((s) => (s.ociVersion = "0.6.0"), 'ociVersion: unsupported version "0.6.0" (berth-oci supports 1.x)');
  rejects((s) => (s.ociVersion = "1.0"), 'ociVersion: "1.0" is not a semantic version (berth-oci supports 1.x)');
  rejects((s) => delete s.ociVersion, "ociVersion: required");
  rejects((s) => (s.ociVersion = 1), "ociVersion: must be a string, got number");
});

test("root.path is required", () => {
  rejects((s) => delete s.root, "root: required");
  rejects((s) => delete s.root.path, "root.path: required");
  rejects((s) => (s.root.path = ""), "root.path: required");
  rejects((s) => (s.root.readonly = "yes"), "root.readonly: must be a boolean, got string");
  rejects((s) => (s.root = []), "root: must be an object, got array");
});

// ---- process ---------------------------------------------------------------------------------------

test("process is optional; args must be non-empty when it is there", () => {
  accepts((s) => delete s.process);
  rejects((s) => (s.process.args = []), "process.args: must have at least one element");
  rejects((s) => delete s.process.args, "process.args: must have at least one element");
  rejects((s) => (s.process.args = [""]), "process.args[0]: must not be empty");
  rejects((s) => (s.process.args = ["sh", 3]), "process.args[1]: must be a string, got number");
  rejects((s) => (s.process.args = ["sh\0x"]), "process.args[0]: must not contain a NUL byte");
  rejects((s) => (s.process.args = "sh"), "process.args: must be an array, got string");
});

test("process.cwd is absolute, env is NAME=value", () => {
  rejects((s) => (s.process.cwd = "work"), 'process.cwd: must be an absolute path, got "work"');
  rejects((s) => delete s.process.cwd, "process.cwd: required");
  rejects((s) => s.process.env.push("NOVALUE"), 'process.env[2]: invalid environment variable "NOVALUE" (want NAME=value)');
  rejects((s) => s.process.env.push("=x"), 'process.env[2]: invalid environment variable "=x" (want NAME=value)');
  accepts((s) => s.process.env.push("EMPTY="));
});

test("process.user", () => {
  rejects((s) => delete s.process.user, "process.user: required");
  rejects((s) => (s.process.user.uid = -1), "process.user.uid: must be an integer from 0 to 4294967295, got -1");
  rejects((s) => (s.process.user.gid = 1.5), "process.user.gid: must be an integer from 0 to 4294967295, got 1.5");
  rejects((s) => (s.process.user.uid = 2 ** 32), "process.user.uid: must be an integer from 0 to 4294967295, got 4294967296");
  rejects((s) => (s.process.user.additionalGids = [1, "2"]), "process.user.additionalGids[1]: must be an integer from 0 to 4294967295, got string");
  accepts((s) => Object.assign(s.process.user, { umask: 0o22, additionalGids: [10, 20], username: "root" }));
});

test("capability names are checked in all five sets", () => {
  for (const set of ["bounding", "effective", "inheritable", "permitted", "ambient"]) {
    rejects((s) => (s.process.capabilities[set] = ["CAP_KILL", "CAP_CHOWN", "CAP_TEST"]), `process.capabilities.${set}[2]: unknown capability "CAP_TEST"`);
  }
  rejects((s) => (s.process.capabilities.bounding = ["kill"]), 'process.capabilities.bounding[0]: unknown capability "kill"');
  accepts((s) => (s.process.capabilities.inheritable = ["CAP_CHECKPOINT_RESTORE"]));
});

test("rlimits: known, unique, soft <= hard", () => {
  rejects((s) => s.process.rlimits.push({ type: "RLIMIT_FOO", soft: 1, hard: 1 }), 'process.rlimits[1].type: unknown rlimit "RLIMIT_FOO"');
  rejects((s) => s.process.rlimits.push({ type: "RLIMIT_NOFILE", soft: 1, hard: 1 }), 'process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"');
  rejects((s) => (s.process.rlimits[0].soft = 2048), "process.rlimits[0]: soft limit 2048 is greater than hard limit 1024");
  rejects((s) => (s.process.rlimits[0].soft = -1), "process.rlimits[0].soft: must be a non-negative integer, got -1");
  rejects((s) => delete s.process.rlimits[0].hard, "process.rlimits[0].hard: required");
  const spec = parseSpec(
    JSON.stringify(base()).replace('"hard":1024,"soft":1024', '"hard":18446744073709551615,"soft":18446744073709551615'),
    "config.json",
  );
  assert.equal(spec.process!.rlimits![0].hard, 2 ** 64);
  accepts((s) => s.process.rlimits.push({ type: "RLIMIT_CORE", soft: 0, hard: 2 ** 64 }));
});

test("other process fields", () => {
  rejects((s) => (s.process.terminal = 1), "process.terminal: must be a boolean, got number");
  rejects((s) => (s.process.consoleSize = { height: 10 }), "process.consoleSize.width: required");
  rejects((s) => (s.process.oomScoreAdj = 1001), "process.oomScoreAdj: must be from -1000 to 1000, got 1001");
  rejects((s) => (s.process.ioPriority = { class: "IOPRIO_CLASS_X", priority: 1 }),
    'process.ioPriority.class: unknown I/O priority class "IOPRIO_CLASS_X" (known: IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE)');
  rejects((s) => (s.process.ioPriority = { class: "IOPRIO_CLASS_BE", priority: 8 }), "process.ioPriority.priority: must be from 0 to 7, got 8");
  rejects((s) => (s.process.scheduler = { nice: 1 }), "process.scheduler.policy: required");
  rejects((s) => (s.process.scheduler = { policy: "SCHED_OTHER", nice: 20 }), "process.scheduler.nice: must be from -20 to 19, got 20");
  rejects((s) => (s.process.scheduler = { policy: "SCHED_OTHER", priority: 5 }), "process.scheduler.priority: only applies to SCHED_FIFO and SCHED_RR, not SCHED_OTHER");
  rejects((s) => (s.process.scheduler = { policy: "SCHED_RR", runtime: 5 }), "process.scheduler: runtime, deadline and period only apply to SCHED_DEADLINE, not SCHED_RR");
  rejects((s) => (s.process.execCPUAffinity = { initial: "3-1" }), 'process.execCPUAffinity.initial: invalid CPU list "3-1" (want a list like "0-3,7")');
  accepts((s) => {
    s.process.scheduler = { policy: "SCHED_DEADLINE", runtime: 1, deadline: 2, period: 3, flags: ["SCHED_FLAG_RECLAIM"] };
    s.process.execCPUAffinity = { initial: "0-3,7", final: "1" };
    s.process.ioPriority = { class: "IOPRIO_CLASS_IDLE", priority: 0 };
    s.process.oomScoreAdj = -1000;
  });
});

test("null means absent for optional fields, and is dropped from the result", () => {
  const spec = accepts((s) => {
    s.process.env = null;
    s.mounts = null;
    s.hostname = null;
  });
  assert.equal("env" in spec.process!, false);
  assert.equal("mounts" in spec, false);
  rejects((s) => (s.process.cwd = null), "process.cwd: required");
});

test("validateSpec does not change its argument", () => {
  const s = base();
  s.process.env = null;
  const before = JSON.stringify(s);
  validateSpec(s);
  assert.equal(JSON.stringify(s), before);
});

// ---- hostname, namespaces ----------------------------------------------------------------------------

test("hostname and domainname need a uts namespace", () => {
  const noUts = (s: Json) => (s.linux.namespaces = s.linux.namespaces.filter((n: Json) => n.type !== "uts"));
  rejects(noUts, 'hostname: needs its own uts namespace (no "uts" entry in linux.namespaces)');
  rejects((s) => {
    noUts(s);
    delete s.hostname;
    s.domainname = "example.com";
  }, 'domainname: needs its own uts namespace (no "uts" entry in linux.namespaces)');
  accepts((s) => {
    noUts(s);
    s.hostname = "";
  });
  rejects((s) => delete s.linux, 'hostname: needs its own uts namespace (no "uts" entry in linux.namespaces)');
});

test("namespace types are known and unique", () => {
  rejects((s) => s.linux.namespaces.push({ type: "foo" }),
    'linux.namespaces[6].type: unknown namespace type "foo" (known: pid, network, mount, ipc, uts, user, cgroup, time)');
  rejects((s) => s.linux.namespaces.push({ type: "pid" }), 'linux.namespaces[6].type: duplicate namespace "pid"');
  rejects((s) => (s.linux.namespaces[1].path = "run/netns/x"), 'linux.namespaces[1].path: must be an absolute path, got "run/netns/x"');
  accepts((s) => s.linux.namespaces.push({ type: "time" }));
});

test("user namespace needs uid and gid mappings with size > 0", () => {
  const map = [{ containerID: 0, hostID: 100000, size: 65536 }];
  rejects((s) => s.linux.namespaces.push({ type: "user" }), "linux.uidMappings: required with a new user namespace");
  rejects((s) => {
    s.linux.namespaces.push({ type: "user" });
    s.linux.uidMappings = map;
  }, "linux.gidMappings: required with a new user namespace");
  rejects((s) => {
    s.linux.namespaces.push({ type: "user" });
    s.linux.uidMappings = map;
    s.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 0 }];
  }, "linux.gidMappings[0].size: must be greater than 0");
  rejects((s) => (s.linux.uidMappings = map), 'linux.uidMappings: set, but there is no "user" entry in linux.namespaces');
  accepts((s) => {
    s.linux.namespaces.push({ type: "user" });
    s.linux.uidMappings = map;
    s.linux.gidMappings = map;
  });
  // Joining a user namespace takes that namespace's mappings.
  accepts((s) => s.linux.namespaces.push({ type: "user", path: "/proc/1/ns/user" }));
});

// ---- mounts ------------------------------------------------------------------------------------------

test("mounts: destination, options, bind source, idmapped mounts", () => {
  rejects((s) => delete s.mounts[2].destination, "mounts[2].destination: required");
  rejects((s) => (s.mounts[0].destination = ""), "mounts[0].destination: must not be empty");
  rejects((s) => s.mounts.push({ destination: "/data", options: ["rbind"] }), "mounts[7].source: required for a bind mount");
  rejects((s) => (s.mounts[1].options = ["nosuid", ""]), "mounts[1].options[1]: must not be empty");
  rejects((s) => (s.mounts[1].options = ["nosuid", 5]), "mounts[1].options[1]: must be a string, got number");
  const map = [{ containerID: 0, hostID: 1000, size: 1 }];
  rejects((s) => s.mounts.push({ destination: "/d", source: "/s", options: ["bind"], uidMappings: map }),
    "mounts[7]: uidMappings and gidMappings must be given together");
  rejects((s) => s.mounts.push({ destination: "/d", source: "tmpfs", type: "tmpfs", uidMappings: map, gidMappings: map }),
    'mounts[7]: an idmapped mount needs the "bind" or "rbind" option');
  rejects((s) => s.mounts.push({ destination: "/d", type: "tmpfs", options: ["ridmap"] }), 'mounts[7]: an idmapped mount needs the "bind" or "rbind" option');
  rejects((s) => s.mounts.push({ destination: "/d", source: "/s", options: ["bind"], uidMappings: [{ containerID: 0, hostID: 1, size: 0 }], gidMappings: map }),
    "mounts[7].uidMappings[0].size: must be greater than 0");
  // Unknown options are filesystem data; relative destinations (OCI 1.0) are rootfs-relative.
  accepts((s) => s.mounts.push({ destination: "data", type: "tmpfs", source: "tmpfs", options: ["size=64m", "mode=755", "uid=1000"] }));
  accepts((s) => s.mounts.push({ destination: "/d", source: "/s", options: ["rbind", "rro", "idmap"], uidMappings: map, gidMappings: map }));
});

test("mountDestination makes OCI 1.0 relative destinations absolute", () => {
  assert.equal(mountDestination("/proc"), "/proc");
  assert.equal(mountDestination("data/x"), "/data/x");
});

// ---- linux ---------------------------------------------------------------------------------------------

test("devices", () => {
  rejects((s) => (s.linux.devices = [{ type: "x", path: "/dev/x" }]), 'linux.devices[0].type: unknown device type "x" (known: c, b, u, p)');
  rejects((s) => (s.linux.devices = [{ type: "c", path: "dev/null", major: 1, minor: 3 }]), 'linux.devices[0].path: must be an absolute path, got "dev/null"');
  rejects((s) => (s.linux.devices = [{ type: "c", path: "/dev/null", major: 1 }]), 'linux.devices[0].minor: required for a device of type "c"');
  accepts((s) => (s.linux.devices = [{ type: "p", path: "/dev/fifo" }, { type: "b", path: "/dev/sda", major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 6 }]));
});

test("sysctl needs the namespace that owns it", () => {
  const without = (type: string) => (s: Json) => (s.linux.namespaces = s.linux.namespaces.filter((n: Json) => n.type !== type));
  const sysctl = (name: string, drop?: string) => (s: Json) => {
    if (drop) without(drop)(s);
    s.linux.sysctl = { [name]: "1" };
  };
  rejects(sysctl("net.ipv4.ip_forward", "network"), 'linux.sysctl["net.ipv4.ip_forward"]: needs its own network namespace (no "network" entry in linux.namespaces)');
  rejects(sysctl("net/ipv4/conf/eth0.100/rp_filter", "network"),
    'linux.sysctl["net/ipv4/conf/eth0.100/rp_filter"]: needs its own network namespace (no "network" entry in linux.namespaces)');
  rejects(sysctl("kernel.shmmax", "ipc"), 'linux.sysctl["kernel.shmmax"]: needs its own ipc namespace (no "ipc" entry in linux.namespaces)');
  rejects(sysctl("kernel.msgmnb", "ipc"), 'linux.sysctl["kernel.msgmnb"]: needs its own ipc namespace (no "ipc" entry in linux.namespaces)');
  rejects(sysctl("kernel.sem", "ipc"), 'linux.sysctl["kernel.sem"]: needs its own ipc namespace (no "ipc" entry in linux.namespaces)');
  rejects(sysctl("fs.mqueue.msg_max", "ipc"), 'linux.sysctl["fs.mqueue.msg_max"]: needs its own ipc namespace (no "ipc" entry in linux.namespaces)');
  rejects((s) => {
    sysctl("kernel.domainname", "uts")(s);
    delete s.hostname;
  }, 'linux.sysctl["kernel.domainname"]: needs its own uts namespace (no "uts" entry in linux.namespaces)');
  rejects(sysctl("kernel.pid_max"), 'linux.sysctl["kernel.pid_max"]: is not in a separate kernel namespace, so a container cannot set it');
  rejects(sysctl("vm.swappiness"), 'linux.sysctl["vm.swappiness"]: is not in a separate kernel namespace, so a container cannot set it');
  rejects((s) => (s.linux.sysctl = { "net.core.somaxconn": 1024 }), 'linux.sysctl["net.core.somaxconn"]: must be a string, got number');
  accepts((s) => (s.linux.sysctl = {
    "net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1", "fs.mqueue.queues_max": "8", "kernel.hostname": "x", "kernel.domainname": "y",
  }));
});

test("cgroupsPath forms", () => {
  assert.deepEqual(parseCgroupsPath("system.slice:docker:abc"), { kind: "systemd", slice: "system.slice", prefix: "docker", name: "abc" });
  assert.deepEqual(parseCgroupsPath(":berth:abc"), { kind: "systemd", slice: "", prefix: "berth", name: "abc" });
  assert.deepEqual(parseCgroupsPath("/berth/abc"), { kind: "path", path: "/berth/abc" });
  assert.deepEqual(parseCgroupsPath("berth/abc"), { kind: "path", path: "berth/abc" });
  rejects((s) => (s.linux.cgroupsPath = "a:b"), 'linux.cgroupsPath: "a:b" must be "slice:prefix:name" for systemd or a path for cgroupfs');
  rejects((s) => (s.linux.cgroupsPath = "system:docker:abc"), 'linux.cgroupsPath: "system" is not a systemd slice (must end in ".slice")');
  rejects((s) => (s.linux.cgroupsPath = "system.slice:docker:"), 'linux.cgroupsPath: "system.slice:docker:" has an empty name');
  rejects((s) => (s.linux.cgroupsPath = 7), "linux.cgroupsPath: must be a string, got number");
  accepts((s) => (s.linux.cgroupsPath = "/berth/abc"));
});

test("resources", () => {
  const res = (r: Json) => (s: Json) => Object.assign(s.linux.resources, r);
  rejects(res({ devices: [{ allow: true, access: "rwx" }] }), 'linux.resources.devices[0].access: must be a combination of "r", "w" and "m", got "rwx"');
  rejects(res({ devices: [{ access: "r" }] }), "linux.resources.devices[0].allow: required");
  rejects(res({ devices: [{ allow: true, type: "p", access: "r" }] }), 'linux.resources.devices[0].type: unknown device type "p" (known: a, b, c)');
  rejects(res({ memory: { limit: "1g" } }), "linux.resources.memory.limit: must be a 64-bit integer, got string");
  rejects(res({ memory: { limit: -2 } }), "linux.resources.memory.limit: must be -1 (unlimited) or a byte count, got -2");
  rejects(res({ memory: { swappiness: 101 } }), "linux.resources.memory.swappiness: must be from 0 to 100, got 101");
  rejects(res({ memory: { limit: 1000, swap: 500 } }), "linux.resources.memory.swap: 500 is less than memory.limit 1000 (swap is the memory+swap total)");
  rejects(res({ cpu: { shares: -1 } }), "linux.resources.cpu.shares: must be a non-negative integer, got -1");
  rejects(res({ cpu: { cpus: "0-3,a" } }), 'linux.resources.cpu.cpus: invalid CPU list "0-3,a" (want a list like "0-3,7")');
  rejects(res({ pids: {} }), "linux.resources.pids.limit: required");
  rejects(res({ blockIO: { weight: 70000 } }), "linux.resources.blockIO.weight: must be an integer from 0 to 65535, got 70000");
  rejects(res({ blockIO: { throttleReadBpsDevice: [{ major: 8, minor: 0 }] } }), "linux.resources.blockIO.throttleReadBpsDevice[0].rate: required");
  rejects(res({ hugepageLimits: [{ pageSize: "2M", limit: 0 }] }), 'linux.resources.hugepageLimits[0].pageSize: invalid page size "2M" (want e.g. "2MB", "1GB")');
  rejects(res({ network: { priorities: [{ name: "eth0" }] } }), "linux.resources.network.priorities[0].priority: required");
  rejects(res({ unified: { "../memory.max": "1" } }), 'linux.resources.unified["../memory.max"]: must be a cgroup file name (no slashes)');
  rejects(res({ rdma: { mlx5_0: { hcaHandles: -3 } } }), 'linux.resources.rdma["mlx5_0"].hcaHandles: must be an integer from 0 to 4294967295, got -3');
  accepts(res({
    devices: [{ allow: true, type: "c", major: 1, minor: null, access: "rwm" }],
    memory: { limit: 1 << 30, reservation: -1, swap: -1, swappiness: 0, disableOOMKiller: false },
    cpu: { shares: 1024, quota: -1, period: 100000, cpus: "0-1", mems: "0", idle: 0 },
    pids: { limit: -1 },
    blockIO: { weight: 500, weightDevice: [{ major: 8, minor: 0, weight: 100 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 100 }] },
    hugepageLimits: [{ pageSize: "2MB", limit: 0 }],
    network: { classID: 1, priorities: [{ name: "eth0", priority: 1 }] },
    rdma: { mlx5_0: { hcaHandles: 3, hcaObjects: 1000 } },
    unified: { "memory.high": "max" },
  }));
});

test("seccomp structure", () => {
  const sc = (seccomp: Json) => (s: Json) => (s.linux.seccomp = seccomp);
  rejects(sc({ syscalls: [] }), "linux.seccomp.defaultAction: required");
  rejects(sc({ defaultAction: "SCMP_ACT_DENY" }), 'linux.seccomp.defaultAction: unknown seccomp action "SCMP_ACT_DENY" (known: ' +
    "SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_NOTIFY)");
  rejects(sc({ defaultAction: "SCMP_ACT_NOTIFY", listenerPath: "/run/l.sock" }), "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action");
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_Z80"] }), 'linux.seccomp.architectures[0]: unknown seccomp architecture "SCMP_ARCH_Z80" (known: ' +
    "SCMP_ARCH_X86, SCMP_ARCH_X86_64, SCMP_ARCH_X32, SCMP_ARCH_ARM, SCMP_ARCH_AARCH64, SCMP_ARCH_MIPS, SCMP_ARCH_MIPS64, SCMP_ARCH_MIPS64N32, SCMP_ARCH_MIPSEL, " +
    "SCMP_ARCH_MIPSEL64, SCMP_ARCH_MIPSEL64N32, SCMP_ARCH_PPC, SCMP_ARCH_PPC64, SCMP_ARCH_PPC64LE, SCMP_ARCH_S390, SCMP_ARCH_S390X, SCMP_ARCH_PARISC, " +
    "SCMP_ARCH_PARISC64, SCMP_ARCH_RISCV64, SCMP_ARCH_LOONGARCH64, SCMP_ARCH_M68K, SCMP_ARCH_SH, SCMP_ARCH_SHEB)");
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", flags: ["SECCOMP_FILTER_FLAG_X"] }), 'linux.seccomp.flags[0]: unknown seccomp flag "SECCOMP_FILTER_FLAG_X" (known: ' +
    "SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)");
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: [], action: "SCMP_ACT_ALLOW" }] }), "linux.seccomp.syscalls[0].names: must have at least one element");
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"] }] }), "linux.seccomp.syscalls[0].action: required");
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", args: [{ index: 6, value: 0, op: "SCMP_CMP_EQ" }] }] }),
    "linux.seccomp.syscalls[0].args[0].index: must be from 0 to 5 (a syscall has 6 arguments), got 6");
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["read"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0, op: "EQ" }] }] }),
    'linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator "EQ" (known: SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ)');
  rejects(sc({ defaultAction: "SCMP_ACT_ERRNO", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_NOTIFY" }] }),
    "linux.seccomp.listenerPath: required when an action is SCMP_ACT_NOTIFY");
  // Syscall names are not checked here: unknown ones are the seccomp compiler's business.
  accepts(sc({
    defaultAction: "SCMP_ACT_ERRNO", defaultErrnoRet: 1, architectures: ["SCMP_ARCH_X86_64"], flags: ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    listenerPath: "/run/l.sock",
    syscalls: [
      { names: ["read", "no_such_syscall"], action: "SCMP_ACT_ALLOW" },
      { names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 8, valueTwo: 0, op: "SCMP_CMP_EQ" }] },
      { names: ["mkdir"], action: "SCMP_ACT_NOTIFY" },
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 },
    ],
  }));
});

test("hooks: absolute path, timeout > 0", () => {
  rejects((s) => (s.hooks = { prestart: [{ path: "hook" }] }), 'hooks.prestart[0].path: must be an absolute path, got "hook"');
  rejects((s) => (s.hooks = { poststop: [{ args: [] }] }), "hooks.poststop[0].path: required");
  rejects((s) => (s.hooks = { createRuntime: [{ path: "/bin/h", timeout: 0 }] }), "hooks.createRuntime[0].timeout: must be greater than 0, got 0");
  rejects((s) => (s.hooks = { startContainer: [{ path: "/bin/h", env: [1] }] }), "hooks.startContainer[0].env[0]: must be a string, got number");
  rejects((s) => (s.hooks = { poststart: {} }), "hooks.poststart: must be an array, got object");
  accepts((s) => (s.hooks = { createContainer: [{ path: "/bin/h", args: ["h", "x"], env: ["A=1"], timeout: 5 }], unknownKind: 1 }));
});

test("personality, rootfsPropagation, masked paths, time offsets, annotations", () => {
  rejects((s) => (s.linux.personality = { domain: "LINUX64" }), 'linux.personality.domain: unknown personality domain "LINUX64" (known: LINUX, LINUX32)');
  accepts((s) => (s.linux.personality = { domain: "LINUX32" }));
  rejects((s) => (s.linux.rootfsPropagation = "recursive"),
    'linux.rootfsPropagation: unknown propagation "recursive" (known: private, rprivate, shared, rshared, slave, rslave, unbindable, runbindable)');
  accepts((s) => (s.linux.rootfsPropagation = "rslave"));
  rejects((s) => s.linux.maskedPaths.push("proc/kcore"), 'linux.maskedPaths[10]: must be an absolute path, got "proc/kcore"');
  rejects((s) => (s.linux.namespaces = s.linux.namespaces.filter((n: Json) => n.type !== "mount")),
    'linux.maskedPaths: needs its own mount namespace (no "mount" entry in linux.namespaces)');
  rejects((s) => (s.linux.timeOffsets = { monotonic: { secs: 10 } }), 'linux.timeOffsets: needs its own time namespace (no "time" entry in linux.namespaces)');
  rejects((s) => (s.linux.timeOffsets = { realtime: { secs: 10 } }), 'linux.timeOffsets["realtime"]: unknown clock (known: boottime, monotonic)');
  accepts((s) => {
    s.linux.namespaces.push({ type: "time" });
    s.linux.timeOffsets = { monotonic: { secs: 10, nanosecs: 5 }, boottime: { secs: -3 } };
  });
  rejects((s) => (s.linux.intelRdt = { closID: "../x" }), 'linux.intelRdt.closID: invalid name "../x"');
  rejects((s) => (s.annotations = { "org.example": true }), 'annotations["org.example"]: must be a string, got boolean');
  accepts((s) => (s.annotations = { "org.example/key": "v" }));
});

test("isCpuList", () => {
  for (const ok of ["", "0", "0-3", "0-3,7", "1,2,3", "4-4"]) assert.ok(isCpuList(ok), ok);
  for (const bad of ["a", "0-", "-1", "3-1", "0,,1", " 0"]) assert.ok(!isCpuList(bad), bad);
});

// ---- namespace paths -----------------------------------------------------------------------------------

function withNs(ns: Json[], sysctl?: Record<string, string>): Spec {
  const s = base();
  s.linux.namespaces = ns;
  if (sysctl) s.linux.sysctl = sysctl;
  return s as Spec;
}

test("checkNamespacePaths reads /proc/<pid>/ns links", () => {
  checkNamespacePaths(withNs([{ type: "network", path: "/proc/self/ns/net" }, { type: "mount", path: "/proc/self/ns/mnt" }, { type: "uts" }]));
  throwsPath(() => checkNamespacePaths(withNs([{ type: "network", path: "/proc/self/ns/ipc" }])),
    'linux.namespaces[0].path: "/proc/self/ns/ipc" is a ipc namespace, not net');
  throwsPath(() => checkNamespacePaths(withNs([{ type: "pid" }, { type: "ipc", path: "/nonexistent/ns/ipc" }])),
    'linux.namespaces[1].path: "/nonexistent/ns/ipc" does not exist');
});

test("checkNamespacePaths: files and symlinks that are not namespaces", () => {
  const dir = mkdtempSync(join(tmpdir(), "berth-ns-"));
  try {
    writeFileSync(join(dir, "file"), "x");
    symlinkSync("/proc/self/ns/uts", join(dir, "link"));
    symlinkSync(join(dir, "file"), join(dir, "filelink"));
    throwsPath(() => checkNamespacePaths(withNs([{ type: "network", path: join(dir, "file") }])),
      `linux.namespaces[0].path: "${join(dir, "file")}" is not a namespace file`);
    throwsPath(() => checkNamespacePaths(withNs([{ type: "network", path: join(dir, "filelink") }])),
      `linux.namespaces[0].path: "${join(dir, "filelink")}" is not a namespace file`);
    // A symlink to a namespace link is judged by what it finally points at.
    checkNamespacePaths(withNs([{ type: "uts", path: join(dir, "link") }]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("checkNamespacePaths: bind-mounted namespace files are found in mountinfo", () => {
  const einval = Object.assign(new Error("EINVAL"), { code: "EINVAL" });
  const fake: NamespaceFs = {
    readlink: () => {
      throw einval;
    },
    realpath: (p) => p,
    readFile: () =>
      "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
      "600 25 0:4 net:[4026532999] /run/netns/my\\040ns rw - nsfs nsfs rw\n",
    identity: (p) => (p === "/proc/self/ns/net" ? "4:1" : "4:4026532999"),
  };
  checkNamespacePaths(withNs([{ type: "network", path: "/run/netns/my ns" }], { "net.ipv4.ip_forward": "1" }), fake);
  throwsPath(() => checkNamespacePaths(withNs([{ type: "ipc", path: "/run/netns/my ns" }]), fake),
    'linux.namespaces[0].path: "/run/netns/my ns" is a net namespace, not ipc');
  throwsPath(() => checkNamespacePaths(withNs([{ type: "network", path: "/run/netns/other" }]), fake),
    'linux.namespaces[0].path: "/run/netns/other" is not a namespace file');
});

test("checkNamespacePaths refuses net.* sysctls in the host's network namespace", () => {
  throwsPath(() => checkNamespacePaths(withNs([{ type: "network", path: "/proc/self/ns/net" }], { "net.ipv4.ip_forward": "1" })),
    'linux.sysctl["net.ipv4.ip_forward"]: not allowed in the host\'s network namespace');
  checkNamespacePaths(withNs([{ type: "network", path: "/proc/self/ns/net" }], { "kernel.shmmax": "1" }));
});

// ---- mount options -------------------------------------------------------------------------------------

test("parseMountOptions: flags, clears, data", () => {
  const dev = parseMountOptions(["nosuid", "strictatime", "mode=755", "size=65536k"]);
  assert.equal(dev.flags, MS_NOSUID | MS_STRICTATIME);
  assert.equal(dev.clearFlags, 0);
  assert.deepEqual(dev.data, ["mode=755", "size=65536k"]);
  assert.deepEqual(dev.propagation, []);
  assert.deepEqual(dev.recursive, { set: 0, clear: 0 });

  const sys = parseMountOptions(["nosuid", "noexec", "nodev", "relatime", "ro"]);
  assert.equal(sys.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY);
  assert.equal(mountFlagNames(sys.flags), "MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_RELATIME");

  // Later options win; a clear is remembered so a remount does not keep the flag.
  const rw = parseMountOptions(["ro", "rw", "suid"]);
  assert.equal(rw.flags, 0);
  assert.equal(rw.clearFlags, MS_RDONLY | MS_NOSUID);
  const ro = parseMountOptions(["rw", "ro"]);
  assert.equal(ro.flags, MS_RDONLY);
  assert.equal(ro.clearFlags, 0);

  assert.equal(parseMountOptions(["rbind"]).flags, MS_BIND | MS_REC);
  assert.equal(parseMountOptions(["defaults"]).flags, 0);
  assert.deepEqual(parseMountOptions(["defaults"]).data, []);
  // "acl" has no mount flag userspace may pass: it stays fs data, as in runc.
  assert.deepEqual(parseMountOptions(["acl", "newinstance", "ptmxmode=0666"]).data, ["acl", "newinstance", "ptmxmode=0666"]);
});

test("parseMountOptions: propagation, recursive attributes, extensions", () => {
  const p = parseMountOptions(["rbind", "rprivate", "shared", "slave", "runbindable"]);
  assert.deepEqual(p.propagation, [MS_PRIVATE | MS_REC, MS_SHARED, MS_SLAVE, MS_UNBINDABLE | MS_REC]);

  const r = parseMountOptions(["rbind", "rro", "rnosuid", "rnoatime"]);
  assert.equal(r.recursive.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME);
  assert.equal(r.recursive.clear, MOUNT_ATTR__ATIME);
  const rw = parseMountOptions(["rro", "rrw"]);
  assert.deepEqual(rw.recursive, { set: 0, clear: MOUNT_ATTR_RDONLY });
  // relatime is 0 in mount_attr: setting it means clearing the atime field.
  assert.deepEqual(parseMountOptions(["rrelatime"]).recursive, { set: 0, clear: MOUNT_ATTR__ATIME });

  assert.equal(parseMountOptions(["tmpcopyup"]).tmpcopyup, true);
  assert.deepEqual(parseMountOptions(["tmpcopyup"]).data, []);
  assert.deepEqual(parseMountOptions(["bind", "idmap"]).idmap, { recursive: false });
  assert.deepEqual(parseMountOptions(["rbind", "ridmap"]).idmap, { recursive: true });
  assert.equal(parseMountOptions(["bind"]).idmap, null);
  assert.equal(MOUNT_ATTR_IDMAP, 0x100000);
});

test("knownMountOptions lists every table entry", () => {
  const known = knownMountOptions();
  for (const o of ["bind", "rbind", "ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "dirsync", "remount",
    "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime",
    "nolazytime", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable", "silent", "loud", "iversion",
    "noiversion", "tmpcopyup", "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime", "idmap", "ridmap"]) {
    assert.ok(known.includes(o), o);
  }
  assert.deepEqual(known, [...known].sort());
  assert.ok(!known.includes("mode=755"));
});
