export { DeviceBuffer } from "./buffer.js";
export * from "./device.js";
export { NATIVE_PATH_ENV, type NativeAddon, type NativeCudaStatus, native, typedError } from "./native.js";
export { patternHost, writePattern } from "./pattern.js";
export { CudaEvent, Stream } from "./stream.js";
export { type Operand, isDevice } from "./operand.js";
export { MarlinWorkspace } from "./workspace.js";
export {
  marlinMatmul,
  marlinShapeRefusal,
  numGroups,
  type MarlinMatmulArgs,
  type MarlinWeights,
  type HostMarlinWeights,
  type DeviceMarlinWeights,
  type MarlinTuning,
  type WeightBits,
} from "./marlin.js";
export { MarlinLayer, type LayerOptions, type ForwardOptions, type Placement } from "./layer.js";
export { denseMatmul, DenseLayer, cublasStatus, type DenseMatmulArgs, type DenseLayerOptions, type CublasStatus } from "./dense.js";
export {
  registerKernels,
  QUANT_MATMUL_OP,
  DENSE_MATMUL_OP,
  marlinCuda,
  marlinCpu,
  cublasFp16,
  denseCpu,
} from "./register.js";
