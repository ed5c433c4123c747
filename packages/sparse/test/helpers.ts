// Random 2:4 layers and an fp64 reference computed from the plain (unpacked) form, independent of
// the packed layout the kernels read.
import type { Rng } from "@marlin/core";
import { bf16BitsToNumber, f16BitsToNumber, numberToF16, type QuantizedLayer } from "@marlin/format";

export type Act = "float16" | "bfloat16";
/** NaN in both fp16 and bf16: an output the kernel did not write stays non-finite. */
export const POISON = 0x7fff;

export function toBits(dtype: Act, v: number): number {
  if (dtype === "float16") return numberToF16(v);
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBits(dtype: Act, h: number): number {
  return dtype === "float16" ? f16BitsToNumber(h) : bf16BitsToNumber(h);
}

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

export function randomActivations(rng: Rng, m: number, k: number, dtype: Act = "float16"): Uint16Array {
  const x = new Uint16Array(m * k);
  for (let i = 0; i < x.length; i++) x[i] = toBits(dtype, rng.normal());
  return x;
}

/** fp64 x * dequant(W) (+ bias) from the plain layer, scales rounded to `dtype` as the kernel's. */
export function reference(layer: QuantizedLayer, x: Uint16Array, m: number, dtype: Act, bias?: Uint16Array): Float64Array {
  const { k, n } = layer;
  const gs = layer.groupSize === -1 ? k : layer.groupSize;
  const w = new Float64Array(k * n);
  for (let i = 0; i < k; i++)
    for (let j = 0; j < n; j++) {
      const s = fromBits(dtype, toBits(dtype, f16BitsToNumber(layer.scales[Math.floor(i / gs) * n + j])));
      w[i * n + j] = (layer.q[i * n + j] - 8) * s;
    }
  const out = new Float64Array(m * n);
  for (let r = 0; r < m; r++) {
    const o = out.subarray(r * n, r * n + n);
    for (let i = 0; i < k; i++) {
      const a = fromBits(dtype, x[r * k + i]);
      if (a === 0) continue;
      for (let j = 0; j < n; j++) o[j] += a * w[i * n + j];
    }
    if (bias) for (let j = 0; j < n; j++) o[j] += fromBits(dtype, bias[j]);
  }
  return out;
}

/** ||out - ref|| / ||ref||, and how many outputs are not finite (unwritten poison). */
export function relError(out: Uint16Array, ref: Float64Array, dtype: Act): { rel: number; nonFinite: number } {
  let num = 0;
  let den = 0;
  let nonFinite = 0;
  for (let i = 0; i < ref.length; i++) {
    const o = fromBits(dtype, out[i]);
    if (!Number.isFinite(o)) nonFinite++;
    num += (o - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return { rel: Math.sqrt(num / den), nonFinite };
}
