/**
 * Per-group scale and zero point selection. Our weights are [k, n] row-major (k input features,
 * n outputs); a group is a run of rows [r0, r1) and every output column j gets its own scale and
 * zero for it. Stored value of an integer q: (q - zero) * scale.
 *
 * - symmetric: scale = 2 * absmax / (2^bits - 1), zero = 2^(bits - 1) (8 for 4 bits, 128 for 8).
 *   The grid is [-zero, zero - 1] * scale, so +absmax itself rounds onto the top code.
 * - asymmetric: the range [min(x, 0), max(x, 0)] (zero must be exact), scale = range / (2^bits - 1),
 *   zero = round(-min / scale) in [0, 2^bits - 1].
 *
 * Scales are rounded to fp16 (what checkpoints store) before zeros and codes are derived from them.
 */
import { InvalidArgumentError } from "@marlin/core";
import { F16_MAX, F16_MIN_POSITIVE, rint, roundToF16 } from "./fp16.js";

export type Bits = 4 | 8;

export interface QuantGrid {
  bits: Bits;
  symmetric: boolean;
}

/**
 * Range search ("clipping"): try the ranges shrunk by 1, 1 - 1/grid, ... down to 1 - maxShrink and keep,
 * per column, the one whose rounding error scores lowest.
 * - score "diag" (default): sum over rows of weight_r * err^2. In GPTQ the weight of row r is
 *   1 / U_rr^2 (U the upper Cholesky factor of H^-1): exactly what GPTQ's greedy step charges for a
 *   unit squared rounding error on row r after compensating on later rows. RTN uses diag(H).
 * - score "full": the quadratic form err^T M err of the whole group. GPTQ: M = (U_gg^T U_gg)^-1, the
 *   loss of the group's error with optimal compensation on later rows; RTN: M = H_gg. Costs
 *   rows^2 per column and grid step, so groups of more than FULL_SCORE_MAX_ROWS rows fall back to "diag".
 */
export interface ClipOptions {
  grid?: number;
  maxShrink?: number;
  score?: "diag" | "full";
}

export const FULL_SCORE_MAX_ROWS = 128;

export interface ResolvedClip {
  grid: number;
  maxShrink: number;
  score: "diag" | "full";
}

export function resolveClip(clip: boolean | ClipOptions | undefined): ResolvedClip | undefined {
  if (!clip) return undefined;
  const o = clip === true ? {} : clip;
  const r: ResolvedClip = { grid: o.grid ?? 100, maxShrink: o.maxShrink ?? 0.8, score: o.score ?? "diag" };
  if (!Number.isInteger(r.grid) || r.grid < 1) throw new InvalidArgumentError(`clip.grid must be a positive integer, got ${r.grid}`);
  if (!(r.maxShrink > 0 && r.maxShrink < 1)) throw new InvalidArgumentError(`clip.maxShrink must be in (0, 1), got ${r.maxShrink}`);
  if (r.score !== "diag" && r.score !== "full") throw new InvalidArgumentError(`clip.score must be "diag" or "full", got ${String(r.score)}`);
  return r;
}

/** How a candidate range is scored: per-row weights, or a rows x rows quadratic form. */
export type GroupScorer = { kind: "diag"; w: Float64Array } | { kind: "quad"; m: Float64Array };

export function maxQ(bits: Bits): number {
  return (1 << bits) - 1;
}

function clampScale(s: number): number {
  if (!(s >= F16_MIN_POSITIVE)) return F16_MIN_POSITIVE;
  if (s > F16_MAX) return F16_MAX;
  return s;
}

/** Scale and zero for the range [lo, hi] (lo <= 0 <= hi); writes them at index j. */
export function paramsFromRange(lo: number, hi: number, grid: QuantGrid, scale: Float64Array, zero: Float64Array, j: number): void {
  const maxq = maxQ(grid.bits);
  if (grid.symmetric) {
    let a = Math.max(-lo, hi);
    if (a === 0) a = 1;
    scale[j] = clampScale(roundToF16((2 * a) / maxq));
    zero[j] = (maxq + 1) / 2;
  } else {
    if (lo === 0 && hi === 0) {
      lo = -1;
      hi = 1;
    }
    const s = clampScale(roundToF16((hi - lo) / maxq));
    scale[j] = s;
    zero[j] = Math.min(maxq, Math.max(0, rint(-lo / s)));
  }
}

/** The integer code of x. */
export function quantizeValue(x: number, s: number, z: number, maxq: number): number {
  const q = rint(x / s) + z;
  return q < 0 ? 0 : Math.min(q, maxq);
}

/**
 * Scales and zeros for rows [r0, r1) of w [*, n], written to scale/zero at [off, off + n).
 * With `clip`, a scorer for the group's rows (weights of length r1 - r0, or an (r1-r0)^2 form).
 */
export function findGroupParams(
  w: Float64Array,
  n: number,
  r0: number,
  r1: number,
  grid: QuantGrid,
  scale: Float64Array,
  zero: Float64Array,
  off: number,
  clip?: { opts: ResolvedClip; scorer: GroupScorer },
  /** Entries of w [*, n] with skip = 1 count as 0 (pruned weights, whose code is the zero point). */
  skip?: Uint8Array,
): void {
  const lo = new Float64Array(n);
  const hi = new Float64Array(n);
  for (let r = r0; r < r1; r++) {
    const base = r * n;
    for (let j = 0; j < n; j++) {
      const v = skip?.[base + j] ? 0 : w[base + j];
      if (v < lo[j]) lo[j] = v;
      if (v > hi[j]) hi[j] = v;
    }
  }
  const s = new Float64Array(n);
  const z = new Float64Array(n);
  for (let j = 0; j < n; j++) paramsFromRange(lo[j], hi[j], grid, s, z, j);
  if (clip) {
    const rows = r1 - r0;
    const maxq = maxQ(grid.bits);
    const best = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
    const score = new Float64Array(n);
    const cs = new Float64Array(n);
    const cz = new Float64Array(n);
    const sc = clip.scorer;
    const err = sc.kind === "quad" ? new Float64Array(rows * n) : undefined;
    const steps = Math.max(1, Math.floor(clip.opts.maxShrink * clip.opts.grid));
    for (let t = 0; t < steps; t++) {
      const p = 1 - t / clip.opts.grid;
      for (let j = 0; j < n; j++) paramsFromRange(p * lo[j], p * hi[j], grid, cs, cz, j);
      score.fill(0);
      for (let r = 0; r < rows; r++) {
        const base = (r0 + r) * n;
        const wr = sc.kind === "diag" ? sc.w[r] : 0;
        for (let j = 0; j < n; j++) {
          const x = skip?.[base + j] ? 0 : w[base + j];
          const sj = cs[j];
          const e = x - sj * (quantizeValue(x, sj, cz[j], maxq) - cz[j]);
          if (err) err[r * n + j] = e;
          else score[j] += wr * e * e;
        }
      }
      if (err && sc.kind === "quad") {
        // score_j = sum_a err[a, j] * sum_b m[a, b] err[b, j]
        const m = sc.m;
        const tmp = new Float64Array(n);
        for (let a = 0; a < rows; a++) {
          tmp.fill(0);
          for (let b = 0; b < rows; b++) {
            const mab = m[a * rows + b];
            if (mab === 0) continue;
            const rb = b * n;
            for (let j = 0; j < n; j++) tmp[j] += mab * err[rb + j];
          }
          const ra = a * n;
          for (let j = 0; j < n; j++) score[j] += err[ra + j] * tmp[j];
        }
      }
      for (let j = 0; j < n; j++) {
        if (score[j] < best[j]) {
          best[j] = score[j];
          s[j] = cs[j];
          z[j] = cz[j];
        }
      }
    }
  }
  scale.set(s, off);
  zero.set(z, off);
}
