// The decode attention (split over context chunks, RoPE + KV store fused) against the separate ops
// it replaces in a pure decode step: RoPE + KV store, then the paged attention. Random data, GQA,
// contexts from 1 to several chunks, scattered blocks; outputs and the cache poisoned first.
import { Rng, relativeError, runSeed } from "@marlin/core";
import { f16ToF32, f32ToF16 } from "@marlin/format";
import { DeviceBuffer, hasGpu, noGpuReason } from "@marlin/kernel";
import { describe, expect, test } from "vitest";
import { gpuOps } from "../src/index.js";

const gpu = hasGpu();
if (!gpu) console.log(`decode attention GPU tests skipped: ${noGpuReason()}`);

describe.skipIf(!gpu)("decode attention (split, fused RoPE + KV store)", () => {
  const seed = runSeed();
  console.log(`decode-attention seed ${seed}`);
  const rng = new Rng(seed);

  for (const [heads, kvHeads, D] of [
    [8, 2, 128],
    [4, 4, 64],
  ] as const)
    test(`heads ${heads}, kv heads ${kvHeads}, head dim ${D}: contexts 1..1100 match the separate ops`, () => {
      const g = gpuOps();
      const bs = 16;
      const chunk = 256;
      const lens = [1, 37, 256, 257, 700, 1100]; // contexts (the row's position is len - 1)
      const rows = lens.length;
      const maxContext = 1152;
      const maxBlocks = maxContext / bs;
      const numBlocks = rows * maxBlocks + 3;
      const kvd = kvHeads * D;
      const stride = (heads + 2 * kvHeads) * D;
      // Scattered block tables: a permutation of the blocks.
      const perm = Int32Array.from({ length: numBlocks }, (_, i) => i);
      for (let i = numBlocks - 1; i > 0; i--) {
        const j = rng.int(0, i + 1);
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      const tables = perm.subarray(0, rows * maxBlocks);
      const pos = Int32Array.from(lens, (l) => l - 1);
      const slots = Int32Array.from(lens, (l, r) => tables[r * maxBlocks + Math.floor((l - 1) / bs)] * bs + ((l - 1) % bs));
      const seqOf = Int32Array.from({ length: rows }, (_, i) => i);
      const half = D / 2;
      const cos = Float32Array.from({ length: maxContext * half }, (_, i) => Math.cos(Math.floor(i / half) * 10000 ** (-(i % half) / half)));
      const sin = Float32Array.from({ length: maxContext * half }, (_, i) => Math.sin(Math.floor(i / half) * 10000 ** (-(i % half) / half)));
      const qkvHost = f32ToF16(rng.fillNormal(new Float32Array(rows * stride)) as Float32Array);
      const cacheHost = f32ToF16(rng.fillNormal(new Float32Array(numBlocks * bs * kvd)) as Float32Array);
      const up = (a: ArrayBufferView) => DeviceBuffer.from(a);
      const [cosD, sinD, tablesD, posD, seqD, slotsD] = [cos, sin, tables, pos, seqOf, slots].map(up);
      const shape = { rows, qStride: stride, heads, kvHeads, headDim: D, maxBlocks, blockSize: bs, numSeqs: rows, numBlocks, maxContext, scale: 1 / Math.sqrt(D) };
      const outBytes = rows * heads * D * 2;

      // The separate ops.
      const qkvA = up(qkvHost);
      const kA = up(cacheHost);
      const vA = up(cacheHost.map((x) => x ^ 0x8000)); // a different cache for v
      const outA = DeviceBuffer.alloc(outBytes);
      outA.fillBytes(0xff);
      g.ropeStoreKv(qkvA, posD, cosD, sinD, slotsD, kA, vA, rows, stride, heads, kvHeads, D, maxContext, numBlocks * bs);
      g.pagedAttention(qkvA, kA, vA, tablesD, seqD, posD, outA, shape);

      // The fused split kernel on the same inputs, with the current rows' cache slots poisoned.
      const qkvB = up(qkvHost);
      const kB = up(cacheHost);
      const vB = up(cacheHost.map((x) => x ^ 0x8000));
      for (const s of slots) {
        kB.fillBytes(0xff, s * kvd * 2, kvd * 2);
        vB.fillBytes(0xff, s * kvd * 2, kvd * 2);
      }
      const outB = DeviceBuffer.alloc(outBytes);
      outB.fillBytes(0xff);
      const splits = Math.ceil(maxContext / chunk);
      const partial = DeviceBuffer.alloc(rows * heads * splits * (D + 2) * 4);
      const counters = DeviceBuffer.alloc(rows * heads * 4);
      counters.fillBytes(0);
      const decode = { chunk, partial, counters, fuse: 1 as const, cos: cosD, sin: sinD, slots: slotsD, ropeRows: maxContext };
      for (let rep = 0; rep < 2; rep++) g.decodeAttention(qkvB, kB, vB, tablesD, seqD, posD, outB, shape, decode);
      // Fewer blocks per (row, head) than chunks (each block takes several), and every K/V load path
      // (direct loads, cp.async rings of 2..4 passes, with one and two blocks): the same bits.
      const outOf = (x: DeviceBuffer) => Array.from(x.download(new Uint16Array(outBytes / 2)));
      // kvReady is a promise these launches keep: each variant's cache was uploaded (synchronously)
      // before it, and the launch before wrote another variant's buffers.
      const variants: { blocks?: number; stages?: number; kvReady?: 1 }[] = [{ blocks: 1 }, { blocks: 2 }, { blocks: 3 }];
      for (const stages of [0, 2, 3, 4]) variants.push({ stages }, { stages, blocks: 2 }, { stages, kvReady: 1 });
      for (const v of variants) {
        const qkvC = up(qkvHost);
        const kC = up(cacheHost);
        const vC = up(cacheHost.map((x) => x ^ 0x8000));
        const outC = DeviceBuffer.alloc(outBytes);
        outC.fillBytes(0xff);
        g.decodeAttention(qkvC, kC, vC, tablesD, seqD, posD, outC, shape, { ...decode, ...v });
        expect(outOf(outC), JSON.stringify(v)).toEqual(outOf(outB));
        expect(Array.from(kC.download(new Uint16Array(numBlocks * bs * kvd)))).toEqual(Array.from(kB.download(new Uint16Array(numBlocks * bs * kvd))));
        for (const x of [qkvC, kC, vC, outC]) x.free();
      }
      expect(() => g.decodeAttention(qkvB, kB, vB, tablesD, seqD, posD, outB, shape, { ...decode, blocks: splits + 1 })).toThrow(/blocks must be at most/);
      for (const stages of [1, 5]) expect(() => g.decodeAttention(qkvB, kB, vB, tablesD, seqD, posD, outB, shape, { ...decode, stages })).toThrow(/stages must be 0, 2, 3 or 4/);

      const a = f16ToF32(outA.download(new Uint16Array(outBytes / 2)));
      const b = f16ToF32(outB.download(new Uint16Array(outBytes / 2)));
      expect(b.every(Number.isFinite)).toBe(true);
      const err = relativeError(b, a);
      // Rows of one chunk take the same arithmetic as the paged kernel: bit-identical.
      const oneChunk = (r: number) => lens[r] <= chunk;
      for (let r = 0; r < rows; r++) if (oneChunk(r)) expect(Array.from(b.subarray(r * heads * D, (r + 1) * heads * D))).toEqual(Array.from(a.subarray(r * heads * D, (r + 1) * heads * D)));
      console.log(`decode attention heads ${heads}/${kvHeads} D ${D}: rel. error vs separate ops ${err.toExponential(2)}`);
      expect(err).toBeLessThan(2e-3);
      // The KV store matches, and the counters are back to zero.
      const kc = (x: DeviceBuffer) => x.download(new Uint16Array(numBlocks * bs * kvd));
      expect(Array.from(kc(kB))).toEqual(Array.from(kc(kA)));
      expect(Array.from(kc(vB))).toEqual(Array.from(kc(vA)));
      expect(Array.from(counters.download(new Int32Array(rows * heads)))).toEqual(new Array(rows * heads).fill(0));
      for (const x of [qkvA, kA, vA, outA, qkvB, kB, vB, outB, partial, counters, cosD, sinD, tablesD, posD, seqD, slotsD]) x.free();
    });
});
