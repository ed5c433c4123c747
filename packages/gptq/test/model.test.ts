import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runSeed } from "@marlin/core";
import { LINEAR_NAMES, LLM, loadModelDir, perplexity } from "@marlin/engine";
import { dequantize as dequantLayer } from "@marlin/format";
import { afterAll, describe, expect, it } from "vitest";
import { QuantizeAbortedError, quantizeModel } from "../src/index.js";
import { FIXTURE, hasFixture, leftovers } from "./fixture.js";

const seed = runSeed();
console.log(`model: MARLIN_SEED=${seed} (calibration windows)`);
const work = mkdtempSync(join(tmpdir(), "gptq-model-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.skipIf(!hasFixture)("quantizeModel on tiny-llama", () => {
  it("GPTQ: writes a Marlin checkpoint the engine loads, beats RTN layer by layer, generates text", async () => {
    const out = join(work, "gptq");
    const r = await quantizeModel(FIXTURE, out, {
      calib: join(FIXTURE, "calib.txt"),
      nsamples: 8,
      seqlen: 128,
      seed,
      compareRtn: true,
      progress: false,
    });
    const cfgRaw = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(cfgRaw.quantization_config).toMatchObject({ quant_method: "gptq", checkpoint_format: "marlin", bits: 4, group_size: 128, sym: true, desc_act: false });
    expect(leftovers(work, "gptq")).toEqual(["gptq"]);

    // Hessian-weighted output error on the calibration inputs: GPTQ below RTN, linear by linear.
    expect(r.linears.length).toBe(6 * 7);
    for (const l of r.linears) {
      expect(Number.isFinite(l.loss) && l.loss > 0).toBe(true);
      expect(l.loss).toBeLessThan(l.rtnLoss!);
    }
    const sum = (f: (l: (typeof r.linears)[0]) => number) => r.linears.reduce((a, l) => a + f(l), 0);
    console.log(`GPTQ / RTN Hessian-weighted loss, summed over linears: ${(sum((l) => l.loss) / sum((l) => l.rtnLoss!)).toFixed(3)}`);

    // The engine reads the checkpoint back to exactly the layers quantized in memory.
    const loaded = await loadModelDir(out);
    expect(loaded.config.quantization).toMatchObject({ checkpointFormat: "marlin", bits: 4, groupSize: 128, sym: true });
    for (let li = 0; li < 6; li++)
      for (const name of LINEAR_NAMES) {
        const a = loaded.sources.layers[li].linears[name];
        const b = r.model.sources.layers[li].linears[name];
        expect(a.kind).toBe("quantized");
        expect([a.k, a.n]).toEqual([b.k, b.n]);
        if (a.kind === "quantized" && b.kind === "quantized") {
          expect(a.layer.scales.length).toBe((a.k / 128) * a.n);
          expect(Buffer.from(a.layer.q).equals(Buffer.from(b.layer.q))).toBe(true);
          expect(Array.from(dequantLayer(a.layer).subarray(0, 64))).toEqual(Array.from(dequantLayer(b.layer).subarray(0, 64)));
        }
      }
    const text = readFileSync(join(FIXTURE, "eval.txt"), "utf8").slice(0, 4000);
    const llm = await LLM.load(out, { device: "cpu" });
    const mem = await LLM.fromLoaded(r.model, { device: "cpu" });
    try {
      const [p1, p2] = [await perplexity(llm, text), await perplexity(mem, text)];
      expect(p1.perplexity).toBe(p2.perplexity);
      expect(p1.perplexity).toBeLessThan(80);
      const [g] = await llm.generate(["Once upon a time"], { maxTokens: 24, temperature: 0 });
      console.log(`greedy: ${JSON.stringify(g.text)}`);
      expect(g.tokenIds.length).toBeGreaterThan(4);
      expect(/[a-z]+ [a-z]+/i.test(g.text)).toBe(true);
    } finally {
      llm.dispose();
      mem.dispose();
    }
  }, 240_000);

  it("RTN 8-bit asymmetric g64 in GPTQ format: tensors other tools read, loaded by the engine", async () => {
    const out = join(work, "rtn-gptq");
    const r = await quantizeModel(FIXTURE, out, { method: "rtn", format: "gptq", bits: 8, groupSize: 64, symmetric: false, progress: false });
    const loaded = await loadModelDir(out);
    expect(loaded.config.quantization).toMatchObject({ checkpointFormat: "gptq", gptqVersion: 1, bits: 8, groupSize: 64, sym: false });
    const a = loaded.sources.layers[2].linears.down_proj;
    const b = r.model.sources.layers[2].linears.down_proj;
    if (a.kind !== "quantized" || b.kind !== "quantized") throw new Error("not quantized");
    expect(Buffer.from(a.layer.q).equals(Buffer.from(b.layer.q))).toBe(true);
    expect(Buffer.from(a.layer.zeros!).equals(Buffer.from(b.layer.zeros!))).toBe(true);
  }, 120_000);

  it("an interrupted run leaves nothing behind", async () => {
    for (const method of ["rtn", "gptq"] as const) {
      const ac = new AbortController();
      let seen = 0;
      const run = quantizeModel(FIXTURE, join(work, "cut"), {
        method,
        calib: join(FIXTURE, "calib.txt"),
        nsamples: 2,
        seqlen: 32,
        progress: false,
        signal: ac.signal,
        onLinear: () => {
          if (++seen === 9) ac.abort(); // in layer 1, after some tensors were streamed out
        },
      });
      await expect(run).rejects.toThrow(QuantizeAbortedError);
      expect(leftovers(work, "cut")).toEqual([]);
    }
  }, 120_000);
});
