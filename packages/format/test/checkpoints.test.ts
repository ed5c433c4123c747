import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, InvalidArgumentError, Rng, runSeed } from "@marlin/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Bits,
  bf16ToF32,
  f16BitsToNumber,
  f32ToBf16,
  fromAwq,
  fromGptq,
  fromMarlinCheckpoint,
  loadQuantizedLayer,
  openCheckpoint,
  packCols,
  packMarlin,
  packRows,
  parseQuantizationConfig,
  type QuantizedLayer,
  toAwq,
  toGptq,
  toMarlinCheckpoint,
  unpackCols,
  unpackRows,
  writeSafetensors,
} from "../src/index.js";
import { expectSame, randomLayer } from "./helpers.js";

const seed = runSeed();
console.log(`checkpoints seed ${seed}`);

function expectLayersEqual(a: QuantizedLayer, b: QuantizedLayer): void {
  expect([a.k, a.n, a.bits, a.groupSize, a.symmetric]).toEqual([b.k, b.n, b.bits, b.groupSize, b.symmetric]);
  expectSame(a.q, b.q, "q");
  expectSame(a.scales, b.scales, "scales");
  expectSame(a.zeros, b.zeros, "zeros");
  expectSame(a.gIdx, b.gIdx, "gIdx");
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "marlin-format-ck-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("bit packing goldens", () => {
  it("GPTQ qweight packs along k, low bits first", () => {
    // k=8 rows of one column holding 1..8 (4-bit) -> one word 0x87654321
    const q = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    expect(Array.from(packRows(q, 8, 1, 4))).toEqual([0x87654321 | 0]);
    expect(Array.from(packRows(Uint8Array.of(1, 2, 3, 0xff), 4, 1, 8))).toEqual([0xff030201 | 0]);
    expect(Array.from(unpackRows(Int32Array.of(0x87654321 | 0), 8, 1, 4))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it("GPTQ qzeros pack along n; AWQ uses the order [0,2,4,6,1,3,5,7]", () => {
    const z = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
    expect(Array.from(packCols(z, 1, 8, 4))).toEqual([0x87654321 | 0]);
    // AWQ: nibble i holds column order[i]: columns 0,2,4,6,1,3,5,7 -> values 1,3,5,7,2,4,6,8
    expect(Array.from(packCols(z, 1, 8, 4, [0, 2, 4, 6, 1, 3, 5, 7]))).toEqual([0x86427531 | 0]);
    expect(Array.from(unpackCols(Int32Array.of(0x86427531 | 0), 1, 8, 4, [0, 2, 4, 6, 1, 3, 5, 7]))).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8,
    ]);
  });

  it("GPTQ v1 stores zero - 1; v2 the raw zero", () => {
    const layer: QuantizedLayer = {
      k: 8,
      n: 8,
      bits: 4,
      groupSize: -1,
      symmetric: false,
      q: new Uint8Array(64),
      scales: new Uint16Array(8).fill(0x3c00),
      zeros: Uint8Array.of(8, 8, 8, 8, 8, 8, 8, 0),
    };
    const v1 = toGptq(layer, { version: 1 });
    expect(((v1.qzeros.data as Int32Array)[0] >>> 0).toString(16)).toBe("f7777777");
    const v2 = toGptq(layer, { version: 2 });
    expect(((v2.qzeros.data as Int32Array)[0] >>> 0).toString(16)).toBe("8888888");
    expectLayersEqual(fromGptq(v1, { bits: 4, groupSize: -1, sym: false, version: 1 }), layer);
    expectLayersEqual(fromGptq(v2, { bits: 4, groupSize: -1, sym: false, version: 2 }), layer);
    // Symmetric v1 checkpoints hold 7 (= 8 - 1) in every qzeros nibble.
    const sym = toGptq({ ...layer, symmetric: true, zeros: undefined });
    expect(((sym.qzeros.data as Int32Array)[0] >>> 0).toString(16)).toBe("77777777");
  });
});

describe("GPTQ round trips", () => {
  const cases: [Bits, number, boolean, boolean, 1 | 2][] = [];
  for (const bits of [4, 8] as Bits[])
    for (const g of [-1, 32, 128])
      for (const sym of [true, false])
        for (const act of g === -1 ? [false] : [false, true]) for (const v of [1, 2] as const) cases.push([bits, g, sym, act, v]);

  it.each(cases)("bits %i group %i sym %s act-order %s v%i: layer -> GPTQ -> layer -> Marlin", (bits, g, sym, act, version) => {
    const rng = new Rng(seed ^ (bits * 97 + g * 3 + (sym ? 1 : 0) + (act ? 2 : 0) + version * 5));
    const layer = randomLayer(rng, 256, 128, bits, g, sym, act);
    const t = toGptq(layer, { version });
    expect(t.qweight.shape).toEqual([(256 * bits) / 32, 128]);
    expect(t.qzeros.shape).toEqual([g === -1 ? 1 : 256 / g, (128 * bits) / 32]);
    expect(t.g_idx.shape).toEqual([256]);
    const back = fromGptq(t, { bits, groupSize: g, sym, descAct: act, version });
    expectLayersEqual(back, layer);
    expectSame(packMarlin(back).qweight, packMarlin(layer).qweight, "marlin qweight");
  });

  it("through a safetensors file and parseQuantizationConfig", async () => {
    const rng = new Rng(seed);
    const layer = randomLayer(rng, 256, 192, 4, 128, false, true);
    const t = toGptq(layer, { version: 1 });
    const path = join(dir, "gptq.safetensors");
    await writeSafetensors(path, {
      "model.layers.0.mlp.up_proj.qweight": t.qweight,
      "model.layers.0.mlp.up_proj.qzeros": t.qzeros,
      "model.layers.0.mlp.up_proj.scales": t.scales,
      "model.layers.0.mlp.up_proj.g_idx": t.g_idx,
    });
    const cfg = parseQuantizationConfig({
      quantization_config: { quant_method: "gptq", bits: 4, group_size: 128, desc_act: true, sym: false },
    });
    const ck = await openCheckpoint(path);
    const p = "model.layers.0.mlp.up_proj";
    const back = fromGptq(
      {
        qweight: await ck.read(`${p}.qweight`),
        qzeros: await ck.read(`${p}.qzeros`),
        scales: await ck.read(`${p}.scales`),
        g_idx: await ck.read(`${p}.g_idx`),
      },
      { bits: cfg.bits, groupSize: cfg.groupSize, sym: cfg.sym, descAct: cfg.descAct, version: cfg.gptqVersion },
    );
    await ck.close();
    expectLayersEqual(back, layer);
  });

  it("drops a trivial g_idx without desc_act, and checks sizes", () => {
    const rng = new Rng(seed);
    const layer = randomLayer(rng, 128, 64, 4, 32, true);
    const t = toGptq(layer);
    expect(fromGptq(t, { bits: 4, groupSize: 32, sym: true }).gIdx).toBeUndefined();
    expect(() =>
      fromGptq({ ...t, scales: { ...t.scales, data: new Uint16Array(3) } }, { bits: 4, groupSize: 32, sym: true }),
    ).toThrow();
    expect(() => fromGptq({ ...t, qzeros: undefined }, { bits: 4, groupSize: 32, sym: false })).toThrow(
      InvalidArgumentError,
    );
    expect(() =>
      fromGptq({ ...t, qweight: { dtype: "float32", shape: [16, 64], data: new Float32Array(1024) } }, {
        bits: 4,
        groupSize: 32,
        sym: true,
      }),
    ).toThrow(FormatError);
  });
});

describe("AWQ round trips", () => {
  for (const g of [-1, 32, 64, 128]) {
    it(`group ${g}: layer -> AWQ -> layer, and AWQ -> GPTQ v1 -> layer`, () => {
      const rng = new Rng(seed ^ (g * 11));
      const layer = randomLayer(rng, 256, 128, 4, g, false);
      const a = toAwq(layer);
      expect(a.qweight.shape).toEqual([256, 16]);
      const back = fromAwq(a, { groupSize: g });
      expectLayersEqual(back, layer);
      const viaGptq = fromGptq(toGptq(back, { version: 1 }), { bits: 4, groupSize: g, sym: false, version: 1 });
      expectLayersEqual(viaGptq, layer);
      expectSame(packMarlin(viaGptq).zeros, packMarlin(layer).zeros, "marlin zeros");
    });
  }

  it("refuses act-order and 8-bit", () => {
    const rng = new Rng(seed);
    expect(() => toAwq(randomLayer(rng, 128, 64, 4, 32, false, true))).toThrow(InvalidArgumentError);
    expect(() => toAwq(randomLayer(rng, 128, 64, 8, 32, false))).toThrow(InvalidArgumentError);
  });
});

describe("parseQuantizationConfig", () => {
  it("reads GPTQ, GPTQ v2, AWQ, Marlin and old-style files", () => {
    const g = parseQuantizationConfig(
      JSON.stringify({
        quantization_config: { quant_method: "gptq", bits: 4, group_size: 128, desc_act: true, sym: true, damp_percent: 0.01 },
      }),
    );
    expect(g).toMatchObject({ quantMethod: "gptq", bits: 4, groupSize: 128, descAct: true, sym: true });
    expect(g).toMatchObject({ checkpointFormat: "gptq", gptqVersion: 1, dampPercent: 0.01 });
    expect(parseQuantizationConfig({ bits: 8, group_size: -1, sym: false, checkpoint_format: "gptq_v2" })).toMatchObject(
      { quantMethod: "gptq", bits: 8, groupSize: -1, sym: false, gptqVersion: 2 },
    );
    expect(parseQuantizationConfig({ bits: 4, group_size: 128, format: "gptq_v2" }).gptqVersion).toBe(2);
    expect(
      parseQuantizationConfig({ quant_method: "gptq", bits: 4, group_size: 128, checkpoint_format: "marlin" }),
    ).toMatchObject({ checkpointFormat: "marlin", sym: true });
    expect(parseQuantizationConfig({ bits: 4, group_size: 128, is_marlin_format: true }).checkpointFormat).toBe("marlin");
    expect(
      parseQuantizationConfig({ quantization_config: { quant_method: "awq", bits: 4, group_size: 128, zero_point: true, version: "gemm" } }),
    ).toMatchObject({ quantMethod: "awq", sym: false, zeroPoint: true, checkpointFormat: "awq_gemm" });
    expect(parseQuantizationConfig({ w_bit: 4, q_group_size: 64, zero_point: true, version: "GEMM" })).toMatchObject({
      quantMethod: "awq",
      groupSize: 64,
    });
    expect(parseQuantizationConfig({ quant_method: "marlin", group_size: 128, lm_head: false })).toMatchObject({
      quantMethod: "marlin",
      bits: 4,
      groupSize: 128,
      sym: true,
    });
  });

  it("rejects what it cannot represent, with FormatError", () => {
    const bad = [
      "{not json",
      [],
      { quant_method: "bitsandbytes", bits: 4 },
      { quant_method: "gptq", bits: 3, group_size: 128 },
      { quant_method: "gptq", bits: 4, group_size: 0 },
      { quant_method: "gptq", bits: 4, group_size: 128, desc_act: "yes" },
      { quant_method: "gptq", bits: 4, group_size: 128, checkpoint_format: "exl2" },
      { quant_method: "awq", bits: 4, group_size: 128, version: "gemv" },
      {},
    ];
    for (const b of bad) expect(() => parseQuantizationConfig(b), JSON.stringify(b)).toThrow(FormatError);
  });
});

describe("loadQuantizedLayer and the published Marlin tensors", () => {
  it("loads GPTQ, AWQ and Marlin layers from one safetensors file by config", async () => {
    const rng = new Rng(seed ^ 0x10ad);
    const gptqLayer = randomLayer(rng, 256, 128, 8, 64, false, true);
    const awqLayer = randomLayer(rng, 256, 128, 4, 128, false);
    const marlinLayer = randomLayer(rng, 256, 128, 4, 128, true);
    const g = toGptq(gptqLayer, { version: 2 });
    const a = toAwq(awqLayer);
    const m = toMarlinCheckpoint(packMarlin(marlinLayer));
    expect(m.B.shape).toEqual([16, 256]);
    expect(m.s.shape).toEqual([2, 128]);
    const path = join(dir, "mixed.safetensors");
    await writeSafetensors(path, {
      "g.qweight": g.qweight,
      "g.qzeros": g.qzeros,
      "g.scales": g.scales,
      "g.g_idx": g.g_idx,
      "a.qweight": a.qweight,
      "a.qzeros": a.qzeros,
      "a.scales": a.scales,
      "m.B": m.B,
      "m.s": m.s,
    });
    const ck = await openCheckpoint(path);
    const gc = parseQuantizationConfig({ quant_method: "gptq", bits: 8, group_size: 64, desc_act: true, sym: false, checkpoint_format: "gptq_v2" });
    expectLayersEqual(await loadQuantizedLayer(ck, "g", gc), gptqLayer);
    const ac = parseQuantizationConfig({ quant_method: "awq", bits: 4, group_size: 128, zero_point: true, version: "gemm" });
    expectLayersEqual(await loadQuantizedLayer(ck, "a", ac), awqLayer);
    const mc = parseQuantizationConfig({ quant_method: "gptq", bits: 4, group_size: 128, checkpoint_format: "marlin" });
    expectLayersEqual(await loadQuantizedLayer(ck, "m", mc), marlinLayer);
    await expect(loadQuantizedLayer(ck, "missing", gc)).rejects.toMatchObject({ tensor: "missing.qweight" });
    await ck.close();
    const packed = fromMarlinCheckpoint(m, { groupSize: 128 });
    expectSame(packed.qweight, packMarlin(marlinLayer).qweight, "B");
    expect(() => toMarlinCheckpoint(packMarlin(gptqLayer))).toThrow(InvalidArgumentError);
  });
});

describe("scales of other dtypes", () => {
  it("converts bf16 and fp32 scales to fp16, refusing overflow", () => {
    const rng = new Rng(seed);
    const layer = randomLayer(rng, 128, 64, 4, 64, true);
    const t = toGptq(layer);
    const f32 = new Float32Array(layer.scales.length);
    for (let i = 0; i < f32.length; i++) f32[i] = f16BitsToNumber(layer.scales[i]);
    const cfg = { bits: 4 as const, groupSize: 64, sym: true };
    const viaF32 = fromGptq({ ...t, scales: { dtype: "float32", shape: [2, 64], data: f32 } }, cfg);
    expectSame(viaF32.scales, layer.scales, "fp32 scales");
    const bf = f32ToBf16(f32);
    const viaBf = fromGptq({ ...t, scales: { dtype: "bfloat16", shape: [2, 64], data: bf } }, cfg);
    const back = bf16ToF32(bf);
    for (let i = 0; i < back.length; i++) expect(f16BitsToNumber(viaBf.scales[i])).toBe(back[i]);
    f32[3] = 1e6;
    expect(() => fromGptq({ ...t, scales: { dtype: "float32", shape: [2, 64], data: f32 } }, cfg)).toThrow(FormatError);
  });
});
