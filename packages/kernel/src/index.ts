export { type AddonChoice, type AddonMeta, type AddonOrigin, type HostFacts, hostFacts, type Rejection, selectAddon } from "./addon-select.js";
export { DeviceBuffer } from "./buffer.js";
export { type CublasStatus, cublasStatus, DenseLayer, type DenseLayerOptions, type DenseMatmulArgs, denseMatmul } from "./dense.js";
export * from "./device.js";
export { type ForwardOptions, type LayerOptions, MarlinLayer, type Placement } from "./layer.js";
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
export { NATIVE_PATH_ENV, type NativeAddon, type NativeCudaStatus, type NativeInfo, native, nativeInfo, typedError } from "./native.js";
export { isDevice, type Operand } from "./operand.js";
export { patternHost, writePattern } from "./pattern.js";
export {
  cublasFp16,
  DENSE_MATMUL_OP,
  denseCpu,
  marlinCpu,
  marlinCuda,
  QUANT_MATMUL_OP,
  registerKernels,
} from "./register.js";
export { CudaEvent, holdDevice, Stream } from "./stream.js";
export { MarlinWorkspace } from "./workspace.js";
