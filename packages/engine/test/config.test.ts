import { describe, expect, test } from "vitest";
import { parseModelConfig } from "../src/model/config.js";
import { ropeInvFreq } from "../src/model/rope.js";

const base = {
  model_type: "llama",
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  num_attention_heads: 8,
  vocab_size: 1000,
};

describe("parseModelConfig", () => {
  test("GQA defaults and rope_theta at top level", () => {
    const c = parseModelConfig({ ...base, num_key_value_heads: 2, rope_theta: 500000, eos_token_id: [2, 3] });
    expect(c.numKvHeads).toBe(2);
    expect(c.headDim).toBe(32);
    expect(c.ropeTheta).toBe(500000);
    expect(c.eosTokenIds).toEqual([2, 3]);
    expect(c.qkvBias).toBe(false);
  });
  test("rope_parameters spelling and llama3 scaling", () => {
    const c = parseModelConfig({
      ...base,
      rope_parameters: { rope_theta: 1e4, rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
    });
    expect(c.ropeScaling?.type).toBe("llama3");
    const inv = ropeInvFreq(c);
    expect(inv[0]).toBeCloseTo(1, 12); // high frequency: unchanged
    expect(inv[inv.length - 1]).toBeCloseTo(1e4 ** (-(2 * 15) / 32) / 8, 12); // low frequency: divided
  });
  test("rope_scaling (older spelling), Qwen2 qkv bias, tied embeddings", () => {
    const c = parseModelConfig({ ...base, model_type: "qwen2", rope_scaling: { type: "linear", factor: 2 }, tie_word_embeddings: true });
    expect(c.ropeScaling).toEqual({ type: "linear", factor: 2 });
    expect(c.qkvBias).toBe(true);
    expect(c.tieWordEmbeddings).toBe(true);
  });
  test("mistral is accepted; other families and bad shapes are refused", () => {
    expect(parseModelConfig({ ...base, model_type: "mistral", num_key_value_heads: 8 }).modelType).toBe("mistral");
    expect(() => parseModelConfig({ ...base, model_type: "gpt2" })).toThrow(/not a Llama-family/);
    expect(() => parseModelConfig({ ...base, num_key_value_heads: 3 })).toThrow(/multiple/);
    expect(() => parseModelConfig({ ...base, rope_scaling: { type: "yarn", factor: 4 } })).toThrow(/not supported/);
  });
});
