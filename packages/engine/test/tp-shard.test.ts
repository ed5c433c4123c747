// Shards of one linear layer against the unsharded layer in fp64: column shards concatenated and
// row shards summed give x W^T + b, for dense, grouped, zero-point, act-order and per-channel
// quantized layers, including cuts through the middle of a group, and shards padded to the
// kernels' shape rules (the vLLM complaint: input_size_per_partition=10944 not divisible by 128).
import { CPU, type LinearWeights, NoDeviceError, prepareLinear, Rng, registerWeightKind, runSeed } from "@marlin/core";
import { dequantize, f16ToF32, f32ToF16, quantizeRtn } from "@marlin/format";
import { cudaStatus } from "@marlin/kernel";
import { describe, expect, test } from "vitest";
import {
  checkTensorParallel,
  type LinearSource,
  linearToF32,
  loadModelConfig,
  NO_PAD,
  planLayout,
  prepareShard,
  shardColumns,
  shardRows,
  splitRange,
  TensorParallelError,
  toLinearWeights,
} from "../src/index.js";
import { hasTinyLlama, tinyLlamaDir } from "./helpers.js";

const SEED = runSeed();
console.log(`tp-shard seed ${SEED} (MARLIN_SEED to repeat)`);
const OPTS = { device: CPU, maxRows: 64 };

type Kind = "dense-f32" | "dense-f16" | "q4-g128" | "q4-g64-zp" | "q4-g128-act" | "q8-channel";
const KINDS: Kind[] = ["dense-f32", "dense-f16", "q4-g128", "q4-g64-zp", "q4-g128-act", "q8-channel"];

function layer(rng: Rng, kind: Kind, k: number, n: number, bias = true): LinearSource {
  const w = rng.fillNormal(new Float32Array(n * k), 0.05); // [n, k]
  const b = bias ? rng.fillNormal(new Float32Array(n), 0.1) : undefined;
  if (kind === "dense-f32") return { kind: "dense", n, k, weight: { dtype: "float32", shape: [n, k], data: w }, bias: b, name: kind };
  if (kind === "dense-f16") return { kind: "dense", n, k, weight: { dtype: "float16", shape: [n, k], data: f32ToF16(w) }, bias: b, name: kind };
  const kn = new Float32Array(k * n);
  for (let j = 0; j < n; j++) for (let i = 0; i < k; i++) kn[i * n + j] = w[j * k + i];
  const groupSize = kind === "q8-channel" ? -1 : kind === "q4-g64-zp" ? 64 : 128;
  let gIdx: Int32Array | undefined;
  if (kind === "q4-g128-act") {
    // act-order: groups of 128 rows scattered over k (a seeded shuffle of the group labels)
    gIdx = Int32Array.from({ length: k }, (_, i) => Math.floor(i / groupSize));
    for (let i = k - 1; i > 0; i--) {
      const j = rng.int(0, i + 1);
      [gIdx[i], gIdx[j]] = [gIdx[j], gIdx[i]];
    }
  }
  const q = quantizeRtn(kn, k, n, { bits: kind === "q8-channel" ? 8 : 4, groupSize, symmetric: kind !== "q4-g64-zp", gIdx });
  return { kind: "quantized", n, k, layer: q, bias: b, name: kind };
}

/** fp16-representable inputs (the quantized CPU kernel takes fp16 activations). */
function inputs(rng: Rng, m: number, k: number): Float32Array {
  return f16ToF32(f32ToF16(rng.fillNormal(new Float32Array(m * k))));
}

/** x W^T + b in fp64 from the unsharded layer's values. */
function reference(src: LinearSource, x: Float32Array, m: number): Float64Array {
  const w = src.kind === "quantized" ? transposeKn(dequantize(src.layer), src.k, src.n) : linearToF32(src);
  const out = new Float64Array(m * src.n);
  for (let r = 0; r < m; r++)
    for (let j = 0; j < src.n; j++) {
      let s = src.bias ? src.bias[j] : 0;
      for (let i = 0; i < src.k; i++) s += x[r * src.k + i] * w[j * src.k + i];
      out[r * src.n + j] = s;
    }
  return out;
}
function transposeKn(kn: Float32Array, k: number, n: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[j * k + i] = kn[i * n + j];
  return out;
}

/** Largest error relative to the largest reference value (fp16 outputs of the quantized kernel: ~1e-3). */
function relErr(got: ArrayLike<number>, want: Float64Array): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < want.length; i++) {
    e = Math.max(e, Math.abs(got[i] - want[i]));
    s = Math.max(s, Math.abs(want[i]));
  }
  return e / s;
}

function columns(x: Float32Array, m: number, k: number, start: number, end: number): Float32Array {
  const out = new Float32Array(m * (end - start));
  for (let r = 0; r < m; r++) out.set(x.subarray(r * k + start, r * k + end), r * (end - start));
  return out;
}

describe("tensor-parallel shards of one layer equal the unsharded layer (fp64 reference)", () => {
  const K = 384;
  const N = 256;
  const M = 5;
  // uneven cuts, some through the middle of a 64/128-row group
  const cuts: Record<string, number[]> = { "tp 2 even": [0, 192, 384], "tp 3 uneven": [0, 100, 250, 384] };

  for (const kind of KINDS)
    for (const [label, cut] of Object.entries(cuts)) {
      test(`${kind}, ${label}: column shards concatenated, row shards summed`, () => {
        const rng = new Rng(SEED ^ (KINDS.indexOf(kind) * 7919 + cut.length));
        const src = layer(rng, kind, K, N);
        const x = inputs(rng, M, K);
        const want = reference(src, x, M);
        // column-parallel: output features [cut_r, cut_r+1) scaled to n
        const nCut = cut.map((c) => Math.round((c / K) * N));
        const cols = new Float32Array(M * N);
        for (let r = 0; r + 1 < nCut.length; r++) {
          const s = shardColumns(src, nCut[r], nCut[r + 1]);
          const l = prepareShard(s, s.bias, NO_PAD, OPTS);
          const y = new Float32Array(M * s.n);
          l.forward(x, y, M);
          for (let row = 0; row < M; row++) cols.set(y.subarray(row * s.n, row * s.n + s.n), row * N + nCut[r]);
          l.dispose();
        }
        expect(relErr(cols, want)).toBeLessThan(2e-3);
        // row-parallel: input features [cut_r, cut_r+1), the bias added by the first shard only
        const sum = new Float64Array(M * N);
        for (let r = 0; r + 1 < cut.length; r++) {
          const { source, pad } = shardRows(src, cut[r], cut[r + 1]);
          if (source.kind === "quantized") {
            // each shard holds whole groups: every group of its own has exactly groupSize rows
            const l = source.layer;
            if (l.gIdx) {
              const count = new Map<number, number>();
              for (const g of l.gIdx) count.set(g, (count.get(g) ?? 0) + 1);
              expect([...count.values()].every((c) => c === l.groupSize)).toBe(true);
            }
            expect(source.k).toBe(pad.before + (cut[r + 1] - cut[r]) + pad.after);
          }
          const l = prepareShard(source, r === 0 ? src.bias : undefined, pad, OPTS);
          expect(l.k).toBe(cut[r + 1] - cut[r]);
          const y = new Float32Array(M * N);
          l.forward(columns(x, M, K, cut[r], cut[r + 1]), y, M);
          for (let i = 0; i < y.length; i++) sum[i] += y[i];
          l.dispose();
        }
        expect(relErr(sum, want)).toBeLessThan(3e-3);
      });
    }

  test("a row shard through the middle of a group is padded with zero rows on both sides", () => {
    const src = layer(new Rng(SEED), "q4-g128", K, N, false);
    expect(shardRows(src, 0, 192).pad).toEqual({ before: 0, after: 64 });
    expect(shardRows(src, 192, 384).pad).toEqual({ before: 64, after: 0 });
    expect(shardRows(src, 100, 250).pad).toEqual({ before: 100, after: 6 });
    expect(shardRows(src, 128, 256).pad).toEqual(NO_PAD);
  });

  test("k = 10944 (g64) is padded to 11008 for the 4-bit kernel, n = 100 to 128; results unchanged", () => {
    const rng = new Rng(SEED + 1);
    for (const [k, n, after, nAfter] of [
      [10944, 64, 64, 0],
      [256, 100, 0, 28],
    ] as const) {
      const src = layer(rng, "q4-g64-zp", k, n);
      const shard = prepareShard(src, src.bias, NO_PAD, OPTS);
      expect(shard.padding).toEqual({ before: 0, after, nAfter });
      // the padded shard is served by the implementation an aligned layer gets, which refuses the unpadded shape
      const aligned = prepareLinear(toLinearWeights(layer(rng, "q4-g64-zp", k + after, n + nAfter)), OPTS);
      const natural = prepareLinear(toLinearWeights(src), OPTS);
      expect(shard.implementationFor(1)).toBe(aligned.implementationFor(1));
      expect(natural.implementationFor(1)).not.toBe(aligned.implementationFor(1));
      const x = inputs(rng, 3, k);
      const y = new Float32Array(3 * n);
      shard.forward(x, y, 3);
      expect(relErr(y, reference(src, x, 3))).toBeLessThan(2e-3);
      for (const l of [shard, aligned, natural]) l.dispose();
    }
  });

  test("dense shards are not padded (the dense CPU kernel takes any shape)", () => {
    const src = layer(new Rng(SEED + 2), "dense-f32", 10944, 8);
    const shard = prepareShard(src, src.bias, NO_PAD, OPTS);
    expect(shard.padded).toBe(false);
    shard.dispose();
  });
});

describe("tensor-parallel layout", () => {
  test("intermediate features split at group boundaries; 10944 in 64-row groups over 2 ranks", () => {
    expect(splitRange(10944, 2, 64)).toEqual([
      { start: 0, end: 5504 },
      { start: 5504, end: 10944 },
    ]);
    expect(splitRange(1024, 2)).toEqual([
      { start: 0, end: 512 },
      { start: 512, end: 1024 },
    ]);
    expect(() => splitRange(100, 3, 64)).toThrow(TensorParallelError);
  });

  test.skipIf(!hasTinyLlama())("tiny-llama (6 heads, 2 kv heads): tp 1 and 2 fit, 3 and 4 are refused with the sizes that fit", () => {
    const c = loadModelConfig(tinyLlamaDir());
    const l = planLayout(c, 2);
    expect(l.heads).toEqual([
      { start: 0, end: 3 },
      { start: 3, end: 6 },
    ]);
    expect(l.kvHeads).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 2 },
    ]);
    expect(l.vocabPerRank).toBe(c.vocabSize / 2);
    for (const tp of [3, 4]) expect(() => planLayout(c, tp)).toThrow(/sizes that fit: 1, 2/);
    for (const bad of [0, 1.5, -2, 65]) expect(() => planLayout(c, bad)).toThrow(TensorParallelError);
  });

  test.skipIf(!hasTinyLlama())("CUDA placement: one device per rank (NCCL) or shared devices (host-staged); bad lists refused", () => {
    const c = loadModelConfig(tinyLlamaDir());
    const gpus = cudaStatus().deviceCount;
    expect(checkTensorParallel(c, 2, "cpu", { devices: [0, 0] })).toBeUndefined();
    expect(checkTensorParallel(c, 1, "cuda")).toBeUndefined();
    for (const bad of [[0], [0, -1], [0, 1.5], "0,1"]) expect(() => checkTensorParallel(c, 2, "cuda", { devices: bad })).toThrow(/tensorParallelDevices must list 2 device indices/);
    expect(() => checkTensorParallel(c, 2, "cuda", { communicator: "mpi" })).toThrow(/"nccl" or "host"/);
    expect(() => checkTensorParallel(c, 2, "cuda", { devices: [0, gpus] })).toThrow(NoDeviceError);
    if (gpus === 0) expect(() => checkTensorParallel(c, 2, "cuda", { devices: [0, 0] })).toThrow(/names device 0, 0 are visible/);
    else {
      expect(checkTensorParallel(c, 2, "cuda", { devices: [0, 0] })).toEqual({ devices: [0, 0], communicator: "host" });
      expect(() => checkTensorParallel(c, 2, "cuda", { devices: [0, 0], communicator: "nccl" })).toThrow(/one rank per GPU/);
    }
  });
});

describe("shards of weight kinds from other packages", () => {
  // a kind holding W [n, k] as fp32 under its own field, with a dense form and (for one) a slice hook
  const make = (kind: string, n: number, k: number, w: Float32Array): LinearSource => ({ kind: "extension", n, k, weights: { kind, n, k, values: w }, name: kind });
  const values = (w: LinearWeights) => (w as unknown as { values: Float32Array }).values;
  const slices: string[] = [];
  registerWeightKind("tp-test-sliceable", {
    toDense: values,
    slice(w, axis, start, end) {
      slices.push(`${axis} ${start}..${end}`);
      const v = values(w);
      const n = axis === "n" ? end - start : w.n;
      const k = axis === "k" ? end - start : w.k;
      const out = new Float32Array(n * k);
      for (let j = 0; j < n; j++)
        for (let i = 0; i < k; i++) out[j * k + i] = axis === "n" ? v[(start + j) * w.k + i] : v[j * w.k + start + i];
      return { kind: w.kind, n, k, values: out };
    },
  });
  registerWeightKind("tp-test-dense-only", { toDense: values });

  test("the kind's slice hook cuts it; a kind without one is sharded dense", () => {
    const w = Float32Array.from({ length: 8 * 6 }, (_, i) => i);
    const a = shardColumns(make("tp-test-sliceable", 8, 6, w), 2, 5);
    expect(a.kind).toBe("extension");
    expect(Array.from(values((a as Extract<LinearSource, { kind: "extension" }>).weights))).toEqual(Array.from(w.subarray(12, 30)));
    const b = shardRows(make("tp-test-sliceable", 8, 6, w), 1, 4);
    expect(b.source.k).toBe(3);
    expect(slices).toEqual(["n 2..5", "k 1..4"]);
    const c = shardRows(make("tp-test-dense-only", 8, 6, w), 1, 4).source;
    expect(c.kind).toBe("dense");
    expect(Array.from(linearToF32(c).subarray(0, 3))).toEqual([1, 2, 3]);
  });
});
