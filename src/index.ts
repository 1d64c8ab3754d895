// Berth's library API: describe a container (an OCI spec, or docker-style options turned into one)
// and run it. The CLIs are thin layers over these same functions.

export { BerthError } from "./errors.js";
export type { Spec, Process, Mount, Resources, IdMapping } from "./oci/spec.js";
export { buildRunSpec, type RunOptions, type RunFacts } from "./core/run-spec.js";
export { ensureHostImage } from "./rootfs/host-image.js";
export {
  Container,
  cleanupStale,
  newContainerId,
  runContainer,
  startContainer,
  type RunResult,
  type StartOptions,
} from "./runtime/container.js";
export { readHostFacts } from "./runtime/host-facts.js";
export { parseSpec, validateSpec } from "./oci/validate.js";
export { defaultSpec } from "./oci/default-spec.js";
