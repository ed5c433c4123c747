export * from "./outcome.js";
export * from "./runner.js";
export { TARGETS, type Target } from "./targets/index.js";

/** The CI mix: 10,500 cases, weighted to the cheap targets so a run stays near a minute on 2 cores. */
export const DEFAULT_CASES: Record<string, number> = {
  safetensors: 3000,
  config: 2000,
  tokenizer: 1500,
  checkpoint: 1500,
  native: 2500,
};
