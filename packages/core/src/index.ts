export * from "./device.js";
export * from "./dtypes.js";
export * from "./errors.js";
export * from "./linear.js";
export * from "./metrics.js";
export * from "./random.js";
export * from "./registry.js";
