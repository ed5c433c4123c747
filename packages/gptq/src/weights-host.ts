/**
 * Host-side weight layouts for the GPU pipeline. The engine holds W [n, k] (outputs x inputs), GPTQ
 * works on W [k, n]; a 7B layer has 200M weights, so the conversions are blocked transposes (both
 * sides stay in cache) with table lookups instead of per-element fp16 arithmetic.
 */
import { type LinearSource, linearToF32 } from "@marlin/engine";
import { f16Lookup, f32BitsToF16 } from "@marlin/format";
import type { QuantResult } from "./result.js";

const TILE = 64;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/**
 * (code - zero) * scale as fp16 bits. The product of an fp16 scale and an integer below 2^8 is
 * exact in fp32, so going through fp32 rounds once, like the fp16 multiply of the GPU kernels.
 */
function dequantBits(code: number, zero: number, scale: number): number {
  f32[0] = (code - zero) * scale;
  return f32BitsToF16(u32[0]);
}

/** W [k, n] as fp32 from a linear's source (fp16 checkpoints converted on the fly). */
export function weightKn(src: LinearSource): Float32Array {
  const { k, n } = src;
  const out = new Float32Array(k * n);
  if (src.kind === "dense" && src.weight.dtype === "float16") {
    const w = src.weight.data as Uint16Array;
    const lut = f16Lookup();
    for (let j0 = 0; j0 < n; j0 += TILE)
      for (let i0 = 0; i0 < k; i0 += TILE) {
        const j1 = Math.min(n, j0 + TILE);
        const i1 = Math.min(k, i0 + TILE);
        for (let j = j0; j < j1; j++) for (let i = i0; i < i1; i++) out[i * n + j] = lut[w[j * k + i]];
      }
    return out;
  }
  return transposeF32(linearToF32(src), n, k, out);
}

/** w [rows, cols] -> fp32 [cols, rows], in tiles (both sides stay in cache). */
export function transposeF32(w: Float32Array | Float64Array, rows: number, cols: number, out = new Float32Array(rows * cols)): Float32Array {
  for (let r0 = 0; r0 < rows; r0 += TILE)
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const r1 = Math.min(rows, r0 + TILE);
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = w[r * cols + c];
    }
  return out;
}

/**
 * The quantized layer's values (q - zero) * scale as fp16 bits in the engine's layout [n, k]: what
 * the later forward passes must see, rounded to fp16 as the GPU kernels compute them.
 */
export function dequantF16Nk(r: QuantResult): Uint16Array {
  const { k, n, q, scales, zeros, gIdx, bits } = r;
  const out = new Uint16Array(n * k);
  const levels = 1 << bits;
  const groups = scales.length / n;
  // 4-bit: the 16 values of every (group, column) once, then a lookup per weight.
  if (levels * groups * n <= 1 << 24) {
    const lut = new Uint16Array(groups * n * levels);
    for (let g = 0; g < groups; g++)
      for (let j = 0; j < n; j++) {
        const s = scales[g * n + j];
        const z = zeros[g * n + j];
        const base = (g * n + j) * levels;
        for (let c = 0; c < levels; c++) lut[base + c] = dequantBits(c, z, s);
      }
    for (let j0 = 0; j0 < n; j0 += TILE)
      for (let i0 = 0; i0 < k; i0 += TILE) {
        const i1 = Math.min(k, i0 + TILE);
        const j1 = Math.min(n, j0 + TILE);
        for (let j = j0; j < j1; j++) {
          const o = j * k;
          for (let i = i0; i < i1; i++) out[o + i] = lut[(gIdx[i] * n + j) * levels + q[i * n + j]];
        }
      }
    return out;
  }
  for (let i = 0; i < k; i++) {
    const g = gIdx[i] * n;
    for (let j = 0; j < n; j++) out[j * k + i] = dequantBits(q[i * n + j], zeros[g + j], scales[g + j]);
  }
  return out;
}
