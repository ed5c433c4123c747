import { Rng, relativeError, runSeed } from "@marlin/core";
import { describe, expect, test } from "vitest";
import { cpuOps } from "../src/cpu/ops.js";
import { pagedRows } from "./helpers.js";

const seed = runSeed();
const rng = new Rng(seed);
const rand = (n: number, s = 1) => rng.fillNormal(new Float32Array(n), s) as Float32Array;
const poisoned = (n: number) => new Float32Array(n).fill(Number.NaN);

describe("engine CPU ops", () => {
  console.log(`cpu-ops seed ${seed} (MARLIN_SEED replays)`);
  const ops = cpuOps();

  test("linear matches fp64 and is batch-invariant", () => {
    for (const [m, n, k] of [[1, 40, 24], [7, 33, 100], [9, 80, 64], [20, 64, 384], [100, 130, 40]]) {
      const x = rand(m * k);
      const w = rand(n * k);
      const bias = rand(n);
      const packed = new Float32Array(ops.packedLinearSize(n, k));
      ops.packLinear(w, n, k, packed);
      const out = poisoned(m * n);
      ops.linear(x, packed, bias, out, m, n, k);
      const ref = new Float64Array(m * n);
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = bias[j];
          for (let t = 0; t < k; t++) s += x[i * k + t] * w[j * k + t];
          ref[i * n + j] = s;
        }
      expect(relativeError(out, ref)).toBeLessThan(1e-5);
      // Every row alone gives the bits it got in the batch (batch invariance).
      for (let row = 0; row < m; row++) {
        const one = poisoned(n);
        ops.linear(x.subarray(row * k, row * k + k), packed, bias, one, 1, n, k);
        expect(Array.from(one)).toEqual(Array.from(out.subarray(row * n, row * n + n)));
      }
    }
  });

  test("rmsnorm, addRmsnorm and siluMul", () => {
    const rows = 5;
    const h = 48;
    const x = rand(rows * h);
    const w = rand(h);
    const out = poisoned(rows * h);
    ops.rmsnorm(x, w, 1e-5, rows, h, out);
    const ref = new Float64Array(rows * h);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let i = 0; i < h; i++) ss += x[r * h + i] ** 2;
      const inv = 1 / Math.sqrt(ss / h + 1e-5);
      for (let i = 0; i < h; i++) ref[r * h + i] = x[r * h + i] * inv * w[i];
    }
    expect(relativeError(out, ref)).toBeLessThan(1e-6);
    const res = rand(rows * h);
    const res0 = res.slice();
    const y = x.slice();
    ops.addRmsnorm(y, res, w, 1e-5, rows, h);
    for (let i = 0; i < res.length; i++) expect(res[i]).toBe(Math.fround(res0[i] + x[i]));
    const gu = rand(rows * 2 * h);
    const act = poisoned(rows * h);
    ops.siluMul(gu, rows, h, act);
    const aref = new Float64Array(rows * h);
    for (let r = 0; r < rows; r++)
      for (let i = 0; i < h; i++) {
        const g = gu[r * 2 * h + i];
        aref[r * h + i] = (g / (1 + Math.exp(-g))) * gu[r * 2 * h + h + i];
      }
    expect(relativeError(act, aref)).toBeLessThan(1e-6);
  });

  test("paged attention matches a dense fp64 reference (GQA, scattered blocks)", () => {
    const heads = 4;
    const kvHeads = 2;
    const D = 16;
    const bs = 4;
    const lens = [5, 11];
    const T = lens[0] + lens[1];
    const stride = (heads + 2 * kvHeads) * D;
    const qkv = rand(T * stride);
    const kvd = kvHeads * D;
    const numBlocks = 12;
    const kc = new Float32Array(numBlocks * bs * kvd);
    const vc = new Float32Array(numBlocks * bs * kvd);
    const maxBlocks = 3;
    const tables = Int32Array.from([7, 2, 0, 5, 9, 1]);
    const { pos, seqOf: seqOfRow, slots } = pagedRows(lens, tables, maxBlocks, bs);
    ops.storeKv(qkv, T, stride, heads * D, heads * D + kvd, kvd, slots, kc, vc);
    const out = poisoned(T * heads * D);
    const scale = 1 / Math.sqrt(D);
    ops.pagedAttention(qkv, T, stride, heads, kvHeads, D, kc, vc, tables, maxBlocks, bs, seqOfRow, pos, scale, out);
    const ref = new Float64Array(T * heads * D);
    let start = 0;
    for (const len of lens) {
      for (let t = 0; t < len; t++)
        for (let h = 0; h < heads; h++) {
          const kvh = Math.floor(h / (heads / kvHeads));
          const sc: number[] = [];
          for (let p = 0; p <= t; p++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += qkv[(start + t) * stride + h * D + d] * qkv[(start + p) * stride + heads * D + kvh * D + d];
            sc.push(s * scale);
          }
          const mx = Math.max(...sc);
          const e = sc.map((s) => Math.exp(s - mx));
          const sum = e.reduce((a, b) => a + b, 0);
          for (let d = 0; d < D; d++) {
            let acc = 0;
            for (let p = 0; p <= t; p++) acc += e[p] * qkv[(start + p) * stride + heads * D + kvd + kvh * D + d];
            ref[(start + t) * heads * D + h * D + d] = acc / sum;
          }
        }
      start += len;
    }
    expect(relativeError(out, ref)).toBeLessThan(1e-5);
  });

  test("rope rotates pairs (i, i + d/2)", () => {
    const D = 8;
    const x = rand(2 * D);
    const y = x.slice();
    const cos = Float32Array.from({ length: 4 * 4 }, (_, i) => Math.cos(Math.floor(i / 4) * ((i % 4) + 1) * 0.3));
    const sin = Float32Array.from({ length: 4 * 4 }, (_, i) => Math.sin(Math.floor(i / 4) * ((i % 4) + 1) * 0.3));
    ops.rope(y, 2, D, 1, D, D, Int32Array.from([0, 3]), cos, sin, 4);
    expect(Array.from(y.subarray(0, D))).toEqual(Array.from(x.subarray(0, D))); // position 0: identity
    for (let i = 0; i < 4; i++) {
      const c = cos[12 + i];
      const s = sin[12 + i];
      expect(y[D + i]).toBeCloseTo(x[D + i] * c - x[D + i + 4] * s, 5);
      expect(y[D + i + 4]).toBeCloseTo(x[D + i + 4] * c + x[D + i] * s, 5);
    }
  });

  test("sampling: greedy, top-k, seeded draws follow the distribution", () => {
    const V = 6;
    const logits = Float32Array.from([0.1, 2.0, 1.0, 0.5, -1, 1.5]);
    const one = (t: number, k: number, p: number, s: number, c: number) => {
      const out = new Int32Array(1);
      ops.sample(logits, 1, V, Float32Array.of(t), Int32Array.of(k), Float32Array.of(p), Uint32Array.of(s, 0), Int32Array.of(c), out);
      return out[0];
    };
    expect(one(0, 0, 1, 1, 0)).toBe(1);
    const counts = new Array(V).fill(0);
    const N = 4000;
    for (let c = 0; c < N; c++) counts[one(1, 0, 1, seed, c)]++;
    const e = Array.from(logits, (l) => Math.exp(l));
    const z = e.reduce((a, b) => a + b, 0);
    for (let i = 0; i < V; i++) expect(Math.abs(counts[i] / N - e[i] / z)).toBeLessThan(0.03);
    for (let c = 0; c < 200; c++) expect([1, 5]).toContain(one(1, 2, 1, seed, c));
    for (let c = 0; c < 200; c++) expect(one(1, 0, 0.3, seed, c)).toBe(1); // top-p mass 0.3: only the best
    expect(one(0.7, 0, 0.9, 42, 3)).toBe(one(0.7, 0, 0.9, 42, 3));
  });

  test("arguments are validated before anything is written", () => {
    const x = new Float32Array(4);
    expect(() => ops.embedding(Int32Array.of(5), new Float32Array(8), 2, 4, x)).toThrow(/outside/);
    expect(() => ops.linear(x, new Float32Array(1), null, x, 1, 2, 2)).toThrow(/elements/);
  });
});
