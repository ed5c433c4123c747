import { AlignmentError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { numGroups, type QuantizedLayer, symmetricZero, validateLayer } from "../quantize.js";
import type { Tensor } from "../safetensors/reader.js";
import { checkSymmetricZeros, packCols, unpackCols } from "./gptq.js";
import { asF16, asInt32, expectShape, f16Tensor, int32Tensor, shapeOf, type TensorLike } from "./tensors.js";

/** AWQ (gemm) packs 8 nibbles per int32 along n, nibble i holding column AWQ_ORDER[i]. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

export interface AwqTensors {
  qweight: TensorLike;
  qzeros?: TensorLike;
  scales: TensorLike;
}

export interface AwqLayerConfig {
  groupSize: number;
  /** AWQ's zero_point flag; false means symmetric with zero 8 and no qzeros. Default true. */
  zeroPoint?: boolean;
  /** Only 4 bits exist in AWQ gemm checkpoints. */
  bits?: 4;
  k?: number;
  n?: number;
}

/** AWQ gemm tensors (qweight [k, n/8], qzeros [groups, n/8], scales [groups, n]) to a QuantizedLayer. */
export function fromAwq(t: AwqTensors, cfg: AwqLayerConfig): QuantizedLayer {
  const bits = cfg.bits ?? 4;
  if (bits !== 4) throw new InvalidArgumentError(`AWQ gemm layers are 4-bit, got ${bits}`);
  const shape = shapeOf(t.qweight);
  let k: number;
  let n: number;
  if (shape) {
    if (shape.length !== 2) throw new ShapeError(`qweight must be 2-D, got [${shape}]`);
    k = shape[0];
    n = shape[1] * 8;
  } else {
    if (cfg.k === undefined || cfg.n === undefined) throw new InvalidArgumentError("k and n are needed");
    k = cfg.k;
    n = cfg.n;
  }
  const { groupSize } = cfg;
  if (groupSize !== -1 && k % groupSize !== 0) throw new ShapeError(`k=${k} is not a multiple of ${groupSize}`);
  const groups = numGroups(k, groupSize);
  expectShape(t.scales, "scales", [groups, n]);
  expectShape(t.qzeros, "qzeros", [groups, n / 8]);
  const q = unpackCols(asInt32(t.qweight, "qweight", (k * n) / 8), k, n, 4, AWQ_ORDER);
  const scales = asF16(t.scales, "scales", groups * n);
  const zeroPoint = cfg.zeroPoint ?? true;
  const layer: QuantizedLayer = { k, n, bits: 4, groupSize, symmetric: !zeroPoint, q, scales };
  const zeros = t.qzeros ? unpackCols(asInt32(t.qzeros, "qzeros", (groups * n) / 8), groups, n, 4, AWQ_ORDER) : undefined;
  if (zeroPoint) {
    if (!zeros) throw new InvalidArgumentError("AWQ with zero_point needs qzeros");
    layer.zeros = zeros;
  } else if (zeros) checkSymmetricZeros(zeros, n, 4, "qzeros");
  validateLayer(layer);
  return layer;
}

export interface AwqExport {
  qweight: Tensor;
  qzeros: Tensor;
  scales: Tensor;
}

/** A 4-bit layer without act-order to AWQ gemm tensors (symmetric layers get zeros of 8). */
export function toAwq(layer: QuantizedLayer): AwqExport {
  validateLayer(layer);
  const { k, n, bits, groupSize } = layer;
  if (bits !== 4) throw new InvalidArgumentError(`AWQ gemm layers are 4-bit, got ${bits}`);
  if (layer.gIdx) throw new InvalidArgumentError("AWQ has no act-order (g_idx)");
  if (n % 8 !== 0) throw new AlignmentError(`AWQ packing needs n % 8 == 0, got ${n}`);
  const groups = numGroups(k, groupSize);
  const zeros = layer.zeros ?? new Uint8Array(groups * n).fill(symmetricZero(4));
  return {
    qweight: int32Tensor(packCols(layer.q, k, n, 4, AWQ_ORDER), [k, n / 8]),
    qzeros: int32Tensor(packCols(zeros, groups, n, 4, AWQ_ORDER), [groups, n / 8]),
    scales: f16Tensor(layer.scales.slice(), [groups, n]),
  };
}
