// makeRandomLlama: a loadable model directory of any Llama shape, reproducible by seed, written whole or not at all.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSeed } from "@marlin/core";
import { afterAll, describe, expect, test } from "vitest";
import { LLM, llama2Config, loadModelDir, makeRandomLlama } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

const work = mkdtempSync(join(tmpdir(), "random-llama-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const seed = runSeed();
const small = { layers: 2, hiddenSize: 128, intermediateSize: 256, heads: 2, kvHeads: 1, vocabSize: 4096, maxPositions: 256, layersPerShard: 1 };

describe("makeRandomLlama", () => {
  test("Llama-2-7B's config by default", () => {
    expect(llama2Config()).toMatchObject({ hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, vocab_size: 32000, head_dim: 128 });
    expect(() => llama2Config(2, { hiddenSize: 100, heads: 3 })).toThrow(/multiple of heads/);
    expect(() => llama2Config(0)).toThrow(/positive integer/);
  });

  test.skipIf(!hasTinyLlama())("a small random model loads and generates; the same seed gives the same bytes", async () => {
    console.log(`random-model seed ${seed} (MARLIN_SEED replays)`);
    const a = join(work, "a");
    const bytes = await makeRandomLlama(a, { ...small, seed, tokenizerDir: tinyLlamaDir(), device: "cpu" });
    const files = readdirSync(a).sort();
    expect(files).toEqual(["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]);
    expect(JSON.parse(readFileSync(join(a, "model.safetensors.index.json"), "utf8")).metadata.total_size).toBe(bytes);
    const llm = await LLM.load(a, { device: "cpu" });
    const [r] = await llm.generate(["Once upon a time"], { maxTokens: 5, ignoreEos: true });
    expect(r.tokenIds.length).toBe(5);
    const b = join(work, "b");
    await makeRandomLlama(b, { ...small, seed, tokenizerDir: tinyLlamaDir(), device: "cpu" });
    for (const f of files) expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), f).toBe(true);
    expect(readdirSync(work).filter((f) => f.includes("partial"))).toEqual([]);
  });

  test.skipIf(!hasTinyLlama())("format marlin: a random 4-bit Marlin checkpoint of the same shape loads quantized and generates", async () => {
    const dir = join(work, "marlin");
    await makeRandomLlama(dir, { ...small, seed, tokenizerDir: tinyLlamaDir(), format: "marlin" });
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    expect(cfg.quantization_config).toMatchObject({ checkpoint_format: "marlin", bits: 4, group_size: 128 });
    const m = await loadModelDir(dir);
    expect(m.sources.layers[1].linears.down_proj.kind).toBe("quantized");
    const llm = await LLM.fromLoaded(m, { device: "cpu" });
    const [r] = await llm.generate(["Once upon a time"], { maxTokens: 5, ignoreEos: true });
    expect(r.tokenIds.length).toBe(5);
    await expect(makeRandomLlama(join(work, "bad"), { ...small, hiddenSize: 192, heads: 3, format: "marlin" })).rejects.toThrow(/Marlin needs k % 128/);
  });

  test.skipIf(!hasTinyLlama())("refuses a non-empty folder and a tokenizer larger than the vocabulary, writing nothing", async () => {
    const full = join(work, "full");
    mkdirSync(full);
    writeFileSync(join(full, "x"), "keep");
    await expect(makeRandomLlama(full, small)).rejects.toThrow(/not empty/);
    expect(readdirSync(full)).toEqual(["x"]);
    await expect(makeRandomLlama(join(work, "c"), { ...small, vocabSize: 1000, tokenizerDir: tinyLlamaDir() })).rejects.toThrow(/more than the vocabulary 1000/);
    expect(readdirSync(work).filter((f) => f === "c" || f.includes("partial"))).toEqual([]);
  });
});
