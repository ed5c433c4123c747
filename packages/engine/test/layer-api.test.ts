import { describe, expect, test } from "vitest";
import { CpuLlama, CpuModelRunner, loadModelDir } from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

// What a GPTQ pass uses: embeddings, one decoder layer at a time with linear-input hooks, and
// replacing a linear layer's weight.
describe.skipIf(!hasTinyLlama())("CpuLlama per-layer API", () => {
  test("layer-by-layer forward equals the paged forward; weights can be replaced", async () => {
    const m = await loadModelDir(tinyLlamaDir());
    const model = new CpuLlama(m.config, m.sources);
    const seqs = [
      [1, 200, 300, 400, 500, 17],
      [1, 33, 44],
    ];
    const lens = seqs.map((s) => s.length);
    const T = lens[0] + lens[1];
    let h = model.embedTokens(Int32Array.from(seqs.flat()));
    const seen: string[] = [];
    for (let i = 0; i < model.layers.length; i++)
      h = model.layerForward(i, h, lens, (li, name, x, rows, k) => {
        if (li === 0) seen.push(`${name}:${rows}x${k}`);
        expect(x.length).toBeGreaterThanOrEqual(rows * k);
      });
    expect(seen).toEqual(["q_proj:9x384", "k_proj:9x384", "v_proj:9x384", "o_proj:9x384", "gate_proj:9x384", "up_proj:9x384", "down_proj:9x1024"]);
    const logits = model.headForward(h, T);
    const inputs: number[] = [];
    const h2 = model.runLayers(seqs, (li, hidden) => inputs.push(li, hidden.length));
    expect(inputs).toEqual([0, T * 384, 1, T * 384, 2, T * 384, 3, T * 384, 4, T * 384, 5, T * 384]);
    expect(Array.from(h2)).toEqual(Array.from(h));
    const runner = new CpuModelRunner(model, 8, 16);
    const { batch } = CpuLlama.plainBatch(lens);
    batch.tokens.set(seqs.flat());
    const paged = model.forward(batch, runner.cache, Int32Array.from({ length: T }, (_, i) => i));
    expect(Array.from(logits)).toEqual(Array.from(paged));

    const w = model.getLinearWeight(2, "k_proj");
    expect(w.length).toBe(128 * 384);
    const before = model.layerForward(2, h, lens);
    model.setLinearWeight(2, "k_proj", w.map((v) => v * 0.5));
    expect(model.getLinearWeight(2, "k_proj")[7]).toBe(w[7] * 0.5);
    expect(model.getLinearWeight(2, "v_proj")).toEqual(model.getLinearWeight(2, "v_proj"));
    const after = model.layerForward(2, h, lens);
    expect(Array.from(after)).not.toEqual(Array.from(before));
    model.setLinearWeight(2, "k_proj", w);
    expect(Array.from(model.layerForward(2, h, lens))).toEqual(Array.from(before));
  });
});
