/**
 * Llama-family weights from a checkpoint: dense (fp16 / bf16 / fp32), quantized (our Marlin
 * checkpoints, GPTQ, AWQ through @marlin/format) and 2:4 sparse (@marlin/sparse, which also
 * registers the kernels that serve them). Each linear layer is described by a
 * LinearSource that a device backend turns into what it runs.
 */
import { FormatError, InvalidArgumentError, type LinearWeights, type OtherLinearWeights, quantizedWeights, weightKindHooks } from "@marlin/core";
import { bf16ToF32, type Checkpoint, dequantize, f16ToF32, loadQuantizedLayer, type QuantizedLayer, type Tensor } from "@marlin/format";
import { hasSparse24Layer, loadSparse24Layer, sparse24Weights } from "@marlin/sparse";
import type { ModelConfig } from "./config.js";

export const LINEAR_NAMES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;
export type LinearName = (typeof LINEAR_NAMES)[number];

/**
 * A linear layer y = x W^T + b with W [n (out), k (in)]: dense (a checkpoint tensor), quantized,
 * or an extension: weights of a kind another package defines (e.g. "sparse24"), as its
 * LinearWeights, served by that kind's registered implementations.
 */
export type LinearSource =
  | { kind: "dense"; n: number; k: number; weight: Tensor; bias?: Float32Array; name: string }
  | { kind: "quantized"; n: number; k: number; layer: QuantizedLayer; bias?: Float32Array; name: string }
  | { kind: "extension"; n: number; k: number; weights: OtherLinearWeights; bias?: Float32Array; name: string };

type QuantizedSource = Extract<LinearSource, { kind: "quantized" }>;

/** The registry's view of a source (@marlin/core LinearWeights): dense fp16 bits stay fp16. */
export function toLinearWeights(src: LinearSource, bias = src.bias): LinearWeights {
  if (src.kind === "dense") {
    const t = src.weight;
    const data = t.dtype === "float16" ? (t.data as Uint16Array) : tensorToF32(t, src.name);
    return { kind: "dense", n: src.n, k: src.k, data, bias, name: src.name };
  }
  if (src.kind === "quantized") return quantizedWeights(src.layer, { bias, name: src.name });
  return { ...src.weights, n: src.n, k: src.k, bias, name: src.name };
}

export function tensorToF32(t: Tensor, name: string): Float32Array {
  switch (t.dtype) {
    case "float32":
      return t.data as Float32Array;
    case "float16":
      return f16ToF32(t.data as Uint16Array);
    case "bfloat16":
      return bf16ToF32(t.data as Uint16Array);
    default:
      throw new FormatError(`dtype ${t.dtype}, expected a floating-point tensor`, { tensor: name });
  }
}

/** W as fp32 [n, k] (quantized layers are dequantized: correct, slow, meant for the CPU path). */
export function linearToF32(src: LinearSource): Float32Array {
  if (src.kind === "dense") return tensorToF32(src.weight, src.name);
  if (src.kind === "extension") {
    const toDense = weightKindHooks(src.weights.kind)?.toDense;
    if (!toDense) throw new InvalidArgumentError(`${src.name}: weight kind "${src.weights.kind}" has no dense form registered`);
    return toDense(toLinearWeights(src));
  }
  const layer = src.layer;
  const { k, n } = layer;
  const kn = dequantize(layer); // [k, n]
  const out = new Float32Array(n * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[j * k + i] = kn[i * n + j];
  return out;
}

/** The arrays one after another (e.g. the rows of q/k/v weights fused into one linear layer). */
export function concatF32(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export interface LayerSources {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  linears: Record<LinearName, LinearSource>;
}

export interface ModelSources {
  embed: Float32Array;
  norm: Float32Array;
  /** Undefined when tied to the embedding. */
  lmHead?: LinearSource;
  layers: LayerSources[];
}

async function readF32(ckpt: Checkpoint, name: string, expect: number): Promise<Float32Array> {
  if (!ckpt.tensors.has(name)) throw new FormatError("missing tensor", { tensor: name });
  const t = await ckpt.read(name);
  const f = tensorToF32(t, name);
  if (f.length !== expect) throw new FormatError(`has ${f.length} elements, expected ${expect}`, { tensor: name });
  return f;
}

async function readLinear(ckpt: Checkpoint, config: ModelConfig, prefix: string, n: number, k: number, bias: boolean): Promise<LinearSource> {
  const has = (s: string) => ckpt.tensors.has(`${prefix}.${s}`);
  const b = bias ? await readF32(ckpt, `${prefix}.bias`, n) : undefined;
  const q = config.quantization;
  if (has("weight")) {
    const weight = await ckpt.read(`${prefix}.weight`);
    if (weight.shape.length !== 2 || weight.shape[0] !== n || weight.shape[1] !== k)
      throw new FormatError(`shape [${weight.shape}], expected [${n}, ${k}]`, { tensor: `${prefix}.weight` });
    return { kind: "dense", n, k, weight, bias: b, name: prefix };
  }
  // 2:4 sparse layers (@marlin/sparse) are recognised by their tensors, whatever the config says.
  if (hasSparse24Layer(ckpt, prefix)) {
    const layer = await loadSparse24Layer(ckpt, prefix);
    if (layer.k !== k || layer.n !== n) throw new FormatError(`2:4 layer is ${layer.k}x${layer.n}, expected ${k}x${n}`, { tensor: prefix });
    return { kind: "extension", n, k, weights: sparse24Weights(layer, { name: prefix }), bias: b, name: prefix };
  }
  if (!q) throw new FormatError("no weight tensor and no quantization_config", { tensor: `${prefix}.weight` });
  // GPTQ v1/v2 (act-order too), AWQ gemm, or our Marlin checkpoints (B / s), as config says.
  const layer: QuantizedLayer = await loadQuantizedLayer(ckpt, prefix, q);
  if (layer.k !== k || layer.n !== n) throw new FormatError(`quantized layer is ${layer.k}x${layer.n}, expected ${k}x${n}`, { tensor: prefix });
  return { kind: "quantized", n, k, layer, bias: b, name: prefix };
}

/**
 * config.json's num_hidden_layers must be the checkpoint's: fewer would silently drop the last
 * layers, more would fail only after every present layer was read.
 */
export function checkLayerCount(ckpt: Pick<Checkpoint, "tensors">, config: ModelConfig): void {
  const present = new Set<number>();
  for (const name of ckpt.tensors.keys()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) present.add(Number(m[1]));
  }
  const extra = [...present].filter((i) => i >= config.numLayers).sort((a, b) => a - b);
  if (extra.length)
    throw new FormatError(`the checkpoint holds layers up to ${extra[extra.length - 1]}, but config.json declares num_hidden_layers = ${config.numLayers}`, {
      tensor: `model.layers.${extra[0]}`,
    });
  for (let i = 0; i < config.numLayers; i++)
    if (!present.has(i))
      throw new FormatError(`config.json declares num_hidden_layers = ${config.numLayers}, but the checkpoint has no tensors of layer ${i} (it holds ${present.size})`, {
        tensor: `model.layers.${i}`,
      });
}

/** Reads every weight of a Llama-family model (layer by layer, to bound peak memory per tensor). */
export async function loadModelSources(ckpt: Checkpoint, config: ModelConfig): Promise<ModelSources> {
  checkLayerCount(ckpt, config);
  const H = config.hiddenSize;
  const qd = config.numHeads * config.headDim;
  const kvd = config.numKvHeads * config.headDim;
  const I = config.intermediateSize;
  const embed = await readF32(ckpt, "model.embed_tokens.weight", config.vocabSize * H);
  const layers: LayerSources[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    const shapes: Record<LinearName, [string, number, number, boolean]> = {
      q_proj: ["self_attn", qd, H, config.qkvBias],
      k_proj: ["self_attn", kvd, H, config.qkvBias],
      v_proj: ["self_attn", kvd, H, config.qkvBias],
      o_proj: ["self_attn", H, qd, config.oBias],
      gate_proj: ["mlp", I, H, config.mlpBias],
      up_proj: ["mlp", I, H, config.mlpBias],
      down_proj: ["mlp", H, I, config.mlpBias],
    };
    const linears = {} as Record<LinearName, LinearSource>;
    for (const name of LINEAR_NAMES) {
      const [mod, n, k, bias] = shapes[name];
      linears[name] = await readLinear(ckpt, config, `${p}.${mod}.${name}`, n, k, bias);
    }
    layers.push({
      inputNorm: await readF32(ckpt, `${p}.input_layernorm.weight`, H),
      postNorm: await readF32(ckpt, `${p}.post_attention_layernorm.weight`, H),
      linears,
    });
  }
  const norm = await readF32(ckpt, "model.norm.weight", H);
  let lmHead: LinearSource | undefined;
  const headStored = ["weight", "qweight", "B", "B_24"].some((t) => ckpt.tensors.has(`lm_head.${t}`));
  if (!config.tieWordEmbeddings || headStored) {
    if (headStored)
      lmHead = await readLinear(ckpt, config, "lm_head", config.vocabSize, H, false);
    else if (!config.tieWordEmbeddings) throw new FormatError("missing tensor", { tensor: "lm_head.weight" });
  }
  return { embed, norm, lmHead, layers };
}

/** Concatenates quantized layers along n (fused qkv / gate-up); they must share k, bits, groups and act-order. */
export function concatQuantized(layers: QuantizedLayer[]): QuantizedLayer {
  const [a] = layers;
  for (const l of layers)
    if (l.k !== a.k || l.bits !== a.bits || l.groupSize !== a.groupSize || l.symmetric !== a.symmetric || !!l.gIdx !== !!a.gIdx)
      throw new InvalidArgumentError("fused layers must share k, bits, group size, symmetry and act-order");
  if (a.gIdx) for (const l of layers) for (let i = 0; i < a.k; i++) if (l.gIdx![i] !== a.gIdx[i]) throw new InvalidArgumentError("fused act-order layers need one g_idx");
  const n = layers.reduce((s, l) => s + l.n, 0);
  const groups = a.scales.length / a.n;
  const q = new Uint8Array(a.k * n);
  const scales = new Uint16Array(groups * n);
  const zeros = a.zeros ? new Uint8Array(groups * n) : undefined;
  let col = 0;
  for (const l of layers) {
    for (let i = 0; i < a.k; i++) q.set(l.q.subarray(i * l.n, (i + 1) * l.n), i * n + col);
    for (let g = 0; g < groups; g++) {
      scales.set(l.scales.subarray(g * l.n, (g + 1) * l.n), g * n + col);
      if (zeros) zeros.set(l.zeros!.subarray(g * l.n, (g + 1) * l.n), g * n + col);
    }
    col += l.n;
  }
  return { ...a, n, q, scales, zeros, gIdx: a.gIdx?.slice() };
}

/**
 * One linear layer from several that share their input (q/k/v, gate/up), concatenated along n:
 * of the parts' kind if they share one that can be fused (so its kernels serve it), else dense fp32.
 */
export function fuseLinears(names: LinearName[], lin: Record<LinearName, LinearSource>): { source: LinearSource; bias?: Float32Array } {
  const parts = names.map((n) => lin[n]);
  const n = parts.reduce((a, p) => a + p.n, 0);
  const k = parts[0].k;
  const bias = parts.some((p) => p.bias) ? concatF32(parts.map((p) => p.bias ?? new Float32Array(p.n))) : undefined;
  const name = names.join("+");
  if (parts.length === 1) return { source: { ...parts[0], name }, bias };
  if (parts.every((p) => p.kind === "quantized"))
    return { source: { kind: "quantized", n, k, layer: concatQuantized(parts.map((p) => (p as QuantizedSource).layer)), name }, bias };
  const ext = parts.every((p) => p.kind === "extension") ? (parts as Extract<LinearSource, { kind: "extension" }>[]) : undefined;
  const concat = ext?.every((p) => p.weights.kind === ext[0].weights.kind) ? weightKindHooks(ext[0].weights.kind)?.concat : undefined;
  if (ext && concat) {
    const weights = concat(ext.map((p) => toLinearWeights(p, undefined)), name) as OtherLinearWeights;
    return { source: { kind: "extension", n, k, weights, name }, bias };
  }
  const data = concatF32(parts.map(linearToF32));
  return { source: { kind: "dense", n, k, weight: { dtype: "float32", shape: [n, k], data }, name }, bias };
}
