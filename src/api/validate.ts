// Request validation for the Engine API: bodies that are not JSON or have fields of the wrong type are
// refused with 400 and the field's name, as docker does.

import { badRequest } from "../daemon/util.js";

type Kind = "string" | "number" | "boolean" | "string[]" | "map" | "object" | "array" | "number[]";

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function check(v: unknown, kind: Kind, field: string): void {
  if (v === undefined || v === null) return;
  const ok = (() => {
    switch (kind) {
      case "string": return typeof v === "string";
      case "number": return typeof v === "number" && Number.isFinite(v);
      case "boolean": return typeof v === "boolean";
      case "string[]": return Array.isArray(v) && v.every((x) => typeof x === "string");
      case "number[]": return Array.isArray(v) && v.every((x) => typeof x === "number");
      case "map": return typeof v === "object" && !Array.isArray(v) && Object.values(v as object).every((x) => typeof x === "string");
      case "object": return typeof v === "object" && !Array.isArray(v);
      case "array": return Array.isArray(v);
    }
  })();
  if (!ok) {
    const want = { "string[]": "[]string", "number[]": "[]int", map: "map[string]string", object: "object", array: "array", string: "string", number: "number", boolean: "bool" }[kind];
    throw badRequest(`json: cannot unmarshal ${kindOf(v)} into Go struct field ${field} of type ${want}`);
  }
}

export function parseJsonBody(text: string, what = "request body"): Record<string, unknown> {
  if (text.trim() === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw badRequest(`invalid JSON in the ${what}: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw badRequest(`invalid JSON in the ${what}: expected an object`);
  return v as Record<string, unknown>;
}

const CONFIG_FIELDS: Record<string, Kind> = {
  Hostname: "string", Domainname: "string", User: "string", AttachStdin: "boolean", AttachStdout: "boolean", AttachStderr: "boolean",
  ExposedPorts: "object", Tty: "boolean", OpenStdin: "boolean", StdinOnce: "boolean", Env: "string[]", Cmd: "string[]",
  Healthcheck: "object", Image: "string", Volumes: "object", WorkingDir: "string", Entrypoint: "string[]", Labels: "map",
  StopSignal: "string", StopTimeout: "number", NetworkDisabled: "boolean", MacAddress: "string", Shell: "string[]",
};

const HOST_FIELDS: Record<string, Kind> = {
  Binds: "string[]", LogConfig: "object", NetworkMode: "string", PortBindings: "object", RestartPolicy: "object", AutoRemove: "boolean",
  CapAdd: "string[]", CapDrop: "string[]", Privileged: "boolean", ReadonlyRootfs: "boolean", SecurityOpt: "string[]", Tmpfs: "map",
  CpuShares: "number", Memory: "number", NanoCpus: "number", CpuPeriod: "number", CpuQuota: "number", CpusetCpus: "string",
  MemorySwap: "number", MemoryReservation: "number", PidsLimit: "number", Mounts: "array", Init: "boolean", ConsoleSize: "number[]",
  Dns: "string[]", ExtraHosts: "string[]", GroupAdd: "string[]", Ulimits: "array", DnsSearch: "string[]", DnsOptions: "string[]",
  PublishAllPorts: "boolean", ShmSize: "number", Sysctls: "map", Devices: "array", PidMode: "string", IpcMode: "string", UTSMode: "string",
  CgroupnsMode: "string", OomKillDisable: "boolean", MaskedPaths: "string[]", ReadonlyPaths: "string[]",
};

const HEALTH_FIELDS: Record<string, Kind> = { Test: "string[]", Interval: "number", Timeout: "number", Retries: "number", StartPeriod: "number", StartInterval: "number" };

function checkFields(obj: Record<string, unknown>, fields: Record<string, Kind>, struct: string): void {
  for (const [k, kind] of Object.entries(fields)) check(obj[k], kind, `${struct}.${k}`);
}

/**
 * docker's strslice.StrSlice (Config.Cmd, Entrypoint, Shell) takes a lone string as a one-element list:
 * made a list here, in place, so everything after sees a list.
 */
export function normaliseStrSlices(config: Record<string, unknown>): void {
  for (const key of ["Cmd", "Entrypoint", "Shell"]) if (typeof config[key] === "string") config[key] = [config[key]];
}

/** The body of POST /containers/create: docker's Config with HostConfig inside (Cmd etc. normalised in place). */
export function validateCreateBody(body: Record<string, unknown>): void {
  normaliseStrSlices(body);
  checkFields(body, CONFIG_FIELDS, "ContainerConfigWrapper.Config");
  if (body.Healthcheck) checkFields(body.Healthcheck as Record<string, unknown>, HEALTH_FIELDS, "Config.Healthcheck");
  check(body.HostConfig, "object", "ContainerConfigWrapper.HostConfig");
  const h = (body.HostConfig ?? {}) as Record<string, unknown>;
  checkFields(h, HOST_FIELDS, "HostConfig");
  if (h.RestartPolicy) {
    check((h.RestartPolicy as Record<string, unknown>).Name, "string", "HostConfig.RestartPolicy.Name");
    check((h.RestartPolicy as Record<string, unknown>).MaximumRetryCount, "number", "HostConfig.RestartPolicy.MaximumRetryCount");
  }
  if (h.LogConfig) {
    check((h.LogConfig as Record<string, unknown>).Type, "string", "HostConfig.LogConfig.Type");
    check((h.LogConfig as Record<string, unknown>).Config, "map", "HostConfig.LogConfig.Config");
  }
  for (const [i, m] of ((h.Mounts as unknown[]) ?? []).entries()) {
    check(m, "object", `HostConfig.Mounts[${i}]`);
    const mm = m as Record<string, unknown>;
    check(mm.Type, "string", "HostConfig.Mounts.Type");
    check(mm.Source, "string", "HostConfig.Mounts.Source");
    check(mm.Target, "string", "HostConfig.Mounts.Target");
    check(mm.ReadOnly, "boolean", "HostConfig.Mounts.ReadOnly");
  }
}

export function validateHostUpdate(body: Record<string, unknown>): void {
  checkFields(body, HOST_FIELDS, "UpdateConfig");
}

export function validateExecBody(body: Record<string, unknown>): void {
  checkFields(body, { Cmd: "string[]", Env: "string[]", WorkingDir: "string", User: "string", Tty: "boolean", Privileged: "boolean", AttachStdin: "boolean", AttachStdout: "boolean", AttachStderr: "boolean", DetachKeys: "string", ConsoleSize: "number[]" }, "ExecConfig");
}

export function validateVolumeBody(body: Record<string, unknown>): void {
  checkFields(body, { Name: "string", Driver: "string", DriverOpts: "map", Labels: "map" }, "CreateOptions");
}

/** Query booleans: docker takes 1/true/True and treats anything else (but absent) as false. */
export function boolParam(v: string | null, fallback = false): boolean {
  if (v === null) return fallback;
  return v === "1" || v.toLowerCase() === "true";
}

export function intParam(v: string | null, name: string): number | undefined {
  if (v === null || v === "") return undefined;
  if (!/^-?\d+$/.test(v)) throw badRequest(`invalid value for ${name}: ${v}`);
  return Number(v);
}
