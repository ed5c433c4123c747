/**
 * config.json (with or without quantization_config) and load options: mutated objects and texts
 * with duplicate keys, parsed and planned as LLM.load does before reading weights. An accepted
 * config must give finite RoPE frequencies and a bounded plan.
 */
import type { Rng } from "@marlin/core";
import { parseModelConfig, planLoad, ropeInvFreq, ropeTables } from "@marlin/engine";
import { parseJsonStrict } from "@marlin/format";
import { chance, edgeNumber, jsonWithDuplicateKey, mutateJson, oddValue, pick } from "../mutate.js";
import type { Target } from "./types.js";

const BASE = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  head_dim: 64,
  hidden_act: "silu",
  hidden_size: 384,
  intermediate_size: 1024,
  max_position_embeddings: 1024,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 6,
  num_hidden_layers: 6,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  rope_parameters: { rope_theta: 10000, rope_type: "default" },
  tie_word_embeddings: false,
  torch_dtype: "float16",
  vocab_size: 4096,
};

const QUANT = [
  { quant_method: "gptq", bits: 4, group_size: 128, desc_act: false, sym: true, checkpoint_format: "gptq" },
  { quant_method: "awq", bits: 4, group_size: 128, zero_point: true, version: "gemm" },
  { quant_method: "gptq", bits: 4, group_size: 128, checkpoint_format: "marlin" },
];

const ROPE = [
  { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192, rope_theta: 500000 },
  { rope_type: "linear", factor: 2, rope_theta: 10000 },
];

function config(rng: Rng): Record<string, unknown> {
  const c: Record<string, unknown> = structuredClone(BASE);
  if (chance(rng, 0.3)) c.quantization_config = structuredClone(pick(rng, QUANT));
  if (chance(rng, 0.2)) c.rope_parameters = structuredClone(pick(rng, ROPE));
  if (chance(rng, 0.2)) c.max_position_embeddings = pick(rng, [3e7, 1e9, 2 ** 31 - 1, 131072, edgeNumber(rng)]);
  return c;
}

function loadOptions(rng: Rng): Record<string, unknown> {
  const o: Record<string, unknown> = { device: "cpu" };
  for (const k of ["numBlocks", "kvCacheTokens", "blockSize", "maxModelLen", "maxNumSeqs", "maxNumBatchedTokens", "gpuMemoryFraction"])
    if (chance(rng, 0.15)) o[k] = chance(rng, 0.6) ? edgeNumber(rng) : oddValue(rng);
  return o;
}

export const configTarget: Target = {
  name: "config",
  async run(rng) {
    const base = config(rng);
    const mode = rng.int(0, 5);
    let raw: unknown = base;
    if (mode === 0) raw = parseJsonStrict(jsonWithDuplicateKey(rng, base, () => oddValue(rng)), "config.json");
    else if (mode < 4) raw = mutateJson(rng, base);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) raw = { value: raw };
    const c = parseModelConfig(raw as Record<string, unknown>, "config.json");
    const plan = planLoad(c, loadOptions(rng) as never);
    const inv = ropeInvFreq(c);
    if (inv.some((x) => !Number.isFinite(x))) throw new Error(`accepted config gives non-finite RoPE frequencies (theta ${c.ropeTheta})`);
    if (!(plan.maxModelLen >= 1 && plan.maxModelLen <= c.maxPositionEmbeddings)) throw new Error(`planned model length ${plan.maxModelLen} is out of range`);
    if (!(c.rmsNormEps > 0 && Number.isFinite(c.rmsNormEps))) throw new Error(`accepted rms_norm_eps ${c.rmsNormEps}`);
    const t = ropeTables(c, Math.min(plan.maxModelLen, 64));
    if (t.cos.some((x) => !Number.isFinite(x))) throw new Error("accepted config gives non-finite RoPE tables");
  },
};
