export { native, typedError, NATIVE_PATH_ENV, type NativeAddon, type NativeCudaStatus } from "./native.js";
export * from "./device.js";
export { DeviceBuffer } from "./buffer.js";
export { Stream, CudaEvent } from "./stream.js";
export { writePattern, patternHost } from "./pattern.js";
