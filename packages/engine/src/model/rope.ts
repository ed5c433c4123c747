/** Rotary position embedding tables (rotate-half layout), with linear and llama3 frequency scaling. */
import { InvalidArgumentError } from "@marlin/core";
import type { ModelConfig } from "./config.js";

/** The most entries one RoPE table may have (1 GiB of fp32). */
export const MAX_ROPE_ELEMENTS = 2 ** 28;

export function ropeInvFreq(config: ModelConfig): Float64Array {
  const dim = config.headDim;
  const half = dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / config.ropeTheta ** ((2 * i) / dim);
  const sc = config.ropeScaling;
  if (sc?.type === "linear") for (let i = 0; i < half; i++) inv[i] /= sc.factor;
  if (sc?.type === "llama3") {
    const lowWavelen = sc.originalMaxPositions / sc.lowFreqFactor;
    const highWavelen = sc.originalMaxPositions / sc.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= sc.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (sc.originalMaxPositions / wavelen - sc.lowFreqFactor) / (sc.highFreqFactor - sc.lowFreqFactor);
        inv[i] = ((1 - smooth) * inv[i]) / sc.factor + smooth * inv[i];
      }
    }
  }
  return inv;
}

/** cos and sin tables [maxPositions, headDim / 2] in fp32. */
export function ropeTables(config: ModelConfig, maxPositions: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(config);
  const half = inv.length;
  // Callers pass the model length the KV cache can hold (llm.ts), never a config's claim alone.
  if (!Number.isSafeInteger(maxPositions) || maxPositions < 1 || maxPositions * half > MAX_ROPE_ELEMENTS)
    throw new InvalidArgumentError(`RoPE tables for ${maxPositions} positions x ${half} frequencies exceed ${MAX_ROPE_ELEMENTS} elements; bound maxModelLen`);
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++)
    for (let i = 0; i < half; i++) {
      // The angle in fp32 as Hugging Face computes it (inv_freq fp32 times position).
      const a = Math.fround(p * Math.fround(inv[i]));
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  return { cos, sin };
}
