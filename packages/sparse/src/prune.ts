/** Magnitude 2:4 pruning: the starting point of a 2:4 checkpoint (SparseGPT lives in @marlin/gptq). */
import { InvalidArgumentError, ShapeError } from "@marlin/core";
import { quantizeRtn } from "@marlin/format";
import type { Sparse24Layer } from "./layout.js";
import { packSparse24 } from "./pack.js";
import { checkSparse24Shape } from "./validate.js";

/**
 * W [k, n] (row-major, k inputs, n outputs: QuantizedLayer's orientation) with, in every 4
 * consecutive inputs of each output, the 2 largest |w| kept and the other 2 set to 0 (ties: the
 * lower input wins). Returns a new array; quantizing it with a symmetric quantizer (zero 8) gives
 * codes whose pruned positions dequantize to exactly 0.
 */
export function pruneMagnitude24(w: Float32Array, k: number, n: number): Float32Array {
  if (!Number.isSafeInteger(k) || !Number.isSafeInteger(n) || k <= 0 || n <= 0) throw new ShapeError(`invalid shape k=${k}, n=${n}`);
  if (k % 4 !== 0) throw new ShapeError(`2:4 pruning needs k % 4 == 0, got k=${k}`);
  if (!(w instanceof Float32Array) || w.length !== k * n) throw new ShapeError(`w has ${w?.length} elements, expected ${k}x${n}`);
  const out = new Float32Array(k * n);
  const a = [0, 0, 0, 0];
  for (let i = 0; i < k; i += 4)
    for (let j = 0; j < n; j++) {
      for (let p = 0; p < 4; p++) {
        const v = w[(i + p) * n + j];
        if (!Number.isFinite(v)) throw new InvalidArgumentError(`w[${i + p}][${j}] is ${v}`);
        a[p] = Math.abs(v);
      }
      // The two largest: the first maximum, then the first maximum of the rest.
      let b0 = 0;
      for (let p = 1; p < 4; p++) if (a[p] > a[b0]) b0 = p;
      let b1 = b0 === 0 ? 1 : 0;
      for (let p = 0; p < 4; p++) if (p !== b0 && a[p] > a[b1]) b1 = p;
      out[(i + b0) * n + j] = w[(i + b0) * n + j];
      out[(i + b1) * n + j] = w[(i + b1) * n + j];
    }
  return out;
}

/** True when W [k, n] has at most 2 nonzero values in every 4 consecutive inputs of each output. */
export function is24Sparse(w: Float32Array, k: number, n: number): boolean {
  for (let i = 0; i + 3 < k; i += 4)
    for (let j = 0; j < n; j++) {
      let nz = 0;
      for (let p = 0; p < 4; p++) if (w[(i + p) * n + j] !== 0) nz++;
      if (nz > 2) return false;
    }
  return true;
}

/**
 * The magnitude 2:4 path in one call: W [k, n] pruned (pruneMagnitude24), 4-bit symmetric RTN
 * quantized (group 128 or -1), packed. Shape rules are checked before anything is allocated.
 */
export function magnitudeSparse24(w: Float32Array, k: number, n: number, opts: { groupSize?: number } = {}): Sparse24Layer {
  const groupSize = opts.groupSize ?? 128;
  checkSparse24Shape(k, n, 4, groupSize);
  return packSparse24(quantizeRtn(pruneMagnitude24(w, k, n), k, n, { bits: 4, groupSize, symmetric: true }));
}
