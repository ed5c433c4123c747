// The sharded engine on the CPU communicator: tiny-llama at tp = 2 (ranks in worker threads)
// generates the same greedy text as tp = 1 and scores the same perplexity within 1e-3 relative,
// for the fp16 checkpoint and for it quantized to 4 bits (RTN, g128).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { CpuTpRunner, LLM, type LoadedModel, loadModelDir, perplexity, quantizeSourcesRtn, TensorParallelError } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

const PROMPTS = ["Once upon a time", "The little dog ran to the", "She looked at the sky and said", "Tom and Sue"];

describe.skipIf(!hasTinyLlama())("tensor parallelism on the CPU: tiny-llama tp = 2 equals tp = 1", () => {
  let fp16: LoadedModel;
  let text: string;
  const open: LLM[] = [];
  beforeAll(async () => {
    fp16 = await loadModelDir(tinyLlamaDir());
    // the first 1/16 of eval.txt's lines (~17 windows of 256 tokens): the full file takes minutes per run on 2 cores
    const lines = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8").split("\n");
    text = lines.slice(0, Math.ceil(lines.length / 16)).join("\n");
  });
  afterAll(() => {
    for (const l of open) l.dispose();
  });

  const load = async (m: LoadedModel, tp: number) => {
    const llm = await LLM.fromLoaded(m, { device: "cpu", tensorParallelSize: tp, kvCacheTokens: 8192 });
    open.push(llm);
    return llm;
  };

  for (const variant of ["fp16", "4-bit RTN"] as const)
    test(`${variant}: greedy output identical, perplexity within 1e-3`, async () => {
      const m = variant === "fp16" ? fp16 : { ...fp16, sources: quantizeSourcesRtn(fp16.sources, { bits: 4, groupSize: 128 }) };
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

  test("a size that does not divide the heads is refused before any weight is read", async () => {
    await expect(LLM.load(tinyLlamaDir(), { device: "cpu", tensorParallelSize: 4 })).rejects.toThrow(TensorParallelError);
    await expect(LLM.load(tinyLlamaDir(), { device: "cpu", tensorParallelSize: 4 })).rejects.toThrow(/num_key_value_heads \(2\).*sizes that fit: 1, 2/);
    await expect(LLM.load(tinyLlamaDir(), { device: "cpu", tensorParallelSize: 0 })).rejects.toThrow(/integer in \[1, 64\]/);
  });
});
