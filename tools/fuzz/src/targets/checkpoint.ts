/**
 * Quantized-checkpoint tensors: a real small layer (RTN) written as GPTQ v1/v2, AWQ gemm or Marlin
 * tensors, then edited (shapes, dtypes, values such as Inf scales or foreign zeros, missing
 * tensors) and its quantization config edited (bits, group size, sym, format). An accepted layer
 * must dequantize to finite weights.
 */
import type { Rng } from "@marlin/core";
import {
  dequantize,
  f16ToF32,
  f32ToBf16,
  loadQuantizedLayer,
  packMarlin,
  parseQuantizationConfig,
  quantizeRtn,
  type Tensor,
  type TensorSource,
  toAwq,
  toGptq,
  toMarlinCheckpoint,
} from "@marlin/format";
import { chance, edgeNumber, mutateJson, pick } from "../mutate.js";
import type { Target } from "./types.js";

const PREFIX = "model.layers.0.mlp.up_proj";

interface Case {
  tensors: Map<string, Tensor>;
  config: Record<string, unknown>;
}

function valid(rng: Rng): Case {
  const format = pick(rng, ["gptq", "gptq_v2", "awq", "marlin"] as const);
  const k = format === "marlin" ? 128 * rng.int(1, 3) : pick(rng, [32, 64, 128, 256]);
  const n = format === "marlin" ? 64 * rng.int(1, 3) : pick(rng, [8, 16, 32, 64]);
  const bits = format === "gptq" || format === "gptq_v2" ? pick(rng, [4, 8] as const) : 4;
  const groupSize = pick(rng, [-1, 32, 64, 128].filter((g) => g === -1 || k % g === 0));
  const symmetric = format === "marlin" ? true : chance(rng, 0.5);
  const w = new Float32Array(k * n);
  rng.fillNormal(w, 0.05);
  const layer = quantizeRtn(w, k, n, { bits, groupSize, symmetric });
  const tensors = new Map<string, Tensor>();
  let config: Record<string, unknown>;
  if (format === "marlin") {
    const t = toMarlinCheckpoint(packMarlin(layer));
    tensors.set(`${PREFIX}.B`, t.B).set(`${PREFIX}.s`, t.s);
    config = { quant_method: "gptq", checkpoint_format: "marlin", bits: 4, group_size: groupSize, sym: true };
  } else if (format === "awq") {
    const t = toAwq(layer);
    tensors.set(`${PREFIX}.qweight`, t.qweight).set(`${PREFIX}.qzeros`, t.qzeros).set(`${PREFIX}.scales`, t.scales);
    config = { quant_method: "awq", bits: 4, group_size: groupSize, zero_point: !symmetric, version: "gemm" };
  } else {
    const t = toGptq(layer, { version: format === "gptq" ? 1 : 2 });
    for (const [name, x] of Object.entries(t)) tensors.set(`${PREFIX}.${name}`, x);
    config = { quant_method: "gptq", bits, group_size: groupSize, sym: symmetric, desc_act: false, checkpoint_format: format };
  }
  return { tensors, config };
}

/** One edit of one tensor: its shape, its dtype (with data converted or reinterpreted), its values, or its presence. */
function editTensor(rng: Rng, c: Case): void {
  const names = [...c.tensors.keys()];
  const name = pick(rng, names);
  const t = c.tensors.get(name)!;
  switch (rng.int(0, 6)) {
    case 0:
      c.tensors.delete(name);
      break;
    case 1: {
      // Same element count, another layout ([384, 3] for [3, 384]; 1-D), or a wrong count.
      const numel = t.shape.reduce((a, d) => a * d, 1);
      const shape = pick(rng, [[numel], [...t.shape].reverse(), [t.shape[0] * 2, Math.floor((t.shape[1] ?? 2) / 2)], [1, numel], [numel, 1, 1]]);
      c.tensors.set(name, { ...t, shape });
      break;
    }
    case 2: {
      if (t.dtype === "float16") {
        // Inf / NaN / huge scales, or the same bits relabelled bf16, or converted to fp32 / bf16.
        const d = (t.data as Uint16Array).slice();
        const v = pick(rng, [0x7c00, 0xfc00, 0x7e00, 0x7bff, 0x0001, 0]);
        if (chance(rng, 0.5)) d.fill(v);
        else d[rng.int(0, d.length)] = v;
        c.tensors.set(name, { ...t, data: d });
      } else if (t.data instanceof Int32Array) {
        const d = t.data.slice();
        for (let e = 0; e < rng.int(1, 4); e++) d[rng.int(0, d.length)] = pick(rng, [-1, 0, 0x7f7f7f7f, 0x88888888 | 0, rng.int(-(2 ** 31), 2 ** 31), 2 ** 31 - 1]);
        c.tensors.set(name, { ...t, data: d });
      }
      break;
    }
    case 3: {
      if (t.dtype !== "float16") break;
      const src = f16ToF32(t.data as Uint16Array);
      if (chance(rng, 0.5)) {
        for (let i = 0; i < src.length; i++) src[i] *= pick(rng, [1, 1e-9, 1e9, -1]);
        c.tensors.set(name, { dtype: "float32", shape: t.shape, data: src });
      } else c.tensors.set(name, { dtype: "bfloat16", shape: t.shape, data: f32ToBf16(src) });
      break;
    }
    case 4:
      c.tensors.set(name, { ...t, dtype: pick(rng, ["uint8", "int64", "float32", "bfloat16", "int16"] as const) } as Tensor);
      break;
    default:
      c.tensors.set(name, { ...t, shape: t.shape.map((d) => (chance(rng, 0.3) ? edgeNumber(rng) : d)) });
  }
}

function source(tensors: Map<string, Tensor>): TensorSource {
  const infos = new Map([...tensors].map(([name, t]) => [name, { dtype: t.dtype, shape: t.shape, byteOffset: 0, byteLength: t.data.byteLength }]));
  return {
    tensors: infos,
    metadata: {},
    read: async (name) => tensors.get(name)!,
    close: async () => {},
  };
}

export const checkpointTarget: Target = {
  name: "checkpoint",
  async run(rng) {
    const c = valid(rng);
    const mode = rng.int(0, 8);
    if (mode < 4) editTensor(rng, c);
    else if (mode < 6) c.config = mutateJson(rng, c.config) as Record<string, unknown>;
    else if (mode === 6) {
      editTensor(rng, c);
      c.config = mutateJson(rng, c.config) as Record<string, unknown>;
    }
    const cfg = parseQuantizationConfig(c.config, "config.json");
    const layer = await loadQuantizedLayer(source(c.tensors), PREFIX, cfg);
    const w = dequantize(layer);
    for (let i = 0; i < w.length; i++) if (!Number.isFinite(w[i])) throw new Error(`accepted layer dequantizes to ${w[i]} at ${i}`);
  },
};
