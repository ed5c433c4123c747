export { DeviceBuffer } from "./buffer.js";
export { type CublasStatus, cublasStatus, DenseLayer, type DenseLayerOptions, type DenseMatmulArgs, denseMatmul } from "./dense.js";
export * from "./device.js";
export { type ForwardOptions, type LayerOptions, MarlinLayer, type Placement } from "./layer.js";
export {
  cublasFp16,
  DENSE_MATMUL_OP,
  type DeviceArg,
  type DeviceLinear,
  denseCpu,
  dequantDense,
  dequantDenseCuda,
  dequantizedNk,
  type HostLinear,
  marlinCpu,
  marlinCuda,
  QUANT_MATMUL_OP,
} from "./linear-impls.js";
export {
  type DeviceMarlinWeights,
  type HostMarlinWeights,
  type MarlinMatmulArgs,
  type MarlinTuning,
  type MarlinWeights,
  marlinMatmul,
  marlinShapeRefusal,
  numGroups,
  type WeightBits,
} from "./marlin.js";
export { NATIVE_PATH_ENV, type NativeAddon, type NativeCudaStatus, native, typedError } from "./native.js";
export { isDevice, type Operand } from "./operand.js";
export { patternHost, writePattern } from "./pattern.js";
export { registerKernels } from "./register.js";
export { CudaEvent, holdDevice, Stream } from "./stream.js";
export { MarlinWorkspace } from "./workspace.js";
