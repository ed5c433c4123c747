import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type NamedTensor, packMarlin, toAwq, toGptq, toMarlinCheckpoint, writeSafetensors } from "@marlin/format";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { LINEAR_NAMES, LLM, type LoadedModel, loadModelDir, quantizeSourcesRtn } from "../src/index.js";
import { hasTinyLlama, readTensors, tinyLlamaDir } from "./helpers.js";

// Checkpoints in the formats met in the wild, made from tiny-llama: a sharded dense one, GPTQ (v1,
// symmetric, g128), AWQ (gemm, zero points) and Marlin (B / s). Each must load and generate exactly as the same
// weights given in memory.
describe.skipIf(!hasTinyLlama())("checkpoint formats", () => {
  const dirs: string[] = [];
  let model: LoadedModel;
  let raw: Map<string, NamedTensor>;
  const prompts = ["The old man", "She said that the", "In the morning we"];
  const params = { maxTokens: 10, ignoreEos: true };

  beforeAll(async () => {
    model = await loadModelDir(tinyLlamaDir());
    raw = await readTensors(tinyLlamaDir());
  });
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function makeDir(config: Record<string, unknown>): string {
    const dir = mkdtempSync(join(tmpdir(), "marlin-engine-"));
    dirs.push(dir);
    for (const f of ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]) copyFileSync(join(tinyLlamaDir(), f), join(dir, f));
    const base = JSON.parse(readFileSync(join(tinyLlamaDir(), "config.json"), "utf8"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...base, ...config }));
    return dir;
  }

  async function same(dir: string, reference: LoadedModel) {
    const a = await LLM.load(dir, { device: "cpu" });
    const b = await LLM.fromLoaded(reference, { device: "cpu" });
    const ra = await a.generate(prompts, params);
    const rb = await b.generate(prompts, params);
    expect(ra.map((r) => r.tokenIds)).toEqual(rb.map((r) => r.tokenIds));
  }

  test("sharded dense safetensors with an index", async () => {
    const dir = makeDir({});
    const names = [...raw.keys()];
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < 2; s++) {
      const file = `model-0000${s + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, file), new Map(shards[s].map((n) => [n, raw.get(n)!])));
      for (const n of shards[s]) weightMap[n] = file;
    }
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    await same(dir, model);
  });

  for (const fmt of ["gptq", "awq", "marlin"] as const) {
    test(`${fmt} 4-bit g128`, async () => {
      const symmetric = fmt !== "awq";
      const sources = quantizeSourcesRtn(model.sources, { groupSize: 128, symmetric });
      const qc =
        fmt === "gptq"
          ? { quant_method: "gptq", bits: 4, group_size: 128, desc_act: false, sym: true, checkpoint_format: "gptq" }
          : fmt === "awq"
            ? { quant_method: "awq", bits: 4, group_size: 128, zero_point: true, version: "gemm" }
            : { quant_method: "gptq", bits: 4, group_size: 128, desc_act: false, sym: true, checkpoint_format: "marlin" };
      const dir = makeDir({ quantization_config: qc });
      const tensors = new Map<string, NamedTensor>();
      for (const [name, t] of raw) if (!/_proj\.weight$/.test(name)) tensors.set(name, t);
      sources.layers.forEach((layer, i) => {
        for (const n of LINEAR_NAMES) {
          const src = layer.linears[n];
          if (src.kind !== "quantized") throw new Error("expected a quantized layer");
          const prefix = src.name;
          const ex = fmt === "gptq" ? toGptq(src.layer) : fmt === "awq" ? toAwq(src.layer) : toMarlinCheckpoint(packMarlin(src.layer));
          for (const [k, v] of Object.entries(ex)) tensors.set(`${prefix}.${k}`, v as NamedTensor);
          expect(prefix).toContain(`layers.${i}.`);
        }
      });
      await writeSafetensors(join(dir, "model.safetensors"), tensors);
      await same(dir, { ...model, sources });
    });
  }
});
