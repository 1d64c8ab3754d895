export {
  AUDIT_ARCH,
  ENOSYS,
  EPERM,
  SECCOMP_FILTER_FLAGS,
  SECCOMP_RET,
  X32_SYSCALL_BIT,
  compileSeccomp,
  compileSeccompCached,
  filterFlags,
  scmpArchOf,
  syscallNumber,
} from "./compile.js";
export type { CompileOptions, CompiledSeccomp } from "./compile.js";
export { dockerDefaultProfile } from "./docker-default.js";
export type { DockerProfileOptions } from "./docker-default.js";
export { BPF_MAXINSNS, disassemble } from "./bpf.js";
export { describeAction, runFilter, seccompData } from "./interpret.js";
export type { SeccompData } from "./interpret.js";
