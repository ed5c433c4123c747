import { checkpointTarget } from "./checkpoint.js";
import { configTarget } from "./config.js";
import { nativeTarget } from "./native.js";
import { safetensorsTarget } from "./safetensors.js";
import { tokenizerTarget } from "./tokenizer.js";
import type { Target } from "./types.js";

export type { Target } from "./types.js";

/** Every target by name. */
export const TARGETS: Record<string, Target> = Object.fromEntries(
  [safetensorsTarget, configTarget, tokenizerTarget, checkpointTarget, nativeTarget].map((t) => [t.name, t]),
);
