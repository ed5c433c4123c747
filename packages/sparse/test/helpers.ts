// Random 2:4 layers; the fp64 reference, computed from the plain (unpacked) form and so
// independent of the packed layout the kernels read, and the bit conversions are the kernel
// package's test helpers (a 2:4 layer is a symmetric 4-bit one whose pruned codes are the zero 8).
import type { Rng } from "@marlin/core";
import { numberToF16, type QuantizedLayer } from "@marlin/format";

export { type Act, fromBits, randomActivations, reference, relError, toBits } from "../../kernel/test/helpers.js";

/** NaN in both fp16 and bf16: an output the kernel did not write stays non-finite. */
export const POISON = 0x7fff;

/**
 * A random 2:4 layer [k, n]: in each chunk of 4 inputs 2 random positions get random codes (some
 * chunks keep fewer: 1 or 0 nonzero, to cover the metadata padding), the rest the zero code 8.
 */
export function randomSparseLayer(rng: Rng, k: number, n: number, groupSize: number): QuantizedLayer {
  const q = new Uint8Array(k * n).fill(8);
  for (let c = 0; c < k / 4; c++)
    for (let j = 0; j < n; j++) {
      const r = rng.next();
      const keep = r < 0.05 ? 0 : r < 0.15 ? 1 : 2;
      const p0 = rng.int(0, 4);
      let p1 = rng.int(0, 3);
      if (p1 >= p0) p1++;
      if (keep >= 1) q[(4 * c + p0) * n + j] = rng.int(0, 16);
      if (keep === 2) q[(4 * c + p1) * n + j] = rng.int(0, 16);
    }
  const groups = groupSize === -1 ? 1 : k / groupSize;
  const scales = new Uint16Array(groups * n);
  for (let i = 0; i < scales.length; i++) scales[i] = numberToF16(0.02 * (0.5 + rng.next()));
  return { k, n, bits: 4, groupSize, symmetric: true, q, scales };
}
