/**
 * 2:4 structured sparsity for GPTQ: in every run of 4 consecutive inputs (rows 4t..4t+3 of our
 * W [k, n], for each output column j) exactly 2 weights are zero. Masks are Uint8Array [k, n]
 * row-major with 1 = pruned.
 *
 * - "magnitude": keep the 2 largest |w| of each quad of the original weights, zero the others, then
 *   GPTQ quantizes the kept weights with the mask held (pruned codes stay at the zero code).
 * - "sparsegpt" (Frantar & Alistarh 2023): prune and quantize in one pass. When the GPTQ row loop
 *   reaches the first row of a quad, the 2 rows with the smallest w^2 / U_rr^2 (the current,
 *   error-updated weights; U the upper Cholesky factor of H^-1, so U_rr^2 = [H^-1]_rr after the
 *   earlier rows are eliminated) are pruned: their value error w / U_rr is propagated through U
 *   exactly like a rounding error.
 *
 * Either way a pruned entry's code is its group's zero point, so it dequantizes to exactly 0.
 * Act-order is refused: 2:4 is along the original input order, while act-order visits rows in a
 * permuted order, so a quad's rows would not be quantized together.
 */
import { InvalidArgumentError, ShapeError } from "@marlin/core";

export type Sparsity = "2:4";
export type PruneMethod = "sparsegpt" | "magnitude";

export const PRUNE_METHODS: readonly PruneMethod[] = ["sparsegpt", "magnitude"];

export interface SparsityOptions {
  /** "2:4": in every 4 consecutive inputs of each output, 2 weights are pruned. Default none. */
  sparsity?: Sparsity;
  /** How the 2:4 mask is chosen (with `sparsity` only). Default "sparsegpt". */
  prune?: PruneMethod;
}

/** Checks the sparsity options against the layer; undefined when the layer stays dense. */
export function resolveSparsity(
  o: SparsityOptions,
  k: number,
  extra: { actOrder?: boolean; groupSize?: number; blockSize?: number } = {},
): PruneMethod | undefined {
  const s = o.sparsity as unknown;
  if (s === undefined) {
    if (o.prune !== undefined) throw new InvalidArgumentError(`prune (${String(o.prune)}) needs sparsity "2:4"`);
    return undefined;
  }
  if (s !== "2:4") throw new InvalidArgumentError(`sparsity must be "2:4", got ${JSON.stringify(s)}`);
  const prune = (o.prune ?? "sparsegpt") as unknown;
  if (prune !== "sparsegpt" && prune !== "magnitude") throw new InvalidArgumentError(`prune must be "sparsegpt" or "magnitude", got ${JSON.stringify(prune)}`);
  if (!Number.isInteger(k) || k % 4 !== 0) throw new ShapeError(`2:4 sparsity needs k (inputs) to be a multiple of 4, got k = ${k}`);
  if (extra.actOrder) throw new InvalidArgumentError("2:4 sparsity with act-order is not supported: the quads are along the original input order");
  if (extra.groupSize !== undefined && extra.groupSize > 0 && extra.groupSize % 4 !== 0)
    throw new InvalidArgumentError(`2:4 sparsity needs a group size that is a multiple of 4, got ${extra.groupSize}`);
  if (extra.blockSize !== undefined && extra.blockSize % 4 !== 0) throw new InvalidArgumentError(`2:4 sparsity needs blockSize to be a multiple of 4, got ${extra.blockSize}`);
  return prune;
}

/**
 * Which 2 of 4 scores to prune (indices, ascending): the two smallest, ties going to the lower
 * index (the GPU kernel uses the same rule).
 */
export function pruneTwoOfFour(s0: number, s1: number, s2: number, s3: number): [number, number] {
  const sc = [s0, s1, s2, s3];
  // Rank of each score: how many others come before it in (score, index) order.
  const out: number[] = [];
  for (let a = 0; a < 4; a++) {
    let rank = 0;
    for (let b = 0; b < 4; b++) if (sc[b] < sc[a] || (sc[b] === sc[a] && b < a)) rank++;
    if (rank < 2) out.push(a);
  }
  return [out[0], out[1]];
}

/** The magnitude 2:4 mask of w [k, n]: per quad and column, the 2 smallest |w| pruned. */
export function magnitudeMask24(w: ArrayLike<number>, k: number, n: number): Uint8Array {
  if (k % 4 !== 0 || w.length !== k * n) throw new ShapeError(`magnitudeMask24: expected [k, n] with k % 4 == 0, got ${w.length} values for k = ${k}`);
  const mask = new Uint8Array(k * n);
  for (let r = 0; r < k; r += 4) {
    for (let j = 0; j < n; j++) {
      const b = r * n + j;
      const [a, c] = pruneTwoOfFour(Math.abs(w[b]), Math.abs(w[b + n]), Math.abs(w[b + 2 * n]), Math.abs(w[b + 3 * n]));
      mask[b + a * n] = 1;
      mask[b + c * n] = 1;
    }
  }
  return mask;
}

/**
 * The first quad of `mask` [k, n] that does not prune exactly 2 of its 4 entries, or undefined
 * when every quad does.
 */
export function first24Violation(mask: Uint8Array, k: number, n: number): { row: number; col: number; pruned: number } | undefined {
  if (k % 4 !== 0 || mask.length !== k * n) throw new ShapeError(`mask: expected [${k}, ${n}] with k % 4 == 0, got ${mask.length} values`);
  for (let r = 0; r < k; r += 4)
    for (let j = 0; j < n; j++) {
      const b = r * n + j;
      const c = mask[b] + mask[b + n] + mask[b + 2 * n] + mask[b + 3 * n];
      if (c !== 2) return { row: r, col: j, pruned: c };
    }
  return undefined;
}

// The first quad of a layer's codes with fewer than 2 zero-point entries (@marlin/sparse's check,
// general over bits, zero points and g_idx): the test writeLinear makes before writing a 2:4 layer.
export { first24CodeViolation } from "@marlin/sparse";
