import { AlignmentError, FormatError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { type Bits, checkBitsAndGroup, numGroups, type QuantizedLayer, symmetricZero, validateLayer } from "../quantize.js";
import type { Tensor } from "../safetensors/reader.js";
import { asF16, asInt32, expectShape, f16Tensor, int32Tensor, shapeOf, type TensorLike } from "./tensors.js";

/** Packs q [rows, n] along rows: word [r, j] holds rows r*per..r*per+per-1, low bits first. */
export function packRows(q: Uint8Array, rows: number, n: number, bits: Bits): Int32Array {
  const per = 32 / bits;
  if (rows % per !== 0) throw new AlignmentError(`${rows} rows are not a multiple of ${per}`);
  const out = new Int32Array((rows / per) * n);
  for (let r = 0; r < rows / per; r++) {
    const dst = r * n;
    for (let i = 0; i < per; i++) {
      const src = (r * per + i) * n;
      const shift = bits * i;
      for (let j = 0; j < n; j++) out[dst + j] |= q[src + j] << shift;
    }
  }
  return out;
}

export function unpackRows(packed: Int32Array, rows: number, n: number, bits: Bits): Uint8Array {
  const per = 32 / bits;
  const mask = (1 << bits) - 1;
  const q = new Uint8Array(rows * n);
  for (let r = 0; r < rows / per; r++) {
    const src = r * n;
    for (let i = 0; i < per; i++) {
      const dst = (r * per + i) * n;
      const shift = bits * i;
      for (let j = 0; j < n; j++) q[dst + j] = (packed[src + j] >>> shift) & mask;
    }
  }
  return q;
}

/**
 * Packs v [rows, n] along n: word [r, w] holds columns w*per + order[i] at bits*i.
 * GPTQ uses the identity order; AWQ uses [0,2,4,6,1,3,5,7].
 */
export function packCols(v: Uint8Array, rows: number, n: number, bits: Bits, order?: readonly number[]): Int32Array {
  const per = 32 / bits;
  if (n % per !== 0) throw new AlignmentError(`n=${n} is not a multiple of ${per}`);
  const out = new Int32Array((rows * n) / per);
  for (let w = 0; w < out.length; w++) {
    let x = 0;
    for (let i = 0; i < per; i++) x |= v[w * per + (order ? order[i] : i)] << (bits * i);
    out[w] = x;
  }
  return out;
}

export function unpackCols(
  packed: Int32Array,
  rows: number,
  n: number,
  bits: Bits,
  order?: readonly number[],
): Uint8Array {
  const per = 32 / bits;
  const mask = (1 << bits) - 1;
  const v = new Uint8Array(rows * n);
  for (let w = 0; w < packed.length; w++) {
    for (let i = 0; i < per; i++) v[w * per + (order ? order[i] : i)] = (packed[w] >>> (bits * i)) & mask;
  }
  return v;
}

export interface GptqTensors {
  qweight: TensorLike;
  qzeros?: TensorLike;
  scales: TensorLike;
  g_idx?: TensorLike;
}

export interface GptqLayerConfig {
  bits: Bits;
  groupSize: number;
  sym: boolean;
  /** Act-order; g_idx is kept only when set (or when g_idx is not the trivial i / groupSize). */
  descAct?: boolean;
  /** 1: "gptq" (qzeros store zero - 1), 2: "gptq_v2" (raw zeros). Default 1. */
  version?: 1 | 2;
  /** Needed when tensors are bare arrays without shapes. */
  k?: number;
  n?: number;
}

function dims(t: TensorLike, cfg: GptqLayerConfig, per: number): { k: number; n: number } {
  const shape = shapeOf(t);
  if (shape) {
    if (shape.length !== 2) throw new ShapeError(`qweight must be 2-D, got [${shape}]`);
    const k = shape[0] * per;
    const n = shape[1];
    if ((cfg.k !== undefined && cfg.k !== k) || (cfg.n !== undefined && cfg.n !== n)) {
      throw new ShapeError(`qweight [${shape}] does not match k=${cfg.k}, n=${cfg.n}`);
    }
    return { k, n };
  }
  if (cfg.k === undefined || cfg.n === undefined) {
    throw new InvalidArgumentError("k and n are needed when qweight is a bare array");
  }
  return { k: cfg.k, n: cfg.n };
}

function isTrivialGIdx(g: Int32Array, groupSize: number): boolean {
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== (groupSize === -1 ? 0 : Math.floor(i / groupSize))) return false;
  }
  return true;
}

/** GPTQ checkpoint tensors (v1 or v2, sym or asym, 4 or 8 bits, act-order) to a QuantizedLayer. */
export function fromGptq(t: GptqTensors, cfg: GptqLayerConfig): QuantizedLayer {
  const { bits, groupSize, sym } = cfg;
  if (bits !== 4 && bits !== 8) throw new InvalidArgumentError(`GPTQ bits must be 4 or 8, got ${bits}`);
  const per = 32 / bits;
  const { k, n } = dims(t.qweight, cfg, per);
  if (groupSize !== -1 && (!Number.isSafeInteger(groupSize) || groupSize <= 0)) {
    throw new InvalidArgumentError(`group size must be -1 or positive, got ${groupSize}`);
  }
  const groups = numGroups(k, groupSize);
  expectShape(t.scales, "scales", [groups, n]);
  expectShape(t.g_idx, "g_idx", [k]);
  if (t.qzeros && n % per !== 0) throw new ShapeError(`n=${n} is not a multiple of ${per}, so qzeros cannot be packed along n`);
  expectShape(t.qzeros, "qzeros", [groups, n / per]);
  const qweight = asInt32(t.qweight, "qweight", (k / per) * n);
  const q = unpackRows(qweight, k, n, bits);
  const scales = asF16(t.scales, "scales", groups * n);
  const layer: QuantizedLayer = { k, n, bits, groupSize, symmetric: sym, q, scales };
  const zeros = t.qzeros ? readZeros(t.qzeros, groups, n, bits, cfg.version ?? 1) : undefined;
  if (!sym) {
    if (!zeros) throw new InvalidArgumentError("an asymmetric GPTQ layer needs qzeros");
    layer.zeros = zeros;
  } else if (zeros) checkSymmetricZeros(zeros, n, bits, "qzeros");
  if (t.g_idx) {
    const g = asInt32(t.g_idx, "g_idx", k).slice();
    if (cfg.descAct || !isTrivialGIdx(g, groupSize)) layer.gIdx = g;
  } else if (groupSize !== -1 && k % groupSize !== 0) {
    throw new ShapeError(`k=${k} is not a multiple of the group size ${groupSize} and there is no g_idx`);
  }
  validateLayer(layer);
  return layer;
}

/** qzeros [groups, n / per] as raw zeros (v1 stores zero - 1). */
function readZeros(t: TensorLike, groups: number, n: number, bits: Bits, version: 1 | 2): Uint8Array {
  const z = unpackCols(asInt32(t, "qzeros", (groups * n) / (32 / bits)), groups, n, bits);
  if (version === 1) {
    const mask = (1 << bits) - 1;
    for (let i = 0; i < z.length; i++) z[i] = (z[i] + 1) & mask;
  }
  return z;
}

/**
 * A layer declared symmetric runs with the fixed zero 2^(bits-1) and ignores its stored zeros, so
 * they must all be that zero. Any other value means the declaration is wrong: asymmetric weights
 * (their zeros would be dropped), or words of another bit width (8-bit zeros 0x7f read as 4-bit
 * fields give 0 and 8).
 */
export function checkSymmetricZeros(zeros: Uint8Array, n: number, bits: Bits, name: string): void {
  const z0 = symmetricZero(bits);
  for (let i = 0; i < zeros.length; i++) {
    if (zeros[i] !== z0) {
      throw new FormatError(
        `the layer is declared symmetric (${bits}-bit, zero ${z0}) but ${name}[${Math.floor(i / n)}, ${i % n}] holds zero ${zeros[i]}: ` +
          "asymmetric weights, or words of another bit width? (fix sym / bits in the quantization config)",
        { tensor: name },
      );
    }
  }
}

export interface GptqExport {
  qweight: Tensor;
  qzeros: Tensor;
  scales: Tensor;
  g_idx: Tensor;
}

/**
 * A QuantizedLayer to GPTQ tensors. v1 stores (zero - 1) mod 2^bits per field (so zero 0 is
 * written as 2^bits - 1 and reads back as 0 through the +1 mod 2^bits of v1 readers);
 * symmetric layers get their fixed zero in qzeros. g_idx is always written.
 */
export function toGptq(layer: QuantizedLayer, opts: { version?: 1 | 2 } = {}): GptqExport {
  validateLayer(layer);
  const { k, n, bits, groupSize } = layer;
  checkBitsAndGroup(bits, layer.gIdx ? -1 : groupSize, k);
  const per = 32 / bits;
  if (k % per !== 0 || n % per !== 0) throw new AlignmentError(`GPTQ packing needs k and n multiples of ${per}`);
  const groups = numGroups(k, groupSize);
  const zeros = layer.zeros ? layer.zeros.slice() : new Uint8Array(groups * n).fill(symmetricZero(bits));
  if ((opts.version ?? 1) === 1) {
    const mask = (1 << bits) - 1;
    for (let i = 0; i < zeros.length; i++) zeros[i] = (zeros[i] - 1) & mask;
  }
  const gIdx = layer.gIdx
    ? layer.gIdx.slice()
    : Int32Array.from({ length: k }, (_, i) => (groupSize === -1 ? 0 : Math.floor(i / groupSize)));
  return {
    qweight: int32Tensor(packRows(layer.q, k, n, bits), [k / per, n]),
    qzeros: int32Tensor(packCols(zeros, groups, n, bits), [groups, n / per]),
    scales: f16Tensor(layer.scales.slice(), [groups, n]),
    g_idx: int32Tensor(gIdx, [k]),
  };
}
