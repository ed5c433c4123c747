export * from "./communicator.js";
export { CpuTpRunner, type CpuTpOptions } from "./cpu-tp-runner.js";
export * from "./layout.js";
export * from "./rank-model.js";
export * from "./rank-sources.js";
export * from "./shard.js";
export * from "./shard-linear.js";
export * from "./shm-communicator.js";
