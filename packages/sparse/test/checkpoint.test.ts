// The checkpoint form: a writer's tensors, serialized and read back, give the same layer; bad
// files are refused with FormatError naming the tensor.
import { FormatError, Rng, runSeed } from "@marlin/core";
import { SafetensorsFile, serializeSafetensors } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { hasSparse24Layer, loadSparse24Layer, packSparse24, sparse24QuantizationConfig, sparse24Tensors } from "../src/index.js";
import { randomSparseLayer } from "./helpers.js";

const seed = runSeed();
console.log(`sparse24 checkpoint tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);

async function roundTrip(tensors: Record<string, any>) {
  return SafetensorsFile.fromBytes(serializeSafetensors(tensors));
}

describe("sparse24 checkpoint tensors", () => {
  for (const g of [128, -1])
    it(`writes and reads a layer (group ${g})`, async () => {
      const p = packSparse24(randomSparseLayer(rng, 384, 48, g));
      const t = sparse24Tensors("model.layers.0.mlp.up_proj", p);
      expect(Object.keys(t).sort()).toEqual(["model.layers.0.mlp.up_proj.B_24", "model.layers.0.mlp.up_proj.meta_24", "model.layers.0.mlp.up_proj.s_24"]);
      const f = await roundTrip(t);
      expect(hasSparse24Layer(f, "model.layers.0.mlp.up_proj")).toBe(true);
      expect(hasSparse24Layer(f, "model.layers.0.mlp.down_proj")).toBe(false);
      const back = await loadSparse24Layer(f, "model.layers.0.mlp.up_proj");
      expect(back.k).toBe(384);
      expect(back.n).toBe(48);
      expect(back.groupSize).toBe(g);
      expect(Array.from(back.values)).toEqual(Array.from(p.values));
      expect(Array.from(back.meta)).toEqual(Array.from(p.meta));
      expect(Array.from(back.scales)).toEqual(Array.from(p.scales));
    });
  it("the config names the sparsity", () => {
    expect(sparse24QuantizationConfig(128)).toMatchObject({ bits: 4, group_size: 128, sparsity: "2:4" });
  });
  it("refuses missing and mismatched tensors", async () => {
    const p = packSparse24(randomSparseLayer(rng, 256, 32, 128));
    const t = sparse24Tensors("x", p);
    const noScales = { ...t };
    delete noScales["x.s_24"];
    await expect(loadSparse24Layer(await roundTrip(noScales), "x")).rejects.toThrow(FormatError);
    const badMeta = { ...t, "x.meta_24": { dtype: "int32", shape: [2, 64], data: new Int32Array(128) } };
    await expect(loadSparse24Layer(await roundTrip(badMeta), "x")).rejects.toThrow(/x\.meta_24|expected \[2, 128\]/);
    const badGroups = { ...t, "x.s_24": { dtype: "float16", shape: [3, 32], data: new Uint16Array(96) } };
    await expect(loadSparse24Layer(await roundTrip(badGroups), "x")).rejects.toThrow(/scale groups/);
    const meta = p.meta.slice();
    meta[7] = 0; // every nibble (0, 0): invalid for mma.sp
    const badIdx = { ...t, "x.meta_24": { dtype: "int32", shape: [2, 128], data: meta } };
    await expect(loadSparse24Layer(await roundTrip(badIdx), "x")).rejects.toThrow(/word 7 .*not ascending/);
  });
});
