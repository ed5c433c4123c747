/**
 * Tensor-parallel shards of one linear layer, each a layer of its own kind and shape:
 *
 * - shardColumns: output features [start, end) (column-parallel q/k/v, gate/up, lm_head). k stays
 *   whole, so quantized shards keep every group, and act-order shards keep g_idx as it is.
 * - shardRows: input features [start, end) (row-parallel o_proj, down_proj). A quantized shard
 *   must hold whole groups, so rows of the groups it touches but does not own are zero rows, and
 *   the shard's input is the slice padded with zero columns (InputPad). Plain groups: zero rows
 *   before and after the slice. Act-order: the shard's rows keep their order, each group it
 *   touches is completed with zero rows at the end, and g_idx is renumbered over those groups,
 *   so the shard stays an act-order layer whose groups each hold exactly groupSize rows.
 * - padSource: zero rows and columns so k and n meet a kernel's shape rules (shard-linear.ts
 *   decides when).
 *
 * Zero rows meet zero input columns, and zero output columns are cropped: padding never changes
 * a result.
 */
import { InvalidArgumentError, weightKindHooks } from "@marlin/core";
import { numGroups, type QuantizedLayer, symmetricZero, type Tensor } from "@marlin/format";
import { type LinearSource, linearToF32, toLinearWeights } from "../model/weights.js";

/** Zero columns around a row shard's input slice: the shard's k = before + (end - start) + after. */
export interface InputPad {
  before: number;
  after: number;
}

export const NO_PAD: InputPad = { before: 0, after: 0 };

export interface RowShard {
  source: LinearSource;
  pad: InputPad;
}

type Dense = Extract<LinearSource, { kind: "dense" }>;
type TypedRows = Float32Array | Uint16Array;

function checkRange(what: string, start: number, end: number, total: number): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > total || start >= end)
    throw new InvalidArgumentError(`${what} shard [${start}, ${end}) is not a non-empty range of [0, ${total})`);
}

/** Output features [start, end) of a layer (W's rows). */
export function shardColumns(src: LinearSource, start: number, end: number): LinearSource {
  checkRange(`${src.name} n`, start, end, src.n);
  const n = end - start;
  const bias = src.bias?.slice(start, end);
  if (src.kind === "dense") {
    const d = src.weight.data as TypedRows;
    const weight: Tensor = { dtype: src.weight.dtype, shape: [n, src.k], data: d.slice(start * src.k, end * src.k) };
    return { kind: "dense", n, k: src.k, weight, bias, name: src.name };
  }
  if (src.kind === "quantized") return { kind: "quantized", n, k: src.k, layer: quantColumns(src.layer, start, end), bias, name: src.name };
  return sliceOther(src, "n", start, end, bias);
}

/** Input features [start, end) of a layer (W's columns); bias is left to the caller (added once). */
export function shardRows(src: LinearSource, start: number, end: number): RowShard {
  checkRange(`${src.name} k`, start, end, src.k);
  const k = end - start;
  if (src.kind === "dense") {
    const d = src.weight.data as TypedRows;
    const out = new (d.constructor as new (len: number) => TypedRows)(src.n * k);
    for (let j = 0; j < src.n; j++) out.set(d.subarray(j * src.k + start, j * src.k + end), j * k);
    return { source: { kind: "dense", n: src.n, k, weight: { dtype: src.weight.dtype, shape: [src.n, k], data: out }, name: src.name }, pad: NO_PAD };
  }
  if (src.kind === "quantized") {
    const { layer, pad } = quantRows(src.layer, start, end);
    return { source: { kind: "quantized", n: src.n, k: layer.k, layer, name: src.name }, pad };
  }
  return { source: sliceOther(src, "k", start, end, undefined), pad: NO_PAD };
}

function sliceOther(src: Extract<LinearSource, { kind: "extension" }>, axis: "n" | "k", start: number, end: number, bias: Float32Array | undefined): LinearSource {
  const n = axis === "n" ? end - start : src.n;
  const k = axis === "k" ? end - start : src.k;
  const slice = weightKindHooks(src.weights.kind)?.slice;
  if (slice) {
    const weights = slice(toLinearWeights(src, undefined), axis, start, end) as typeof src.weights;
    return { kind: "extension", n, k, weights, bias, name: src.name };
  }
  // No slice hook: the shard is served dense (correct; the kind's kernels are not used).
  const dense: Dense = { kind: "dense", n: src.n, k: src.k, weight: { dtype: "float32", shape: [src.n, src.k], data: linearToF32(src) }, name: src.name };
  return axis === "n" ? shardColumns({ ...dense, bias: src.bias }, start, end) : shardRows(dense, start, end).source;
}

function groupsOf(l: QuantizedLayer): number {
  return l.scales.length / l.n;
}

/** Columns [start, end) of q [k, n], scales and zeros [groups, n]; g_idx unchanged. */
function quantColumns(l: QuantizedLayer, start: number, end: number): QuantizedLayer {
  const n = end - start;
  const cols = <T extends Uint8Array | Uint16Array>(a: T, rows: number): T => {
    const out = new (a.constructor as new (len: number) => T)(rows * n);
    for (let i = 0; i < rows; i++) out.set(a.subarray(i * l.n + start, i * l.n + end) as T, i * n);
    return out;
  };
  const G = groupsOf(l);
  return { ...l, n, q: cols(l.q, l.k), scales: cols(l.scales, G), zeros: l.zeros && cols(l.zeros, G), gIdx: l.gIdx?.slice() };
}

/** q rows of a new layer at the zero point of their group (so they dequantize to exactly 0). */
function zeroRows(q: Uint8Array, rows: Iterable<[row: number, group: number]>, n: number, l: QuantizedLayer, zeros?: Uint8Array): void {
  const zs = symmetricZero(l.bits);
  for (const [i, g] of rows) {
    if (zeros) q.set(zeros.subarray(g * n, g * n + n), i * n);
    else q.fill(zs, i * n, i * n + n);
  }
}

function quantRows(l: QuantizedLayer, start: number, end: number): { layer: QuantizedLayer; pad: InputPad } {
  const { n } = l;
  const k = end - start;
  const G = groupsOf(l);
  const g = l.groupSize;
  if (!l.gIdx && (g === -1 || G === 1)) {
    // one group over all of k: the scales hold for any slice of rows
    return { layer: { ...l, k, groupSize: -1, q: l.q.slice(start * n, end * n), scales: l.scales.slice(), zeros: l.zeros?.slice() }, pad: NO_PAD };
  }
  if (!l.gIdx) {
    const g0 = Math.floor(start / g);
    const g1 = Math.ceil(end / g);
    const pad = { before: start - g0 * g, after: g1 * g - end };
    const kk = (g1 - g0) * g;
    const q = new Uint8Array(kk * n);
    const zeros = l.zeros?.slice(g0 * n, g1 * n);
    q.set(l.q.subarray(start * n, end * n), pad.before * n);
    const padRows: [number, number][] = [];
    for (let i = 0; i < pad.before; i++) padRows.push([i, 0]);
    for (let i = pad.before + k; i < kk; i++) padRows.push([i, g1 - g0 - 1]);
    zeroRows(q, padRows, n, l, zeros);
    return { layer: { ...l, k: kk, q, scales: l.scales.slice(g0 * n, g1 * n), zeros }, pad };
  }
  // act-order: the groups this slice touches, renumbered in ascending order, each completed to g rows
  const used = [...new Set(l.gIdx.subarray(start, end))].sort((a, b) => a - b);
  const local = new Map(used.map((grp, i) => [grp, i]));
  const count = new Int32Array(used.length);
  const gIdx = new Int32Array(used.length * g);
  for (let i = 0; i < k; i++) {
    const lg = local.get(l.gIdx[start + i])!;
    gIdx[i] = lg;
    if (++count[lg] > g) throw new InvalidArgumentError(`g_idx puts more than ${g} rows in group ${used[lg]}`);
  }
  const kk = used.length * g;
  const q = new Uint8Array(kk * n);
  q.set(l.q.subarray(start * n, end * n));
  const gather = <T extends Uint8Array | Uint16Array>(a: T): T => {
    const out = new (a.constructor as new (len: number) => T)(used.length * n);
    for (let i = 0; i < used.length; i++) out.set(a.subarray(used[i] * n, used[i] * n + n) as T, i * n);
    return out;
  };
  const zeros = l.zeros && gather(l.zeros);
  const padRows: [number, number][] = [];
  let row = k;
  for (let lg = 0; lg < used.length; lg++)
    for (let c = count[lg]; c < g; c++, row++) {
      gIdx[row] = lg;
      padRows.push([row, lg]);
    }
  zeroRows(q, padRows, n, l, zeros);
  return { layer: { ...l, k: kk, q, scales: gather(l.scales), zeros, gIdx }, pad: { before: 0, after: kk - k } };
}

/** The strictest shape rules among the registered kernels (Marlin: k % 128, n % 64); shards are padded to them. */
export const PAD_K = 128;
export const PAD_N = 64;

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);

/** The k and n a source is padded to: multiples of PAD_K (and of its group size) and PAD_N. */
export function paddedShape(src: LinearSource): { k: number; n: number } {
  const g = src.kind === "quantized" && src.layer.groupSize > 0 && groupsOf(src.layer) > 1 ? src.layer.groupSize : 1;
  const unit = (PAD_K * g) / gcd(PAD_K, g);
  return { k: Math.ceil(src.k / unit) * unit, n: Math.ceil(src.n / PAD_N) * PAD_N };
}

/** The layer with zero input rows appended up to k and zero output columns up to n; undefined for kinds that cannot be padded. */
export function padSource(src: LinearSource, k: number, n: number): LinearSource | undefined {
  if (k < src.k || n < src.n) throw new InvalidArgumentError(`cannot pad ${src.k}x${src.n} down to ${k}x${n}`);
  const bias = src.bias && n > src.n ? Object.assign(new Float32Array(n), src.bias) : src.bias;
  if (src.kind === "dense") {
    const d = src.weight.data as TypedRows;
    const out = new (d.constructor as new (len: number) => TypedRows)(n * k);
    for (let j = 0; j < src.n; j++) out.set(d.subarray(j * src.k, j * src.k + src.k), j * k);
    return { kind: "dense", n, k, weight: { dtype: src.weight.dtype, shape: [n, k], data: out }, bias, name: src.name };
  }
  if (src.kind === "quantized") return { kind: "quantized", n, k, layer: padQuantized(src.layer, k, n), bias, name: src.name };
  return undefined;
}

function padQuantized(l: QuantizedLayer, k: number, n: number): QuantizedLayer {
  const G = groupsOf(l);
  const g = l.groupSize;
  const perChannel = !l.gIdx && (g === -1 || G === 1);
  // new groups for the appended rows (scale 0); one group over all of k gains none
  const G2 = perChannel ? 1 : l.gIdx ? G + Math.ceil((k - l.k) / g) : numGroups(k, g);
  const widen = <T extends Uint8Array | Uint16Array>(a: T, rows: number, fill: number): T => {
    const out = new (a.constructor as new (len: number) => T)(rows * n).fill(fill) as T;
    for (let i = 0; i < Math.min(rows, a.length / l.n); i++) out.set(a.subarray(i * l.n, i * l.n + l.n) as T, i * n);
    return out;
  };
  const zs = symmetricZero(l.bits);
  const scales = widen(l.scales, G2, 0);
  const zeros = l.zeros && widen(l.zeros, G2, zs);
  const q = widen(l.q, k, zs);
  let gIdx: Int32Array | undefined;
  if (l.gIdx) {
    gIdx = new Int32Array(k);
    gIdx.set(l.gIdx);
    for (let i = l.k; i < k; i++) gIdx[i] = G + Math.floor((i - l.k) / g);
  }
  if (zeros) {
    // appended columns and rows sit at their group's zero point
    const grp = (i: number) => (gIdx ? gIdx[i] : perChannel ? 0 : Math.floor(i / g));
    for (let i = 0; i < k; i++) {
      const z = grp(i) * n;
      for (let j = i < l.k ? l.n : 0; j < n; j++) q[i * n + j] = zeros[z + j];
    }
  }
  return { ...l, k, n, q, scales, zeros, gIdx };
}
