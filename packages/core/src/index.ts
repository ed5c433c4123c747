export * from "./errors.js";
export * from "./dtypes.js";
export * from "./device.js";
export * from "./registry.js";
export * from "./random.js";
