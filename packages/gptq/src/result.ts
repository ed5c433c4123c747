/**
 * The common output of GPTQ and RTN, in the original row order of W [k, n] (k inputs, n outputs):
 * a layer quantized to integer codes with per-group fp16 scales and integer zero points.
 */
import { InvalidArgumentError, ShapeError } from "@marlin/core";
import type { Bits } from "./quantizer.js";
import type { PruneMethod, Sparsity } from "./sparsity.js";

export interface QuantResult {
  k: number;
  n: number;
  bits: Bits;
  /** Rows per group, or -1 for one group over all k rows (per-channel). */
  groupSize: number;
  symmetric: boolean;
  /** Rows were quantized in order of descending Hessian diagonal. */
  actOrder: boolean;
  /** Group params were fixed up front on the unpermuted weights (act-order with monotone groups). */
  staticGroups: boolean;
  /** Codes q[i * n + j] in 0..2^bits - 1. */
  q: Uint8Array;
  /** Scales [groups, n]; every value is exactly an fp16 value. */
  scales: Float32Array;
  /** Zero points [groups, n]; 2^(bits-1) everywhere when symmetric. */
  zeros: Uint8Array;
  /** Group of each row (original order); non-monotone with act-order unless static groups. */
  gIdx: Int32Array;
  /** Rows in the order they were quantized (act-order only): perm[t] = original row index. */
  perm?: Int32Array;
  /**
   * GPTQ: sum over rows of ||w_r - dequant_r||^2 / U_rr^2, which equals tr(D^T H_damped D) for
   * D = W - dequant(Q) [k, n]. RTN: tr(D^T H D) when a Hessian was given, else NaN.
   */
  lossEstimate: number;
  /** Relative damping actually used (GPTQ retries with more when Cholesky fails). */
  percDamp: number;
  /** Inputs whose Hessian diagonal was 0: their rows were zeroed before quantization. */
  deadInputs: number;
  /** Set when the layer was pruned: every quad of 4 rows has 2 entries per column at the zero code. */
  sparsity?: Sparsity;
  pruneMethod?: PruneMethod;
  /** The pruning mask [k, n] (1 = pruned; original row order) when sparsity is set. */
  mask?: Uint8Array;
}

/**
 * Codes and group indices back in the original row order: row t of the quantization order is
 * original row perm[t] (the identity without act-order).
 */
export function toOriginalOrder(
  qPerm: Uint8Array,
  gPerm: Int32Array,
  k: number,
  n: number,
  perm?: Int32Array,
): { q: Uint8Array; gIdx: Int32Array } {
  const q = new Uint8Array(k * n);
  const gIdx = new Int32Array(k);
  for (let i = 0; i < k; i++) {
    const orig = perm ? perm[i] : i;
    q.set(qPerm.subarray(i * n, (i + 1) * n), orig * n);
    gIdx[orig] = gPerm[i];
  }
  return { q, gIdx };
}

export function groupCount(k: number, groupSize: number): number {
  return groupSize > 0 ? Math.ceil(k / groupSize) : 1;
}

/** The value each code stands for: (q - zero) * scale of its row's group, [k, n] float64. */
export function dequantize(r: QuantResult): Float64Array {
  const { k, n, q, scales, zeros, gIdx } = r;
  if (q.length !== k * n || gIdx.length !== k) throw new ShapeError(`dequantize: q has ${q.length} values for ${k} x ${n}`);
  const out = new Float64Array(k * n);
  for (let i = 0; i < k; i++) {
    const g = gIdx[i] * n;
    const base = i * n;
    for (let j = 0; j < n; j++) out[base + j] = (q[base + j] - zeros[g + j]) * scales[g + j];
  }
  return out;
}

/** Validates the options shared by GPTQ and RTN. */
export function checkCommon(bits: unknown, groupSize: unknown, k: number, n: number): void {
  if (!Number.isInteger(n) || n <= 0) throw new ShapeError(`weights do not split into ${k} rows (n = ${n})`);
  if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`bits must be 4 or 8, got ${String(bits)}`);
  if (typeof groupSize !== "number" || !(groupSize === -1 || (Number.isInteger(groupSize) && groupSize > 0))) {
    throw new InvalidArgumentError(`groupSize must be -1 (per-channel) or a positive integer, got ${String(groupSize)}`);
  }
  if (groupSize > k) throw new InvalidArgumentError(`groupSize ${groupSize} is larger than k = ${k}`);
}

/** Weights as float64 after checking the shape and that every value is finite. */
export function toFloat64Weights(w: Float32Array | Float64Array, k: number, n: number): Float64Array {
  if (w.length !== k * n) throw new ShapeError(`weights: expected [${k}, ${n}] = ${k * n} values, got ${w.length}`);
  const out = new Float64Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const v = w[i];
    if (!Number.isFinite(v)) throw new InvalidArgumentError(`weights: value ${i} (row ${Math.floor(i / n)}) is ${v}`);
    out[i] = v;
  }
  return out;
}

/** tr(D^T H D) for D = W - Wq, both [k, n]: the layer's output error over the calibration set. */
export function hessianError(w: ArrayLike<number>, wq: ArrayLike<number>, h: Float64Array, k: number, n: number): number {
  if (w.length !== k * n || wq.length !== k * n || h.length !== k * k) throw new ShapeError("hessianError: shapes do not match");
  const d = new Float64Array(k * n);
  for (let i = 0; i < k * n; i++) d[i] = w[i] - wq[i];
  let total = 0;
  const t = new Float64Array(n);
  for (let a = 0; a < k; a++) {
    t.fill(0);
    const ha = a * k;
    for (let b = 0; b < k; b++) {
      const hab = h[ha + b];
      if (hab === 0) continue;
      const rb = b * n;
      for (let j = 0; j < n; j++) t[j] += hab * d[rb + j];
    }
    const ra = a * n;
    for (let j = 0; j < n; j++) total += d[ra + j] * t[j];
  }
  return total;
}
