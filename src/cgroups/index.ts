// The cgroup layer: detect the host layout, plan a container's cgroup (pure), carry the plan out.

export * from "./types.js";
export * from "./host.js";
export * from "./common.js";
export * from "./v1.js";
export * from "./v2.js";
export * from "./plan.js";
export * from "./device-filter.js";
export * from "./effects.js";
