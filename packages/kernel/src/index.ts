export { type AddonChoice, type AddonMeta, type AddonOrigin, type HostFacts, hostFacts, type Rejection, selectAddon } from "./addon-select.js";
export { DeviceBuffer } from "./buffer.js";
export { type CublasStatus, cublasStatus, DenseLayer, type DenseLayerOptions, type DenseMatmulArgs, denseMatmul } from "./dense.js";
export {
  type DequantMatmulArgs,
  DequantScratch,
  type DequantScratchOptions,
  dequantMatmul,
  dequantScratchBytes,
} from "./dequant.js";
export * from "./device.js";
export {
  type HopperMatmulArgs,
  type HopperStatus,
  type HopperTuning,
  hasHopperBindings,
  hopperMatmul,
  hopperShapeRefusal,
  hopperStatus,
  hopperWorkspaceBytes,
} from "./hopper.js";
export { DEQUANT_MIN_M, dequantCublas, HOPPER_MIN_M, marlinHopper } from "./hopper-impls.js";
export { type ForwardOptions, type LayerOptions, MarlinLayer, type Placement } from "./layer.js";
export {
  biasBits,
  builtWithCuda,
  cublasFp16,
  DENSE_MATMUL_OP,
  type DeviceArg,
  type DeviceLinear,
  denseCpu,
  dequantDense,
  dequantDenseCuda,
  dequantizedNk,
  deviceIndex,
  f16BitsAs,
  fp16HostApply,
  type HostLinear,
  marlinCpu,
  marlinCuda,
  matmulFit,
  placedFit,
  QUANT_MATMUL_OP,
  uploadAll,
  view,
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
export { NATIVE_PATH_ENV, type NativeAddon, type NativeCudaStatus, type NativeInfo, native, nativeInfo, typedError } from "./native.js";
export { isDevice, type Operand } from "./operand.js";
export { patternHost, writePattern } from "./pattern.js";
export { registerKernels } from "./register.js";
export { CudaEvent, holdDevice, Stream } from "./stream.js";
export { MarlinWorkspace } from "./workspace.js";
