// The sharded engine on the CPU communicator: tiny-llama at tp = 2 (ranks in worker threads)
// generates the same greedy text as tp = 1 and scores the same perplexity within 1e-3 relative,
// for the fp16 checkpoint and for it quantized to 4 bits (RTN, g128).
import { Rng } from "@marlin/core";
import { quantizeRtn } from "@marlin/format";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  CommunicatorError,
  CpuTpRunner,
  LINEAR_NAMES,
  type LinearSource,
  LLM,
  type LoadedModel,
  linearToF32,
  loadModelDir,
  type ModelSources,
  perplexity,
  quantizeSourcesRtn,
  TensorParallelError,
} from "../src/index.js";
import { evalTextSlice, hasTinyLlama, tinyLlamaDir } from "./helpers.js";

/**
 * 4-bit RTN with act-order: per layer and input width one seeded g_idx (groups of 128 rows scattered
 * over k), shared by the layers fused on that input, as GPTQ's desc_act checkpoints have them.
 */
function actOrderRtn(src: ModelSources, seed: number): ModelSources {
  const rng = new Rng(seed);
  const shuffled = (k: number) => {
    const g = Int32Array.from({ length: k }, (_, i) => Math.floor(i / 128));
    for (let i = k - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [g[i], g[j]] = [g[j], g[i]];
    }
    return g;
  };
  return {
    ...src,
    layers: src.layers.map((layer) => {
      const byInput = new Map<string, Int32Array>();
      const q = (name: string, l: LinearSource): LinearSource => {
        const key = name === "o_proj" || name === "down_proj" ? name : "hidden";
        if (!byInput.has(key)) byInput.set(key, shuffled(l.k));
        const w = linearToF32(l);
        const kn = new Float32Array(l.k * l.n);
        for (let j = 0; j < l.n; j++) for (let i = 0; i < l.k; i++) kn[i * l.n + j] = w[j * l.k + i];
        const ql = quantizeRtn(kn, l.k, l.n, { bits: 4, groupSize: 128, symmetric: true, gIdx: byInput.get(key) });
        return { kind: "quantized", n: l.n, k: l.k, layer: ql, bias: l.bias, name: l.name };
      };
      return { ...layer, linears: Object.fromEntries(LINEAR_NAMES.map((n) => [n, q(n, layer.linears[n])])) as typeof layer.linears };
    }),
  };
}

const PROMPTS = ["Once upon a time", "The little dog ran to the", "She looked at the sky and said", "Tom and Sue"];

describe.skipIf(!hasTinyLlama())("tensor parallelism on the CPU: tiny-llama tp = 2 equals tp = 1", () => {
  let fp16: LoadedModel;
  let text: string;
  const open: LLM[] = [];
  beforeAll(async () => {
    fp16 = await loadModelDir(tinyLlamaDir());
    text = evalTextSlice(16);
  });
  afterAll(() => {
    for (const l of open) l.dispose();
  });

  const load = async (m: LoadedModel, tp: number) => {
    const llm = await LLM.fromLoaded(m, { device: "cpu", tensorParallelSize: tp, kvCacheTokens: 8192 });
    open.push(llm);
    return llm;
  };

  const variants = {
    fp16: () => fp16,
    "4-bit RTN": () => ({ ...fp16, sources: quantizeSourcesRtn(fp16.sources, { bits: 4, groupSize: 128 }) }),
    // act-order row shards complete each group they touch with zero rows (shard.ts)
    "4-bit RTN act-order": () => ({ ...fp16, sources: actOrderRtn(fp16.sources, 18) }),
  };
  for (const [variant, make] of Object.entries(variants))
    test(`${variant}: greedy output identical, perplexity within 1e-3`, async () => {
      const m = make();
      const results: { text: string[]; ids: number[][]; ppl: number; kernels: Record<string, string> }[] = [];
      for (const tp of [1, 2]) {
        const llm = await load(m, tp);
        const runner = llm.engine.runner;
        expect(runner instanceof CpuTpRunner).toBe(tp > 1);
        const gen = await llm.generate(PROMPTS, { maxTokens: 32, temperature: 0 });
        const p = await perplexity(llm, text, { window: 256 });
        const kernels = (runner as unknown as { model: { kernels: Record<string, string> } }).model.kernels;
        results.push({ text: gen.map((g) => g.text), ids: gen.map((g) => g.tokenIds), ppl: p.perplexity, kernels });
        console.log(`${variant} tp=${tp}: perplexity ${p.perplexity.toFixed(6)} over ${p.windows} windows; "${gen[0].text.slice(0, 60)}..."`);
        expect(llm.engine.blocks.numFreeBlocks).toBe(llm.engine.blocks.numBlocks);
      }
      const [one, two] = results;
      expect(two.ids).toEqual(one.ids);
      expect(two.text).toEqual(one.text);
      const rel = Math.abs(two.ppl / one.ppl - 1);
      console.log(`${variant}: perplexity tp=1 ${one.ppl.toFixed(6)}, tp=2 ${two.ppl.toFixed(6)}, relative difference ${rel.toExponential(2)}`);
      expect(rel).toBeLessThan(1e-3);
      // every shard is served by the implementation the whole layer gets (the o_proj shards of
      // 3 heads x 64 = 192 features are padded to whole 128-row groups for the 4-bit kernel)
      expect(two.kernels).toEqual(one.kernels);
    });

  test("biases on every linear (row-parallel ones added once) and an lm_head tied to the embedding", async () => {
    const rng = new Rng(7);
    const withBias = (l: LinearSource): LinearSource => ({ ...l, bias: rng.fillNormal(new Float32Array(l.n), 0.05) });
    const sources: ModelSources = {
      ...fp16.sources,
      lmHead: undefined, // tied: the logits come from the (vocabulary-parallel) embedding rows
      layers: fp16.sources.layers.map((l) => ({ ...l, linears: Object.fromEntries(LINEAR_NAMES.map((n) => [n, withBias(l.linears[n])])) as typeof l.linears })),
    };
    const m = { ...fp16, config: { ...fp16.config, tieWordEmbeddings: true, qkvBias: true, oBias: true, mlpBias: true }, sources };
    const runs: { ids: number[][]; ppl: number }[] = [];
    for (const tp of [1, 2]) {
      const llm = await load(m, tp);
      const gen = await llm.generate(PROMPTS, { maxTokens: 24, temperature: 0 });
      const p = await perplexity(llm, text.slice(0, 20_000), { window: 256 });
      runs.push({ ids: gen.map((g) => g.tokenIds), ppl: p.perplexity });
      console.log(`biased, tied tp=${tp}: perplexity ${p.perplexity.toFixed(6)} over ${p.windows} windows`);
    }
    expect(runs[1].ids).toEqual(runs[0].ids);
    expect(Math.abs(runs[1].ppl / runs[0].ppl - 1)).toBeLessThan(1e-3);
  });

  test("a weight kind registered in this thread: workers import it (tensorParallelImports), else rank 1 fails to load", async () => {
    const fixture = new URL("./fixtures/tp-kind.mjs", import.meta.url).href;
    const { withFixtureKind } = await import(fixture);
    const m = { ...fp16, sources: withFixtureKind(fp16.sources, linearToF32) };
    const runs: number[][][] = [];
    for (const tp of [1, 2]) {
      const llm = await LLM.fromLoaded(m, { device: "cpu", tensorParallelSize: tp, kvCacheTokens: 4096, tensorParallelImports: [fixture] });
      open.push(llm);
      runs.push((await llm.generate(PROMPTS.slice(0, 2), { maxTokens: 16, temperature: 0 })).map((g) => g.tokenIds));
    }
    expect(runs[1]).toEqual(runs[0]);
    await expect(LLM.fromLoaded(m, { device: "cpu", tensorParallelSize: 2, kvCacheTokens: 4096 })).rejects.toThrow(CommunicatorError);
    await expect(LLM.fromLoaded(m, { device: "cpu", tensorParallelSize: 2, kvCacheTokens: 4096 })).rejects.toThrow(/rank 1: failed to load: .*tp-fixture\.matmul/);
  });

  test("a size that does not divide the heads is refused before any weight is read", async () => {
    await expect(LLM.load(tinyLlamaDir(), { device: "cpu", tensorParallelSize: 4 })).rejects.toThrow(TensorParallelError);
    await expect(LLM.load(tinyLlamaDir(), { device: "cpu", tensorParallelSize: 4 })).rejects.toThrow(/num_key_value_heads \(2\).*sizes that fit: 1, 2/);
    await expect(LLM.load(tinyLlamaDir(), { device: "cpu", tensorParallelSize: 0 })).rejects.toThrow(/integer in \[1, 64\]/);
  });
});
