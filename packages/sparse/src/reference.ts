/** Plain TypeScript references: the dense form of a 2:4 layer and an fp64 matmul (tests, toDense). */
import { ShapeError } from "@marlin/core";
import { dequantize, type QuantizedLayer } from "@marlin/format";
import type { Sparse24Layer } from "./layout.js";
import { unpackSparse24 } from "./pack.js";

/** W [n, k] fp32 of a packed layer (exact: a code times an fp16 scale fits fp32). */
export function sparse24ToDense(p: Sparse24Layer): Float32Array {
  const { k, n } = p;
  const kn = dequantize(unpackSparse24(p)); // [k, n]
  const out = new Float32Array(n * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[j * k + i] = kn[i * n + j];
  return out;
}

/** Y [m, n] = X [m, k] * W (+ bias) in fp64, W the dequantized layer [k, n]. */
export function referenceMatmulF64(x: ArrayLike<number>, m: number, layer: QuantizedLayer, bias?: ArrayLike<number>): Float64Array {
  const { k, n } = layer;
  if (x.length < m * k) throw new ShapeError(`x has ${x.length} elements, needs ${m}x${k}`);
  const w = dequantize(layer);
  const y = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    const row = y.subarray(r * n, (r + 1) * n);
    if (bias) for (let j = 0; j < n; j++) row[j] = bias[j];
    for (let i = 0; i < k; i++) {
      const xv = x[r * k + i];
      if (xv === 0) continue;
      const wr = i * n;
      for (let j = 0; j < n; j++) row[j] += xv * w[wr + j];
    }
  }
  return y;
}
