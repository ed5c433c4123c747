import { readFileSync } from "node:fs";
import { join } from "node:path";
import { hasGpu, noGpuReason } from "@marlin/kernel";
import { beforeAll, describe, expect, test } from "vitest";
import { LLM, type LoadedModel, loadModelDir, perplexity } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

// Field notes §8: eval.txt in 256-token windows, each line with <s> and followed by </s>: ~51.5.
const EXPECTED = 51.5;

describe.skipIf(!hasTinyLlama())("perplexity of tiny-llama on eval.txt", () => {
  let model: LoadedModel;
  let text: string;
  beforeAll(async () => {
    model = await loadModelDir(tinyLlamaDir());
    text = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8");
  });

  test("CPU: within 0.5% of 51.5, no block leaked", async () => {
    const llm = await LLM.fromLoaded(model, { device: "cpu", kvCacheTokens: 4096 });
    const r = await perplexity(llm, text, { window: 256 });
    console.log(`CPU perplexity ${r.perplexity.toFixed(4)} over ${r.windows} windows (${r.scoredTokens} tokens) in ${r.seconds.toFixed(1)} s`);
    expect(r.windows).toBe(Math.floor(r.tokens / 256));
    expect(Math.abs(r.perplexity / EXPECTED - 1)).toBeLessThan(0.005);
    expect(llm.engine.blocks.numFreeBlocks).toBe(llm.engine.blocks.numBlocks);
  });

  const gpu = hasGpu();
  if (!gpu) console.log(`GPU perplexity skipped: ${noGpuReason()}`);
  test.skipIf(!gpu)("GPU: within 0.5% of 51.5", async () => {
    const llm = await LLM.fromLoaded(model, { device: "cuda", kvCacheTokens: 8192 });
    const r = await perplexity(llm, text, { window: 256, batchWindows: 16 });
    console.log(`GPU perplexity ${r.perplexity.toFixed(4)} over ${r.windows} windows in ${r.seconds.toFixed(1)} s`);
    expect(Math.abs(r.perplexity / EXPECTED - 1)).toBeLessThan(0.005);
    expect(llm.engine.blocks.numFreeBlocks).toBe(llm.engine.blocks.numBlocks);
    llm.dispose();
  });
});
