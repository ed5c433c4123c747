/**
 * Hugging Face config.json / generation_config.json for Llama-family models (Llama, Mistral,
 * Qwen2-style fields): GQA, rope theta in either spelling, rope scaling, tied embeddings, qkv bias.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FormatError } from "@marlin/core";
import { parseQuantizationConfig, type QuantizationConfig } from "@marlin/format";

export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

export interface ModelConfig {
  modelType: string;
  architectures: string[];
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2, attention_bias). */
  qkvBias: boolean;
  /** o_proj carries a bias (attention_bias on Llama-style configs). */
  oBias: boolean;
  mlpBias: boolean;
  bosTokenId?: number;
  eosTokenIds: number[];
  padTokenId?: number;
  /** Weights' dtype as declared ("float16", "bfloat16", "float32"). */
  dtype: string;
  quantization?: QuantizationConfig;
}

/** Row widths of one decoder layer's activations: hidden, q heads, kv heads, fused qkv, MLP. */
export interface LayerDims {
  H: number;
  qd: number;
  kvd: number;
  qkvN: number;
  I: number;
}

export function layerDims(c: ModelConfig): LayerDims {
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  return { H: c.hiddenSize, qd, kvd, qkvN: qd + 2 * kvd, I: c.intermediateSize };
}

export interface GenerationDefaults {
  eosTokenIds: number[];
  bosTokenId?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  maxNewTokens?: number;
}

const SUPPORTED = new Set(["llama", "mistral", "qwen2"]);

function readJson(path: string): Record<string, any> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new FormatError(`cannot read JSON: ${(e as Error).message}`, { file: path });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError("not a JSON object", { file: path });
  return v as Record<string, any>;
}

function ids(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

function posInt(raw: Record<string, any>, key: string, file: string, fallback?: number): number {
  const v = raw[key] ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new FormatError(`${key} must be a positive integer, got ${JSON.stringify(v)}`, { file });
  return v;
}

function parseRope(raw: Record<string, any>, file: string): { theta: number; scaling: RopeScaling | null } {
  // Newer files: rope_parameters {rope_theta, rope_type, factor, ...}; older: rope_theta + rope_scaling.
  const params = raw.rope_parameters && typeof raw.rope_parameters === "object" ? raw.rope_parameters : undefined;
  const theta = params?.rope_theta ?? raw.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0)) throw new FormatError(`invalid rope_theta ${JSON.stringify(theta)}`, { file });
  const sc = params ?? raw.rope_scaling;
  if (!sc || typeof sc !== "object") return { theta, scaling: null };
  const type = String(sc.rope_type ?? sc.type ?? "default");
  if (type === "default") return { theta, scaling: null };
  const factor = sc.factor;
  if (typeof factor !== "number" || !(factor > 0)) throw new FormatError(`rope scaling needs a positive factor`, { file });
  if (type === "linear") return { theta, scaling: { type: "linear", factor } };
  if (type === "llama3")
    return {
      theta,
      scaling: {
        type: "llama3",
        factor,
        lowFreqFactor: sc.low_freq_factor ?? 1,
        highFreqFactor: sc.high_freq_factor ?? 4,
        originalMaxPositions: sc.original_max_position_embeddings ?? 8192,
      },
    };
  throw new FormatError(`rope scaling type "${type}" is not supported (default, linear, llama3)`, { file });
}

/** Parses a config.json object (file names the source in errors). */
export function parseModelConfig(raw: Record<string, any>, file = "config.json"): ModelConfig {
  const modelType = String(raw.model_type ?? "llama");
  if (!SUPPORTED.has(modelType))
    throw new FormatError(`model_type "${modelType}" is not a Llama-family model (${[...SUPPORTED].join(", ")})`, { file });
  const act = raw.hidden_act ?? raw.hidden_activation ?? "silu";
  if (act !== "silu") throw new FormatError(`hidden_act "${act}" is not supported (silu)`, { file });
  const hiddenSize = posInt(raw, "hidden_size", file);
  const numHeads = posInt(raw, "num_attention_heads", file);
  const numKvHeads = posInt(raw, "num_key_value_heads", file, numHeads);
  if (numHeads % numKvHeads !== 0)
    throw new FormatError(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`, { file });
  const headDim = raw.head_dim ?? hiddenSize / numHeads;
  if (!Number.isSafeInteger(headDim) || headDim <= 0 || headDim % 2) throw new FormatError(`invalid head_dim ${headDim}`, { file });
  const rope = parseRope(raw, file);
  const attentionBias = raw.attention_bias === true;
  const quant = raw.quantization_config ? parseQuantizationConfig(raw, file) : undefined;
  return {
    modelType,
    architectures: Array.isArray(raw.architectures) ? raw.architectures.map(String) : [],
    vocabSize: posInt(raw, "vocab_size", file),
    hiddenSize,
    intermediateSize: posInt(raw, "intermediate_size", file),
    numLayers: posInt(raw, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: typeof raw.rms_norm_eps === "number" ? raw.rms_norm_eps : 1e-6,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    maxPositionEmbeddings: posInt(raw, "max_position_embeddings", file, 2048),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    qkvBias: modelType === "qwen2" || attentionBias,
    oBias: modelType !== "qwen2" && attentionBias,
    mlpBias: raw.mlp_bias === true,
    bosTokenId: typeof raw.bos_token_id === "number" ? raw.bos_token_id : undefined,
    eosTokenIds: ids(raw.eos_token_id),
    padTokenId: typeof raw.pad_token_id === "number" ? raw.pad_token_id : undefined,
    dtype: String(raw.torch_dtype ?? raw.dtype ?? "float16"),
    ...(quant ? { quantization: quant } : {}),
  };
}

export function loadModelConfig(dir: string): ModelConfig {
  const file = join(dir, "config.json");
  if (!existsSync(file)) throw new FormatError("config.json not found", { file });
  return parseModelConfig(readJson(file), file);
}

/** generation_config.json (optional): eos ids are merged with config.json's. */
export function loadGenerationDefaults(dir: string, config: ModelConfig): GenerationDefaults {
  const file = join(dir, "generation_config.json");
  const raw = existsSync(file) ? readJson(file) : {};
  const eos = [...new Set([...config.eosTokenIds, ...ids(raw.eos_token_id)])];
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  return {
    eosTokenIds: eos,
    bosTokenId: num(raw.bos_token_id) ?? config.bosTokenId,
    temperature: raw.do_sample === false ? undefined : num(raw.temperature),
    topP: raw.do_sample === false ? undefined : num(raw.top_p),
    topK: raw.do_sample === false ? undefined : num(raw.top_k),
    maxNewTokens: num(raw.max_new_tokens),
  };
}
