/**
 * GPTQ (Frantar et al.) for one linear layer, float64 reference. Our convention: W is [k, n]
 * row-major with k input features as rows and n outputs as columns (the torch weight transposed),
 * so GPTQ's "column i" is our row i and every step works on contiguous rows of n values.
 *
 * Steps: dead inputs (H_ii = 0) get H_ii = 1 and a zeroed row; optional static group params on the
 * unpermuted rows; optional act-order (rows by descending H_ii); relative damping; U = upper
 * Cholesky factor of H^-1; then rows in blocks: quantize row i, err = (w_i - q_i) / U_ii, push
 * err * U_i,r onto the rest of the block at once and onto later rows once per block (lazy batch).
 *
 * With `sparsity: "2:4"` the same loop prunes (see sparsity.ts): "sparsegpt" chooses each quad's
 * mask when the loop reaches it, from the error-updated weights and U's diagonal; "magnitude"
 * fixes the mask on the original weights first. A pruned entry takes the zero code and its whole
 * value is the error pushed through U.
 *
 * Defaults are the best recipe of the reference scripts: relative damping 0.1 with the
 * Hessian-weighted range search (clip). The classic GPTQ defaults: { percDamp: 0.01, clip: false }.
 */
import { InvalidArgumentError, ShapeError } from "@marlin/core";
import { NotPositiveDefiniteError } from "./errors.js";
import { invertSpd, upperCholeskyOfInverse } from "./linalg.js";
import {
  type Bits,
  type ClipOptions,
  FULL_SCORE_MAX_ROWS,
  findGroupParams,
  type GroupScorer,
  maxQ,
  quantizeValue,
  type ResolvedClip,
  resolveClip,
} from "./quantizer.js";
import { checkCommon, groupCount, type QuantResult, toFloat64Weights, toOriginalOrder } from "./result.js";
import { magnitudeMask24, type PruneMethod, pruneTwoOfFour, resolveSparsity, type SparsityOptions } from "./sparsity.js";

/** The default relative damping (the reference scripts' best recipe; classic GPTQ used 0.01). */
export const DEFAULT_PERC_DAMP = 0.1;

export interface GptqOptions extends SparsityOptions {
  bits?: Bits;
  /** -1 (per-channel) or rows per group; Marlin takes 32, 64 or 128. Default 128. */
  groupSize?: number;
  /** Default true. */
  symmetric?: boolean;
  /** Quantize rows by descending Hessian diagonal. Default false. */
  actOrder?: boolean;
  /** With act-order: fix group params on the unpermuted weights, keeping g_idx monotone. Default false. */
  staticGroups?: boolean;
  /** Damping as a fraction of mean(diag H). Default 0.1 (DEFAULT_PERC_DAMP; classic GPTQ: 0.01). */
  percDamp?: number;
  /** Rows per lazy block update. Default 128; must be a multiple of groupSize (dynamic groups). */
  blockSize?: number;
  /** Range search scored by the Hessian-weighted error (see ClipOptions). Default on (true); false for plain min/max. */
  clip?: boolean | ClipOptions;
  /** When Cholesky fails, retry this many times with 10x the damping. Default 2. */
  dampRetries?: number;
}

export interface ResolvedGptqOptions {
  bits: Bits;
  groupSize: number;
  symmetric: boolean;
  actOrder: boolean;
  staticGroups: boolean;
  percDamp: number;
  blockSize: number;
  clip?: ResolvedClip;
  dampRetries: number;
  /** Set with sparsity "2:4": how the mask is chosen. */
  prune?: PruneMethod;
}

/** Defaults and checks of GptqOptions (shared by the GPU path). */
export function resolveGptqOptions(o: GptqOptions, k: number, n: number): ResolvedGptqOptions {
  const r: ResolvedGptqOptions = {
    bits: o.bits ?? 4,
    groupSize: o.groupSize ?? 128,
    symmetric: o.symmetric ?? true,
    actOrder: o.actOrder ?? false,
    staticGroups: o.staticGroups ?? false,
    percDamp: o.percDamp ?? DEFAULT_PERC_DAMP,
    blockSize: o.blockSize ?? 128,
    clip: resolveClip(o.clip ?? true),
    dampRetries: o.dampRetries ?? 2,
  };
  checkCommon(r.bits, r.groupSize, k, n);
  r.prune = resolveSparsity(o, k, { actOrder: r.actOrder, groupSize: r.groupSize, blockSize: r.blockSize });
  if (!(Number.isFinite(r.percDamp) && r.percDamp >= 0)) throw new InvalidArgumentError(`percDamp must be a finite number >= 0, got ${r.percDamp}`);
  if (!Number.isInteger(r.blockSize) || r.blockSize <= 0) throw new InvalidArgumentError(`blockSize must be a positive integer, got ${r.blockSize}`);
  if (r.groupSize > 0 && !r.staticGroups && r.blockSize % r.groupSize !== 0) {
    // A group chosen mid-block must see every earlier update; that holds when groups never straddle blocks.
    throw new InvalidArgumentError(`blockSize (${r.blockSize}) must be a multiple of groupSize (${r.groupSize})`);
  }
  if (!Number.isInteger(r.dampRetries) || r.dampRetries < 0) throw new InvalidArgumentError(`dampRetries must be an integer >= 0, got ${r.dampRetries}`);
  return r;
}

/**
 * Quantizes W [k, n] (k inputs x n outputs) with GPTQ against the Hessian H [k, k] of its inputs
 * (see HessianAccumulator). Neither input is modified. Dead inputs' rows are zeroed first, and
 * lossEstimate measures the error against those zeroed rows.
 */
export function gptqQuantize(w: Float32Array | Float64Array, hIn: Float64Array | Float32Array, options: GptqOptions = {}): QuantResult {
  const k = Math.round(Math.sqrt(hIn.length));
  if (k <= 0 || k * k !== hIn.length) throw new ShapeError(`H must be square, got ${hIn.length} values`);
  const n = w.length / k;
  const o = resolveGptqOptions(options, k, n);
  const W = toFloat64Weights(w, k, n);
  for (let i = 0; i < hIn.length; i++) {
    if (!Number.isFinite(hIn[i])) throw new InvalidArgumentError(`H: value ${i} is ${hIn[i]}`);
  }
  const grid = { bits: o.bits, symmetric: o.symmetric };
  const maxq = maxQ(o.bits);
  const gs = o.groupSize;
  const groups = groupCount(k, gs);

  // Dead inputs: never active in calibration, so any weight is as good as another; zero it.
  let H = Float64Array.from(hIn);
  let dead = 0;
  for (let i = 0; i < k; i++) {
    if (H[i * k + i] === 0) {
      H[i * k + i] = 1;
      W.fill(0, i * n, (i + 1) * n);
      dead++;
    }
  }

  // Magnitude 2:4: the mask of the original weights, pruned entries zeroed before GPTQ runs.
  // SparseGPT fills the mask quad by quad in the loop below.
  const sparse = o.prune !== undefined;
  const mask = o.prune === "magnitude" ? magnitudeMask24(W, k, n) : sparse ? new Uint8Array(k * n) : undefined;
  const fixedMask = o.prune === "magnitude" ? mask : undefined;
  if (fixedMask) for (let i = 0; i < k * n; i++) if (fixedMask[i]) W[i] = 0;

  const scales = new Float64Array(groups * n);
  const zeros = new Float64Array(groups * n);
  const useStatic = gs > 0 && o.staticGroups;
  if (useStatic) {
    // Chosen before GPTQ runs, so scored like RTN: diag(H) or the group's block of H.
    for (let g = 0; g < groups; g++) {
      const r0 = g * gs;
      const r1 = Math.min(k, r0 + gs);
      findGroupParams(W, n, r0, r1, grid, scales, zeros, g * n, o.clip && { opts: o.clip, scorer: hessianScorer(H, k, r0, r1, o.clip) });
    }
  }

  // Act-order: most active inputs first, while the most later rows are left to absorb their error.
  let perm: Int32Array | undefined;
  if (o.actOrder) {
    const idx = Array.from({ length: k }, (_, i) => i);
    idx.sort((a, b) => H[b * k + b] - H[a * k + a] || a - b);
    perm = Int32Array.from(idx);
    const Wp = new Float64Array(k * n);
    const Hp = new Float64Array(k * k);
    for (let i = 0; i < k; i++) {
      const pi = perm[i];
      Wp.set(W.subarray(pi * n, (pi + 1) * n), i * n);
      for (let j = 0; j < k; j++) Hp[i * k + j] = H[pi * k + perm[j]];
    }
    W.set(Wp);
    H = Hp;
  }

  let meanDiag = 0;
  for (let i = 0; i < k; i++) meanDiag += H[i * k + i];
  meanDiag /= k;
  let percDamp = o.percDamp;
  let U: Float64Array | undefined;
  for (let attempt = 0; ; attempt++) {
    const Hd = H.slice();
    const damp = percDamp * meanDiag;
    for (let i = 0; i < k; i++) Hd[i * k + i] += damp;
    try {
      U = upperCholeskyOfInverse(Hd, k, "damped Hessian");
      break;
    } catch (e) {
      if (!(e instanceof NotPositiveDefiniteError) || attempt >= o.dampRetries) throw e;
      percDamp = percDamp > 0 ? percDamp * 10 : 0.01;
    }
  }

  if (gs <= 0) {
    findGroupParams(W, n, 0, k, grid, scales, zeros, 0, o.clip && { opts: o.clip, scorer: gptqScorer(U, k, 0, k, o.clip) }, fixedMask);
  }

  const qPerm = new Uint8Array(k * n);
  const gPerm = new Int32Array(k);
  const bs = o.blockSize;
  const err = new Float64Array(bs * n);
  let loss = 0;
  for (let i1 = 0; i1 < k; i1 += bs) {
    const i2 = Math.min(k, i1 + bs);
    for (let i = i1; i < i2; i++) {
      let g = 0;
      if (gs > 0) {
        if (useStatic) {
          g = Math.floor((perm ? perm[i] : i) / gs);
        } else {
          g = Math.floor(i / gs);
          if (i % gs === 0) {
            // Rows [i, i + gs) lie in this block and have all updates so far.
            const r1 = Math.min(k, i + gs);
            // A fixed (magnitude) mask is known: its pruned entries count as the 0 they become.
            findGroupParams(W, n, i, r1, grid, scales, zeros, g * n, o.clip && { opts: o.clip, scorer: gptqScorer(U, k, i, r1, o.clip) }, fixedMask);
          }
        }
      }
      gPerm[i] = g;
      const d = U[i * k + i];
      const base = i * n;
      if (o.prune === "sparsegpt" && mask && i % 4 === 0) {
        // SparseGPT: prune the 2 of rows i..i+3 whose removal costs least, w^2 / U_rr^2, from the
        // weights as updated by every earlier row (the quad lies in this block: blockSize % 4 == 0).
        const c0 = 1 / (d * d);
        const c1 = 1 / U[(i + 1) * k + i + 1] ** 2;
        const c2 = 1 / U[(i + 2) * k + i + 2] ** 2;
        const c3 = 1 / U[(i + 3) * k + i + 3] ** 2;
        for (let j = 0; j < n; j++) {
          const b = base + j;
          const [a, c] = pruneTwoOfFour(W[b] ** 2 * c0, W[b + n] ** 2 * c1, W[b + 2 * n] ** 2 * c2, W[b + 3 * n] ** 2 * c3);
          mask[b + a * n] = 1;
          mask[b + c * n] = 1;
        }
      }
      const eb = (i - i1) * n;
      const go = g * n;
      for (let j = 0; j < n; j++) {
        const x = W[base + j];
        const s = scales[go + j];
        const z = zeros[go + j];
        // A pruned entry takes the zero code (dequantizes to exactly 0).
        const q = mask?.[base + j] ? z : quantizeValue(x, s, z, maxq);
        qPerm[base + j] = q;
        const e = (x - s * (q - z)) / d;
        err[eb + j] = e;
        loss += e * e;
      }
      // Compensate on the rest of the block now.
      for (let r = i + 1; r < i2; r++) {
        const u = U[i * k + r];
        if (u === 0) continue;
        const rb = r * n;
        for (let j = 0; j < n; j++) W[rb + j] -= err[eb + j] * u;
      }
    }
    // Lazy batch: all of this block's errors onto the later rows at once (one GEMM on the GPU).
    for (let r = i2; r < k; r++) {
      const rb = r * n;
      for (let t = i1; t < i2; t++) {
        const u = U[t * k + r];
        if (u === 0) continue;
        const eb = (t - i1) * n;
        for (let j = 0; j < n; j++) W[rb + j] -= err[eb + j] * u;
      }
    }
  }

  const { q, gIdx } = toOriginalOrder(qPerm, gPerm, k, n, perm);
  return {
    k,
    n,
    bits: o.bits,
    groupSize: gs,
    symmetric: o.symmetric,
    actOrder: o.actOrder,
    staticGroups: useStatic,
    q,
    scales: Float32Array.from(scales),
    zeros: Uint8Array.from(zeros),
    gIdx,
    perm,
    lossEstimate: loss,
    percDamp,
    deadInputs: dead,
    ...(sparse ? { sparsity: "2:4" as const, pruneMethod: o.prune, mask } : {}),
  };
}

/** Scorer for rows [r0, r1) from U (see ClipOptions): 1/U_rr^2, or (U_gg^T U_gg)^-1. */
function gptqScorer(U: Float64Array, k: number, r0: number, r1: number, clip: ResolvedClip): GroupScorer {
  const rows = r1 - r0;
  if (clip.score === "full" && rows <= FULL_SCORE_MAX_ROWS) {
    const c = new Float64Array(rows * rows);
    // c = U_gg^T U_gg: c[a][b] = sum_m<=min(a,b) U[m][a] U[m][b]
    for (let m = 0; m < rows; m++) {
      const um = (r0 + m) * k + r0;
      for (let a = m; a < rows; a++) {
        const v = U[um + a];
        if (v === 0) continue;
        for (let b = m; b < rows; b++) c[a * rows + b] += v * U[um + b];
      }
    }
    return { kind: "quad", m: invertSpd(c, rows, "U_gg^T U_gg") };
  }
  const w = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const d = U[(r0 + r) * k + r0 + r];
    w[r] = 1 / (d * d);
  }
  return { kind: "diag", w };
}

/** Scorer for rows [r0, r1) straight from H: diag(H), or the block H_gg. */
export function hessianScorer(H: Float64Array, k: number, r0: number, r1: number, clip: ResolvedClip): GroupScorer {
  const rows = r1 - r0;
  if (clip.score === "full" && rows <= FULL_SCORE_MAX_ROWS) {
    const m = new Float64Array(rows * rows);
    for (let a = 0; a < rows; a++) for (let b = 0; b < rows; b++) m[a * rows + b] = H[(r0 + a) * k + r0 + b];
    return { kind: "quad", m };
  }
  const w = new Float64Array(rows);
  for (let r = 0; r < rows; r++) w[r] = H[(r0 + r) * k + r0 + r];
  return { kind: "diag", w };
}
