/**
 * Hugging Face config.json / generation_config.json for Llama-family models (Llama, Mistral,
 * Qwen2-style fields): GQA, rope theta in either spelling, rope scaling, tied embeddings, qkv bias.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { FormatError } from "@marlin/core";
import { FILE_LIMITS, parseQuantizationConfig, type QuantizationConfig, readJsonObjectSync } from "@marlin/format";
import { ropeInvFreq } from "./rope.js";

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

/** KV cache bytes per token: K and V of every layer, `elementBytes` each (fp16 on the GPU: 2). */
export function kvBytesPerToken(c: ModelConfig, elementBytes: number): number {
  return 2 * c.numLayers * layerDims(c).kvd * elementBytes;
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

/** A config file (FIFOs, devices and oversized files refused before any read). */
function readJson(path: string): Record<string, any> {
  return readJsonObjectSync(path, FILE_LIMITS.json);
}

/** The largest model dimension taken (the native ops' limit; token ids and positions are int32). */
export const MAX_CONFIG_DIM = 2 ** 30;
/** The longest context a config may declare: positions are int32. */
export const MAX_POSITIONS = 2 ** 31 - 1;

/** Token ids: one or a list of integers (null or absent: none). */
function ids(v: unknown, key: string, file: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const x of list)
    if (!Number.isSafeInteger(x)) throw new FormatError(`${key} must be a token id or a list of them, got ${JSON.stringify(v).slice(0, 80)}`, { file });
  return list as number[];
}

function optId(raw: Record<string, any>, key: string, file: string): number | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Number.isSafeInteger(v)) throw new FormatError(`${key} must be an integer token id, got ${JSON.stringify(v)}`, { file });
  return v;
}

function posInt(raw: Record<string, any>, key: string, file: string, fallback?: number, max = MAX_CONFIG_DIM): number {
  const v = raw[key] ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) throw new FormatError(`${key} must be a positive integer, got ${JSON.stringify(v)}`, { file });
  if (v > max) throw new FormatError(`${key} = ${v} exceeds the largest supported value ${max}`, { file });
  return v;
}

/** A positive finite number (a missing key takes `fallback`). */
function posNum(v: unknown, key: string, file: string, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new FormatError(`${key} must be a positive finite number, got ${JSON.stringify(v)}`, { file });
  return v;
}

/** true / false (a missing key is false); any other value is refused, not read as false. */
function flag(raw: Record<string, any>, key: string, file: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw new FormatError(`${key} must be true or false, got ${JSON.stringify(v)}`, { file });
  return v;
}

function parseRope(raw: Record<string, any>, file: string): { theta: number; scaling: RopeScaling | null } {
  // Newer files: rope_parameters {rope_theta, rope_type, factor, ...}; older: rope_theta + rope_scaling.
  const params = raw.rope_parameters && typeof raw.rope_parameters === "object" ? raw.rope_parameters : undefined;
  const theta = params?.rope_theta ?? raw.rope_theta ?? 10000;
  if (typeof theta !== "number" || !(theta > 0) || !Number.isFinite(theta)) throw new FormatError(`invalid rope_theta ${JSON.stringify(theta)}`, { file });
  const sc = params ?? raw.rope_scaling;
  if (!sc || typeof sc !== "object") return { theta, scaling: null };
  const type = String(sc.rope_type ?? sc.type ?? "default");
  if (type === "default") return { theta, scaling: null };
  const factor = sc.factor;
  if (typeof factor !== "number" || !(factor > 0) || !Number.isFinite(factor)) throw new FormatError(`rope scaling needs a positive finite factor`, { file });
  if (type === "linear") return { theta, scaling: { type: "linear", factor } };
  if (type === "llama3") {
    const lowFreqFactor = posNum(sc.low_freq_factor, "low_freq_factor", file, 1);
    const highFreqFactor = posNum(sc.high_freq_factor, "high_freq_factor", file, 4);
    // The smoothing between the two divides by their difference.
    if (!(highFreqFactor > lowFreqFactor)) throw new FormatError(`high_freq_factor ${highFreqFactor} must exceed low_freq_factor ${lowFreqFactor}`, { file });
    const originalMaxPositions = posInt(sc, "original_max_position_embeddings", file, 8192, MAX_POSITIONS);
    return { theta, scaling: { type: "llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositions } };
  }
  throw new FormatError(`rope scaling type "${type}" is not supported (default, linear, llama3)`, { file });
}

/** RoPE angles must be finite in fp32 at every position: a theta below 1 or a tiny factor makes them Inf (NaN cos/sin). */
function checkRope(c: ModelConfig, file: string): void {
  const inv = ropeInvFreq(c);
  let top = 0;
  for (const f of inv) {
    if (!(f > 0) || !Number.isFinite(Math.fround(f))) throw new FormatError(`rope parameters (theta ${c.ropeTheta}) give a non-finite or zero frequency`, { file });
    top = Math.max(top, f);
  }
  if (!Number.isFinite(Math.fround(c.maxPositionEmbeddings * Math.fround(top))))
    throw new FormatError(`rope parameters (theta ${c.ropeTheta}) give infinite angles within max_position_embeddings ${c.maxPositionEmbeddings}`, { file });
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
  if (!Number.isSafeInteger(headDim) || headDim <= 0 || headDim % 2 || headDim > 1024) throw new FormatError(`invalid head_dim ${headDim} (an even number up to 1024)`, { file });
  if (numHeads * headDim > MAX_CONFIG_DIM) throw new FormatError(`num_attention_heads * head_dim = ${numHeads * headDim} exceeds ${MAX_CONFIG_DIM}`, { file });
  const rope = parseRope(raw, file);
  const attentionBias = flag(raw, "attention_bias", file);
  const quant = raw.quantization_config ? parseQuantizationConfig(raw, file) : undefined;
  // A zero, negative or NaN epsilon makes the norm divide by zero or take a root of a negative.
  const rmsNormEps = raw.rms_norm_eps ?? 1e-6;
  if (typeof rmsNormEps !== "number" || !Number.isFinite(rmsNormEps) || rmsNormEps <= 0 || rmsNormEps >= 1)
    throw new FormatError(`rms_norm_eps must be a finite number in (0, 1), got ${JSON.stringify(rmsNormEps)}`, { file });
  const vocabSize = posInt(raw, "vocab_size", file);
  const eosTokenIds = ids(raw.eos_token_id, "eos_token_id", file);
  const config: ModelConfig = {
    modelType,
    architectures: Array.isArray(raw.architectures) ? raw.architectures.map(String) : [],
    vocabSize,
    hiddenSize,
    intermediateSize: posInt(raw, "intermediate_size", file),
    numLayers: posInt(raw, "num_hidden_layers", file),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    // Only declared: the caches and RoPE tables are sized from what the KV cache holds (llm.ts).
    maxPositionEmbeddings: posInt(raw, "max_position_embeddings", file, 2048, MAX_POSITIONS),
    tieWordEmbeddings: flag(raw, "tie_word_embeddings", file),
    qkvBias: modelType === "qwen2" || attentionBias,
    oBias: modelType !== "qwen2" && attentionBias,
    mlpBias: flag(raw, "mlp_bias", file),
    bosTokenId: optId(raw, "bos_token_id", file),
    eosTokenIds,
    padTokenId: optId(raw, "pad_token_id", file),
    dtype: String(raw.torch_dtype ?? raw.dtype ?? "float16"),
    ...(quant ? { quantization: quant } : {}),
  };
  checkRope(config, file);
  return config;
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
  const eos = [...new Set([...config.eosTokenIds, ...ids(raw.eos_token_id, "eos_token_id", file)])];
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
