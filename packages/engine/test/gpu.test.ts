import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rng, relativeError, runSeed } from "@marlin/core";
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { DeviceBuffer, hasGpu, noGpuReason } from "@marlin/kernel";
import { beforeAll, describe, expect, test } from "vitest";
import { cpuOps, gpuOps, LLM, type LoadedModel, loadModelDir, perplexity, quantizeSourcesRtn } from "../src/index.js";
import { hasTinyLlama, pagedRows, tinyLlamaDir } from "./helpers.js";

const gpu = hasGpu();
if (!gpu) console.log(`GPU tests skipped: ${noGpuReason()}`);
const seed = runSeed();


describe.skipIf(!gpu)("engine CUDA ops against the CPU ops", () => {
  console.log(`gpu-ops seed ${seed}`);
  const rng = new Rng(seed);
  const rand = (n: number) => rng.fillNormal(new Float32Array(n)) as Float32Array;
  const half = (a: Float32Array) => f16ToF32(f32ToF16(a));
  const dev = (a: Float32Array) => DeviceBuffer.from(f32ToF16(a));
  const devPoison = (n: number) => {
    const b = DeviceBuffer.alloc(n * 2);
    b.fillBytes(0xff);
    return b;
  };
  const back = (b: DeviceBuffer, n: number) => f16ToF32(b.download(new Uint16Array(n)));

  test("rmsnorm, rope, siluMul, paged attention", () => {
    const g = gpuOps();
    const c = cpuOps();
    const rows = 7;
    const H = 96;
    const x = half(rand(rows * H));
    const w = rand(H);
    const outG = devPoison(rows * H);
    g.rmsnorm(dev(x), DeviceBuffer.from(w), outG, rows, H, 1e-5);
    const outC = new Float32Array(rows * H);
    c.rmsnorm(x, w, 1e-5, rows, H, outC);
    expect(relativeError(back(outG, rows * H), outC)).toBeLessThan(2e-3);

    const gu = half(rand(rows * 2 * H));
    const actG = devPoison(rows * H);
    g.siluMul(dev(gu), actG, rows, H);
    const actC = new Float32Array(rows * H);
    c.siluMul(gu, rows, H, actC);
    expect(relativeError(back(actG, rows * H), actC)).toBeLessThan(2e-3);

    // Attention over scattered blocks, GQA 4:2, head_dim 64.
    const heads = 4;
    const kvHeads = 2;
    const D = 64;
    const bs = 16;
    const stride = (heads + 2 * kvHeads) * D;
    const lens = [9, 40];
    const T = lens[0] + lens[1];
    const qkv = half(rand(T * stride));
    const tables = Int32Array.from([5, 0, 0, 3, 1, 6]);
    const maxBlocks = 3;
    const { pos, seqOf, slots } = pagedRows(lens, tables, maxBlocks, bs);
    const cosT = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.cos(Math.floor(i / 32) * 0.01 * ((i % 32) + 1)));
    const sinT = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(Math.floor(i / 32) * 0.01 * ((i % 32) + 1)));
    const qkvC = qkv.slice();
    c.rope(qkvC, T, stride, heads + kvHeads, D, D, pos, cosT, sinT, 64);
    const kvd = kvHeads * D;
    const numBlocks = 8;
    const kc = new Float32Array(numBlocks * bs * kvd);
    const vc = new Float32Array(numBlocks * bs * kvd);
    c.storeKv(qkvC, T, stride, heads * D, heads * D + kvd, kvd, slots, kc, vc);
    const attC = new Float32Array(T * heads * D);
    c.pagedAttention(qkvC, T, stride, heads, kvHeads, D, kc, vc, tables, maxBlocks, bs, seqOf, pos, 1 / 8, attC);

    const qkvG = dev(qkv);
    const posG = DeviceBuffer.from(pos);
    g.rope(qkvG, posG, DeviceBuffer.from(cosT), DeviceBuffer.from(sinT), T, stride, heads + kvHeads, D, 64);
    const kG = devPoison(numBlocks * bs * kvd);
    const vG = devPoison(numBlocks * bs * kvd);
    g.storeKv(qkvG, DeviceBuffer.from(slots), kG, vG, T, stride, heads * D, heads * D + kvd, kvd, numBlocks * bs);
    const attG = devPoison(T * heads * D);
    g.pagedAttention(qkvG, kG, vG, DeviceBuffer.from(tables), DeviceBuffer.from(seqOf), posG, attG, {
      rows: T, qStride: stride, heads, kvHeads, headDim: D, maxBlocks, blockSize: bs, numSeqs: 2, numBlocks, maxContext: 64, scale: 1 / 8,
    });
    expect(relativeError(back(attG, T * heads * D), attC)).toBeLessThan(3e-3);
  });

  // Attention (vectorized kernel for head_dim 16..256 in powers of two, the general one otherwise)
  // over scattered blocks with contexts longer than one pass of the key groups; rows of several
  // blocks each for rope, storeKv and siluMul.
  test.each<[number, number, number, number[]]>([
    [32, 8, 128, [1, 300, 70]],
    [4, 4, 32, [129, 5]],
    [6, 2, 48, [33, 90]],
    [2, 1, 256, [65]],
  ])("paged attention, %i heads / %i kv heads, head_dim %i, lengths %j", (heads, kvHeads, D, lens) => {
    const g = gpuOps();
    const c = cpuOps();
    const bs = 16;
    const stride = (heads + 2 * kvHeads) * D;
    const T = lens.reduce((a, b) => a + b, 0);
    const maxBlocks = Math.ceil(Math.max(...lens) / bs);
    const numBlocks = lens.length * maxBlocks + 3;
    // A random permutation of the blocks, so tables are scattered.
    const perm = Array.from({ length: numBlocks }, (_, i) => i);
    for (let i = numBlocks - 1; i > 0; i--) {
      const j = Math.floor(rng.nextU32() % (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    const tables = Int32Array.from({ length: lens.length * maxBlocks }, (_, i) => perm[i]);
    const qkv = half(rand(T * stride));
    const { pos, seqOf, slots } = pagedRows(lens, tables, maxBlocks, bs);
    const maxPos = 512;
    const hd = D / 2;
    const cosT = Float32Array.from({ length: maxPos * hd }, (_, i) => Math.cos(Math.floor(i / hd) * 0.01 * ((i % hd) + 1)));
    const sinT = Float32Array.from({ length: maxPos * hd }, (_, i) => Math.sin(Math.floor(i / hd) * 0.01 * ((i % hd) + 1)));
    const qkvC = qkv.slice();
    c.rope(qkvC, T, stride, heads + kvHeads, D, D, pos, cosT, sinT, maxPos);
    const kvd = kvHeads * D;
    const kc = new Float32Array(numBlocks * bs * kvd);
    const vc = new Float32Array(numBlocks * bs * kvd);
    c.storeKv(qkvC, T, stride, heads * D, heads * D + kvd, kvd, slots, kc, vc);
    const scale = 1 / Math.sqrt(D);
    const attC = new Float32Array(T * heads * D);
    c.pagedAttention(qkvC, T, stride, heads, kvHeads, D, kc, vc, tables, maxBlocks, bs, seqOf, pos, scale, attC);

    const qkvG = dev(qkv);
    const posG = DeviceBuffer.from(pos);
    g.rope(qkvG, posG, DeviceBuffer.from(cosT), DeviceBuffer.from(sinT), T, stride, heads + kvHeads, D, maxPos);
    expect(relativeError(back(qkvG, T * stride), qkvC)).toBeLessThan(2e-3);
    const kG = devPoison(numBlocks * bs * kvd);
    const vG = devPoison(numBlocks * bs * kvd);
    g.storeKv(qkvG, DeviceBuffer.from(slots), kG, vG, T, stride, heads * D, heads * D + kvd, kvd, numBlocks * bs);
    const attG = devPoison(T * heads * D);
    g.pagedAttention(qkvG, kG, vG, DeviceBuffer.from(tables), DeviceBuffer.from(seqOf), posG, attG, {
      rows: T, qStride: stride, heads, kvHeads, headDim: D, maxBlocks, blockSize: bs, numSeqs: lens.length, numBlocks, maxContext: maxPos, scale,
    });

    expect(relativeError(back(attG, T * heads * D), attC)).toBeLessThan(3e-3);

    // The fused rope + store matches the CPU reference too (its rounding order may differ from the
    // two separate ops, so this is a tolerance, not bit equality), and writes exactly the slots.
    const qkvF = dev(qkv);
    const kF = devPoison(numBlocks * bs * kvd);
    const vF = devPoison(numBlocks * bs * kvd);
    g.ropeStoreKv(qkvF, posG, DeviceBuffer.from(cosT), DeviceBuffer.from(sinT), DeviceBuffer.from(slots), kF, vF, T, stride, heads, kvHeads, D, maxPos, numBlocks * bs);
    expect(relativeError(back(qkvF, T * stride), qkvC)).toBeLessThan(2e-3);
    const written = (cache: Float32Array, ref: Float32Array) => {
      const got: number[] = [];
      const want: number[] = [];
      for (const slot of slots)
        for (let e = 0; e < kvd; e++) {
          got.push(cache[slot * kvd + e]);
          want.push(ref[slot * kvd + e]);
        }
      return relativeError(got, want);
    };
    expect(written(back(kF, numBlocks * bs * kvd), kc)).toBeLessThan(2e-3);
    expect(written(back(vF, numBlocks * bs * kvd), vc)).toBeLessThan(2e-3);

    const inter = 1000;
    const rows = 3;
    const gu = half(rand(rows * 2 * inter));
    const actG = devPoison(rows * inter);
    g.siluMul(dev(gu), actG, rows, inter);
    const actC = new Float32Array(rows * inter);
    c.siluMul(gu, rows, inter, actC);
    expect(relativeError(back(actG, rows * inter), actC)).toBeLessThan(2e-3);
  });

  test("sampling: greedy argmax and seeded top-k draws", () => {
    const g = gpuOps();
    const V = 1000;
    const rows = 4;
    const logits = half(rand(rows * V));
    const out = DeviceBuffer.alloc(rows * 4);
    const f32 = (v: number) => DeviceBuffer.from(new Float32Array(rows).fill(v));
    const i32 = (v: number) => DeviceBuffer.from(new Int32Array(rows).fill(v));
    g.sample(DeviceBuffer.from(logits), f32(0), i32(0), f32(1), DeviceBuffer.from(new Uint32Array(2 * rows)), i32(0), out, rows, V);
    const got = out.download(new Int32Array(rows));
    for (let r = 0; r < rows; r++) {
      let best = 0;
      for (let i = 1; i < V; i++) if (logits[r * V + i] > logits[r * V + best]) best = i;
      expect(got[r]).toBe(best);
    }
    g.sample(DeviceBuffer.from(logits), f32(1), i32(5), f32(1), DeviceBuffer.from(new Uint32Array(2 * rows).fill(seed)), i32(3), out, rows, V);
    const drawn = out.download(new Int32Array(rows));
    for (let r = 0; r < rows; r++) {
      const row = Array.from(logits.subarray(r * V, r * V + V));
      const fifth = [...row].sort((a, b) => b - a)[4];
      expect(row[drawn[r]]).toBeGreaterThanOrEqual(fifth);
    }
  });
});

describe.skipIf(!gpu || !hasTinyLlama())("engine on tiny-llama (GPU)", () => {
  let model: LoadedModel;
  let prompts: string[];
  beforeAll(async () => {
    model = await loadModelDir(tinyLlamaDir());
    const lines = readFileSync(join(tinyLlamaDir(), "calib.txt"), "utf8").split("\n").filter((l) => l.length > 20);
    const rng = new Rng(seed);
    prompts = Array.from({ length: 64 }, (_, i) => {
      const line = lines[rng.int(0, lines.length)];
      const words = line.split(" ");
      return i % 3 === 0 ? `${lines[0]} ${words.slice(0, rng.int(1, words.length + 1)).join(" ")}` : words.slice(0, rng.int(1, words.length + 1)).join(" ");
    });
  });

  const compare = (a: { tokenIds: number[] }[], b: { tokenIds: number[] }[]) => a.filter((r, i) => r.tokenIds.join() === b[i].tokenIds.join()).length / a.length;

  test("greedy batch of 64 vs one at a time; prefix cache; chunked prefill; CUDA graphs; no leaks", async () => {
    const single = await LLM.fromLoaded(model, { device: "cuda", maxNumSeqs: 1, prefixCaching: false, chunkedPrefill: false, cudaGraphs: false, kvCacheTokens: 4096 });
    const ref = [];
    for (const p of prompts) ref.push(...(await single.generate([p], { maxTokens: 16, ignoreEos: true })));
    single.dispose();
    for (const opts of [
      { prefixCaching: true, chunkedPrefill: true, maxNumBatchedTokens: 256, cudaGraphs: true },
      { prefixCaching: false, chunkedPrefill: false, maxNumBatchedTokens: 2048, cudaGraphs: false },
    ]) {
      const llm = await LLM.fromLoaded(model, { device: "cuda", kvCacheTokens: 16384, ...opts });
      for (let round = 0; round < 2; round++) {
        const out = await llm.generate(prompts, { maxTokens: 16, ignoreEos: true });
        const same = compare(out, ref);
        const runner = llm.engine.runner as unknown as { graphFailure?: string; kernels: Record<string, string> };
        console.log(`GPU ${JSON.stringify(opts)} round ${round}: ${(same * 100).toFixed(1)}% of 64 greedy outputs identical to one-at-a-time; graphs: ${runner.graphFailure ?? "ok"}; kernels ${JSON.stringify(runner.kernels)}`);
        expect(same).toBeGreaterThan(0.8);
        expect(llm.engine.blocks.numFreeBlocks).toBe(llm.engine.blocks.numBlocks);
      }
      llm.dispose();
    }
  });

  test("Marlin 4-bit (RTN g128) tiny-llama: perplexity near the dense one, greedy text sane", async () => {
    const text = readFileSync(join(tinyLlamaDir(), "eval.txt"), "utf8").split("\n").slice(0, 400).join("\n");
    const q = { ...model, sources: quantizeSourcesRtn(model.sources, { groupSize: 128 }) };
    const gpuQ = await LLM.fromLoaded(q, { device: "cuda", kvCacheTokens: 8192 });
    const cpuQ = await LLM.fromLoaded(q, { device: "cpu", kvCacheTokens: 4096 });
    const pg = await perplexity(gpuQ, text);
    const pc = await perplexity(cpuQ, text);
    console.log(`RTN-4bit perplexity on 400 lines: GPU Marlin ${pg.perplexity.toFixed(3)}, CPU dequantized ${pc.perplexity.toFixed(3)}`);
    expect(Math.abs(pg.perplexity / pc.perplexity - 1)).toBeLessThan(0.01);
    const out = await gpuQ.generate(prompts.slice(0, 8), { maxTokens: 16 });
    console.log(out.map((o) => o.text).join(" | "));
    expect(gpuQ.engine.blocks.numFreeBlocks).toBe(gpuQ.engine.blocks.numBlocks);
    gpuQ.dispose();
  });
});
