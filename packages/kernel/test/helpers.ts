// Random quantized layers and an fp64 reference computed from the plain (unpacked) form.
import type { Rng } from "@marlin/core";
import { bf16BitsToNumber, f16BitsToNumber, numberToF16, type QuantizedLayer } from "@marlin/format";

export type Act = "float16" | "bfloat16";

export interface Variant {
  name: string;
  dtype: Act;
  bits: 4 | 8;
  zeroPoints: boolean;
  groupSize: number;
  actOrder: boolean;
  bias: boolean;
}

export const VARIANTS: Variant[] = [
  { name: "f16 u4 g128", dtype: "float16", bits: 4, zeroPoints: false, groupSize: 128, actOrder: false, bias: false },
  { name: "f16 u4 per-channel", dtype: "float16", bits: 4, zeroPoints: false, groupSize: -1, actOrder: false, bias: false },
  { name: "f16 u4 g32", dtype: "float16", bits: 4, zeroPoints: false, groupSize: 32, actOrder: false, bias: false },
  { name: "f16 u4 g64 bias", dtype: "float16", bits: 4, zeroPoints: false, groupSize: 64, actOrder: false, bias: true },
  { name: "f16 u4 zero points g128", dtype: "float16", bits: 4, zeroPoints: true, groupSize: 128, actOrder: false, bias: false },
  { name: "f16 u4 zero points per-channel", dtype: "float16", bits: 4, zeroPoints: true, groupSize: -1, actOrder: false, bias: false },
  { name: "f16 u8 g128", dtype: "float16", bits: 8, zeroPoints: false, groupSize: 128, actOrder: false, bias: false },
  { name: "f16 u8 per-channel", dtype: "float16", bits: 8, zeroPoints: false, groupSize: -1, actOrder: false, bias: false },
  { name: "f16 u4 g128 act-order", dtype: "float16", bits: 4, zeroPoints: false, groupSize: 128, actOrder: true, bias: false },
  { name: "bf16 u4 g128", dtype: "bfloat16", bits: 4, zeroPoints: false, groupSize: 128, actOrder: false, bias: false },
  { name: "bf16 u4 zero points g64", dtype: "bfloat16", bits: 4, zeroPoints: true, groupSize: 64, actOrder: false, bias: true },
  { name: "bf16 u8 g32 act-order", dtype: "bfloat16", bits: 8, zeroPoints: false, groupSize: 32, actOrder: true, bias: false },
];

export function toBits(dtype: Act, v: number): number {
  if (dtype === "float16") return numberToF16(v);
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function fromBits(dtype: Act, h: number): number {
  return dtype === "float16" ? f16BitsToNumber(h) : bf16BitsToNumber(h);
}

/** A random layer: q uniform, fp16 scales near `scale`, random zero points, shuffled g_idx for act-order. */
export function randomLayer(rng: Rng, k: number, n: number, v: Variant): QuantizedLayer {
  const maxq = (1 << v.bits) - 1;
  const perChannel = v.groupSize === -1;
  const groups = perChannel ? 1 : k / v.groupSize;
  const q = new Uint8Array(k * n);
  for (let i = 0; i < q.length; i++) q[i] = rng.int(0, maxq + 1);
  const scales = new Uint16Array(groups * n);
  const base = v.bits === 4 ? 0.02 : 0.002;
  for (let i = 0; i < scales.length; i++) scales[i] = numberToF16(base * (0.5 + rng.next()));
  const layer: QuantizedLayer = { k, n, bits: v.bits, groupSize: v.groupSize, symmetric: !v.zeroPoints, q, scales };
  if (v.zeroPoints) {
    layer.zeros = new Uint8Array(groups * n);
    for (let i = 0; i < layer.zeros.length; i++) layer.zeros[i] = rng.int(0, maxq + 1);
  }
  if (v.actOrder) {
    const g = new Int32Array(k);
    for (let i = 0; i < k; i++) g[i] = Math.floor(i / v.groupSize);
    for (let i = k - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [g[i], g[j]] = [g[j], g[i]];
    }
    layer.gIdx = g;
  }
  return layer;
}

export function randomActivations(rng: Rng, m: number, k: number, dtype: Act = "float16"): Uint16Array {
  const x = new Uint16Array(m * k);
  for (let i = 0; i < x.length; i++) x[i] = toBits(dtype, rng.normal());
  return x;
}

const dequantCache = new WeakMap<QuantizedLayer, Map<Act, Float64Array>>();

/** Dequantized W [k, n] in fp64, scales rounded to `dtype` like the kernel's; cached per layer. */
export function dequantize(layer: QuantizedLayer, dtype: Act): Float64Array {
  let byType = dequantCache.get(layer);
  if (!byType) {
    byType = new Map();
    dequantCache.set(layer, byType);
  }
  const hit = byType.get(dtype);
  if (hit) return hit;
  const { k, n, bits } = layer;
  const gs = layer.groupSize === -1 ? k : layer.groupSize;
  const groups = layer.scales.length / n;
  const s = new Float64Array(groups * n);
  for (let i = 0; i < s.length; i++) s[i] = fromBits(dtype, toBits(dtype, f16BitsToNumber(layer.scales[i])));
  const zsym = 1 << (bits - 1);
  const w = new Float64Array(k * n);
  for (let i = 0; i < k; i++) {
    const g = layer.gIdx ? layer.gIdx[i] : Math.floor(i / gs);
    const so = g * n;
    const qo = i * n;
    if (layer.zeros) {
      for (let j = 0; j < n; j++) w[qo + j] = (layer.q[qo + j] - layer.zeros[so + j]) * s[so + j];
    } else {
      for (let j = 0; j < n; j++) w[qo + j] = (layer.q[qo + j] - zsym) * s[so + j];
    }
  }
  byType.set(dtype, w);
  return w;
}

/** fp64 reference of x * dequant(W) (+ bias), from the plain layer. */
export function reference(layer: QuantizedLayer, x: Uint16Array, m: number, dtype: Act, bias?: Uint16Array): Float64Array {
  const { k, n } = layer;
  const w = dequantize(layer, dtype);
  const out = new Float64Array(m * n);
  const xr = new Float64Array(k);
  for (let r = 0; r < m; r++) {
    for (let i = 0; i < k; i++) xr[i] = fromBits(dtype, x[r * k + i]);
    const o = out.subarray(r * n, r * n + n);
    for (let i = 0; i < k; i++) {
      const a = xr[i];
      const wr = w.subarray(i * n, i * n + n);
      for (let j = 0; j < n; j++) o[j] += a * wr[j];
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

/** fp16/bf16 NaN bits, to poison outputs. */
export const POISON = 0xffff;
