import { FormatError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { type MarlinLayer, unpackMarlin } from "../marlin/pack.js";
import type { QuantizedLayer } from "../quantize.js";
import type { Tensor, TensorSource } from "../safetensors/reader.js";
import { fromAwq } from "./awq.js";
import type { QuantizationConfig } from "./config.js";
import { fromGptq } from "./gptq.js";
import { asF16, asInt32, f16Tensor, int32Tensor } from "./tensors.js";

/**
 * Published Marlin checkpoints (`checkpoint_format: "marlin"` / quant_method "marlin") hold per
 * layer `B` int32 [k/16, 2n] and `s` fp16 [groups, n], 4-bit symmetric, no act-order.
 */
export function fromMarlinCheckpoint(t: { B: Tensor; s: Tensor }, cfg: { groupSize: number }): MarlinLayer {
  if (t.B.shape.length !== 2 || t.s.shape.length !== 2) {
    throw new ShapeError(`B [${t.B.shape}] and s [${t.s.shape}] must be 2-D`);
  }
  const k = t.B.shape[0] * 16;
  const n = t.B.shape[1] / 2;
  const groups = t.s.shape[0];
  const { groupSize } = cfg;
  const want = groupSize === -1 ? 1 : k / groupSize;
  if (!Number.isInteger(n) || t.s.shape[1] !== n || groups !== want) {
    throw new ShapeError(`B [${t.B.shape}] and s [${t.s.shape}] do not fit group size ${cfg.groupSize}`);
  }
  return {
    k,
    n,
    bits: 4,
    groupSize,
    symmetric: true,
    qweight: asInt32(t.B, "B", (k / 16) * 2 * n),
    scales: asF16(t.s, "s", groups * n),
  };
}

/** The published Marlin tensors of a packed 4-bit symmetric layer without act-order. */
export function toMarlinCheckpoint(p: MarlinLayer): { B: Tensor; s: Tensor } {
  if (p.bits !== 4 || !p.symmetric || p.perm) {
    throw new InvalidArgumentError("the published Marlin format holds 4-bit symmetric layers without act-order only");
  }
  return {
    B: int32Tensor(p.qweight, [p.k / 16, 2 * p.n]),
    s: f16Tensor(p.scales, [p.scales.length / p.n, p.n]),
  };
}

/**
 * Reads one quantized linear layer `<prefix>.*` from a checkpoint, in whatever format the
 * quantization config names (GPTQ v1/v2, AWQ gemm, Marlin), as a plain QuantizedLayer.
 */
export async function loadQuantizedLayer(
  src: TensorSource,
  prefix: string,
  cfg: QuantizationConfig,
): Promise<QuantizedLayer> {
  const has = (s: string) => src.tensors.has(`${prefix}.${s}`);
  const get = async (s: string): Promise<Tensor> => {
    if (!has(s)) throw new FormatError(`missing tensor for layer ${prefix}`, { tensor: `${prefix}.${s}` });
    return src.read(`${prefix}.${s}`);
  };
  if (cfg.checkpointFormat === "marlin") {
    return unpackMarlin(fromMarlinCheckpoint({ B: await get("B"), s: await get("s") }, cfg));
  }
  if (cfg.quantMethod === "awq") {
    return fromAwq(
      { qweight: await get("qweight"), qzeros: has("qzeros") ? await get("qzeros") : undefined, scales: await get("scales") },
      { groupSize: cfg.groupSize, zeroPoint: cfg.zeroPoint },
    );
  }
  return fromGptq(
    {
      qweight: await get("qweight"),
      qzeros: has("qzeros") ? await get("qzeros") : undefined,
      scales: await get("scales"),
      g_idx: has("g_idx") ? await get("g_idx") : undefined,
    },
    { bits: cfg.bits, groupSize: cfg.groupSize, sym: cfg.sym, descAct: cfg.descAct, version: cfg.gptqVersion ?? 1 },
  );
}
