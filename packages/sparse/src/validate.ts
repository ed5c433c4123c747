/**
 * Checks of 2:4 layers, all before anything is allocated: typed errors from @marlin/core naming
 * what is wrong (the first chunk that is not 2:4 by its layer row and column).
 */
import { AlignmentError, InvalidArgumentError, ShapeError } from "@marlin/core";
import type { QuantizedLayer } from "@marlin/format";
import { QUAD_K, SPARSE24_GROUP_SIZES, type Sparse24Layer, sparse24Groups, TILE_N } from "./layout.js";

/** A weight with more than 2 nonzero values in some 4 consecutive inputs: names the first such chunk. */
export class NotSparse24Error extends InvalidArgumentError {
  /** The chunk's first input (layer row of QuantizedLayer's [k, n]); it spans rows row..row+3. */
  readonly row: number;
  /** The output (layer column). */
  readonly col: number;
  readonly nonzeros: number;
  constructor(row: number, col: number, nonzeros: number, what = "layer") {
    super(`${what} is not 2:4 sparse: rows ${row}..${row + 3} of column ${col} hold ${nonzeros} nonzero values (at most 2 of every 4 consecutive inputs)`);
    this.row = row;
    this.col = col;
    this.nonzeros = nonzeros;
  }
}

/** Shape and kind rules of the layout (k % 128, n % 16, 4-bit, group -1 or 128). */
export function checkSparse24Shape(k: number, n: number, bits: number, groupSize: number, what = "layer"): void {
  if (!Number.isSafeInteger(k) || !Number.isSafeInteger(n) || k <= 0 || n <= 0) throw new ShapeError(`${what}: invalid shape k=${k}, n=${n}`);
  if (bits !== 4) throw new InvalidArgumentError(`${what}: the 2:4 layout holds 4-bit weights, got ${bits}-bit`);
  if (!SPARSE24_GROUP_SIZES.includes(groupSize)) throw new InvalidArgumentError(`${what}: group size ${groupSize} is not supported by the 2:4 layout (-1, 128)`);
  if (k % QUAD_K !== 0) throw new AlignmentError(`${what}: the 2:4 layout needs k % ${QUAD_K} == 0, got k=${k}`);
  if (n % TILE_N !== 0) throw new AlignmentError(`${what}: the 2:4 layout needs n % ${TILE_N} == 0, got n=${n}`);
}

/**
 * The first quad of a layer's codes (QuantizedLayer: q [k, n], scales [groups, n], zeros when
 * asymmetric) with fewer than 2 entries that dequantize to exactly 0 (code = zero point), or
 * undefined when the layer is 2:4. A kept weight may round to 0 too, so a quad may have more.
 */
export function first24CodeViolation(layer: {
  k: number;
  n: number;
  bits: number;
  groupSize: number;
  q: Uint8Array;
  zeros?: Uint8Array;
  gIdx?: Int32Array;
}): { row: number; col: number; zeros: number } | undefined {
  const { k, n, q } = layer;
  if (k % 4 !== 0) return { row: k - (k % 4), col: 0, zeros: 0 };
  const mid = 1 << (layer.bits - 1);
  const groupOf = (r: number) => (layer.gIdx ? layer.gIdx[r] : layer.groupSize > 0 ? Math.floor(r / layer.groupSize) : 0);
  const zeroAt = (r: number, j: number) => (layer.zeros ? layer.zeros[groupOf(r) * n + j] : mid);
  for (let r = 0; r < k; r += 4)
    for (let j = 0; j < n; j++) {
      let c = 0;
      for (let a = 0; a < 4; a++) if (q[(r + a) * n + j] === zeroAt(r + a, j)) c++;
      if (c < 2) return { row: r, col: j, zeros: c };
    }
  return undefined;
}

/** The first chunk of 4 inputs with more than 2 nonzero codes (4-bit symmetric), or undefined when the layer is 2:4. */
export function findNot24(q: Uint8Array, k: number, n: number): { row: number; col: number; nonzeros: number } | undefined {
  const bad = first24CodeViolation({ k, n, bits: 4, groupSize: -1, q });
  return bad && { row: bad.row, col: bad.col, nonzeros: 4 - bad.zeros };
}

/** Everything packSparse24 needs of a QuantizedLayer, checked. */
export function checkPackable(layer: QuantizedLayer, what = "layer"): void {
  if (!layer || typeof layer !== "object") throw new InvalidArgumentError(`${what}: expected a QuantizedLayer`);
  const { k, n } = layer;
  checkSparse24Shape(k, n, layer.bits, layer.groupSize, what);
  if (!layer.symmetric || layer.zeros) throw new InvalidArgumentError(`${what}: the 2:4 layout holds symmetric weights (no zero points)`);
  if (layer.gIdx) throw new InvalidArgumentError(`${what}: act-order (g_idx) is not supported by the 2:4 layout`);
  if (!(layer.q instanceof Uint8Array) || layer.q.length !== k * n) throw new ShapeError(`${what}: q has ${layer.q?.length} elements, expected ${k}x${n}`);
  const groups = sparse24Groups(k, layer.groupSize);
  if (!(layer.scales instanceof Uint16Array) || layer.scales.length !== groups * n)
    throw new ShapeError(`${what}: scales has ${layer.scales?.length} elements, expected ${groups}x${n}`);
  for (let x = 0; x < layer.q.length; x++) if (layer.q[x] > 15) throw new InvalidArgumentError(`${what}: q[${x}] = ${layer.q[x]} is not a 4-bit code`);
  const bad = findNot24(layer.q, k, n);
  if (bad) throw new NotSparse24Error(bad.row, bad.col, bad.nonzeros, what);
}

/** A packed layer's arrays fit its shape. */
export function checkPacked(p: Sparse24Layer, what = "sparse24 layer"): void {
  if (!p || typeof p !== "object") throw new InvalidArgumentError(`${what}: expected a Sparse24Layer`);
  checkSparse24Shape(p.k, p.n, p.bits, p.groupSize, what);
  const words = (p.k * p.n) / 16;
  if (!(p.values instanceof Int32Array) || p.values.length !== words) throw new ShapeError(`${what}: values has ${p.values?.length} words, expected ${words}`);
  if (!(p.meta instanceof Int32Array) || p.meta.length !== words / 2) throw new ShapeError(`${what}: meta has ${p.meta?.length} words, expected ${words / 2}`);
  const s = sparse24Groups(p.k, p.groupSize) * p.n;
  if (!(p.scales instanceof Uint16Array) || p.scales.length !== s) throw new ShapeError(`${what}: scales has ${p.scales?.length} elements, expected ${s}`);
}

/**
 * Every metadata nibble is two ascending indices (idx0 < idx1): anything else is undefined
 * behaviour for mma.sp, so files are checked when read. Returns the first bad word, or -1.
 */
export function firstBadMetaWord(meta: Int32Array): number {
  for (let x = 0; x < meta.length; x++) {
    const w = meta[x];
    for (let c = 0; c < 8; c++) {
      const nib = (w >>> (4 * c)) & 0xf;
      if ((nib & 3) >= nib >> 2) return x;
    }
  }
  return -1;
}
