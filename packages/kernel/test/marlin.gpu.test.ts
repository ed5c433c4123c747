// The Marlin CUDA kernel through the TypeScript API: every variant against fp64 on small odd
// shapes and every m, a real layer shape for the main variant, poisoned outputs, repeat
// bit-identity, the kernel's self-resetting workspace, CUDA streams and validation before launch.
// The full large-shape matrix (8192 x 57344, 28672 x 8192, ...) runs in the native harness
// (native/src/kernel/marlin/standalone, `harness test`), which is quicker at packing huge layers.
import { AlignmentError, DisposedError, Rng, runSeed, ShapeError } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { DenseLayer, DeviceBuffer, hasGpu, MarlinLayer, MarlinWorkspace, marlinMatmul, noGpuReason, Stream } from "../src/index.js";
import { fromBits, POISON, randomActivations, randomLayer, reference, relError, toBits, VARIANTS } from "./helpers.js";

// Small odd shapes here; the full matrix on real layer shapes runs in the native harness.

const gpu = hasGpu();
if (!gpu) console.log(`Marlin GPU tests skipped: ${noGpuReason()}`);

const MS = [1, 2, 3, 7, 9, 12, 16, 17, 33, 64, 65, 128, 255, 1000];

function runGpu(lin: MarlinLayer, x: Uint16Array, m: number, n: number, opts: { stream?: Stream } = {}): Uint16Array {
  const dx = DeviceBuffer.from(x);
  const out = DeviceBuffer.alloc(m * n * 2);
  try {
    out.fillBytes(0xff); // NaN poison
    lin.forward(dx, { m, out, stream: opts.stream });
    opts.stream?.synchronize();
    return out.download(new Uint16Array(m * n));
  } finally {
    dx.free();
    out.free();
  }
}

describe.skipIf(!gpu)("marlin GPU kernel", () => {
  const seed = runSeed();
  console.log(`marlin GPU tests: MARLIN_SEED=${seed}`);
  const rng = new Rng(seed);

  for (const v of VARIANTS) {
    it(`${v.name}: small odd shapes, every m`, () => {
      for (const [k, n] of [
        [128, 64],
        [1024, 448],
      ] as [number, number][]) {
        const layer = randomLayer(rng, k, n, v);
        const bias = v.bias ? randomActivations(rng, 1, n, v.dtype) : undefined;
        const lin = MarlinLayer.fromQuantized(layer, { device: "cuda", dtype: v.dtype, bias });
        for (const m of MS) {
          const x = randomActivations(rng, m, k, v.dtype);
          const out = runGpu(lin, x, m, n);
          const again = runGpu(lin, x, m, n);
          // fp64 reference on every row up to m = 64, else on the first and last 32 rows (JS is slow);
          // every output is checked for the NaN poison.
          const sample = m <= 64 ? [[0, m]] : [[0, 32], [m - 32, m]];
          let nonFinite = 0;
          for (const h of out) if (!Number.isFinite(fromBits(v.dtype, h))) nonFinite++;
          let num = 0;
          let den = 0;
          for (const [r0, r1] of sample) {
            const ref = reference(layer, x.subarray(r0 * k, r1 * k), r1 - r0, v.dtype, bias);
            for (let i = 0; i < ref.length; i++) {
              num += (fromBits(v.dtype, out[r0 * n + i]) - ref[i]) ** 2;
              den += ref[i] ** 2;
            }
          }
          const rel = Math.sqrt(num / den);
          const tag = `${v.name} k=${k} n=${n} m=${m} rel=${rel.toExponential(2)}`;
          console.log(tag);
          expect(nonFinite, tag).toBe(0);
          expect(rel, tag).toBeLessThan(v.dtype === "float16" ? 2e-3 : 1e-2);
          expect(Buffer.from(again.buffer).equals(Buffer.from(out.buffer)), `${tag}: repeat bit-identical`).toBe(true);
        }
        lin.dispose();
      }
    });
  }

  it("a real layer shape (4096 x 12288, fp16, 4-bit, group 128) at several m", () => {
    const v = VARIANTS[0];
    const k = 4096;
    const n = 12288;
    const layer = randomLayer(rng, k, n, v);
    const lin = MarlinLayer.fromQuantized(layer, { device: "cuda" });
    for (const m of [1, 16, 33, 65]) {
      const x = randomActivations(rng, m, k, v.dtype);
      const out = runGpu(lin, x, m, n);
      // Reference on a few rows (the fp64 product in JS is slow).
      const rows = [0, m - 1];
      for (const r of rows) {
        const ref = reference(layer, x.subarray(r * k, r * k + k), 1, v.dtype);
        const { rel, nonFinite } = relError(out.subarray(r * n, r * n + n), ref, v.dtype);
        console.log(`4096x12288 m=${m} row ${r}: rel=${rel.toExponential(2)}`);
        expect(nonFinite).toBe(0);
        expect(rel).toBeLessThan(2e-3);
      }
      let bad = 0;
      for (const h of out) if (!Number.isFinite(fromBits("float16", h))) bad++;
      expect(bad, "every output written").toBe(0);
    }
    lin.dispose();
  });

  it("runs on a stream, leaves the workspace counters at zero, batch-invariant mode matches row by row", () => {
    const v = VARIANTS[0];
    const k = 1024;
    const n = 512;
    const layer = randomLayer(rng, k, n, v);
    const ws = new MarlinWorkspace(0);
    const lin = MarlinLayer.fromQuantized(layer, { device: "cuda", workspace: ws });
    const stream = new Stream(0);
    const m = 40;
    const x = randomActivations(rng, m, k, v.dtype);
    const out = runGpu(lin, x, m, n, { stream });
    const { rel } = relError(out, reference(layer, x, m, v.dtype), v.dtype);
    expect(rel).toBeLessThan(2e-3);
    const counters = new Int32Array(65536);
    const buf = (ws as unknown as { buf: DeviceBuffer }).buf;
    buf.download(counters);
    expect(counters.every((c) => c === 0)).toBe(true);
    // batch invariance (opt-in on the GPU)
    const dx = DeviceBuffer.from(x);
    const dout = DeviceBuffer.alloc(m * n * 2);
    lin.forward(dx, { m, out: dout, tuning: { batchInvariant: true } });
    const batch = dout.download(new Uint16Array(m * n));
    for (const r of [0, 39]) {
      const one = DeviceBuffer.from(x.subarray(r * k, r * k + k));
      const o1 = DeviceBuffer.alloc(n * 2);
      lin.forward(one, { m: 1, out: o1, tuning: { batchInvariant: true } });
      const row = o1.download(new Uint16Array(n));
      expect(Array.from(row)).toEqual(Array.from(batch.subarray(r * n, r * n + n)));
      one.free();
      o1.free();
    }
    dx.free();
    dout.free();
    stream.destroy();
    lin.dispose();
    ws.dispose();
  });

  it("validates before launch: misaligned offsets, short buffers, freed buffers, host/device mix", () => {
    const v = VARIANTS[0];
    const k = 128;
    const n = 64;
    const lin = MarlinLayer.fromQuantized(randomLayer(rng, k, n, v), { device: "cuda" });
    const x = DeviceBuffer.from(randomActivations(rng, 2, k, "float16"));
    const out = DeviceBuffer.alloc(2 * n * 2 + 64);
    out.fillBytes(0xff);
    expect(() => marlinMatmul({ x, out, m: 2, weights: lin.weights, outByteOffset: 8 })).toThrow(AlignmentError);
    expect(() => marlinMatmul({ x, out, m: 3, weights: lin.weights })).toThrow(ShapeError);
    expect(() => lin.forward(new Uint16Array(2 * k))).toThrow(/host/);
    const gone = DeviceBuffer.from(new Uint16Array(2 * k));
    gone.free();
    expect(() => marlinMatmul({ x: gone, out, m: 2, weights: lin.weights })).toThrow(DisposedError);
    const host = out.download(new Uint16Array(out.byteLength / 2));
    expect(host.every((h) => h === POISON)).toBe(true);
    x.free();
    out.free();
    lin.dispose();
  });

  it("dense cuBLAS fp16 path matches fp64", () => {
    const k = 256;
    const n = 192;
    const m = 5;
    const w = new Uint16Array(k * n).map(() => toBits("float16", rng.normal() * 0.05));
    const bias = randomActivations(rng, 1, n, "float16");
    const x = randomActivations(rng, m, k, "float16");
    const lin = new DenseLayer(w, k, n, { device: "cuda", bias });
    const dx = DeviceBuffer.from(x);
    const dout = lin.forward(dx) as DeviceBuffer;
    const out = dout.download(new Uint16Array(m * n));
    let num = 0;
    let den = 0;
    for (let r = 0; r < m; r++)
      for (let j = 0; j < n; j++) {
        let s = fromBits("float16", bias[j]);
        for (let i = 0; i < k; i++) s += fromBits("float16", x[r * k + i]) * fromBits("float16", w[i * n + j]);
        num += (fromBits("float16", out[r * n + j]) - s) ** 2;
        den += s * s;
      }
    expect(Math.sqrt(num / den)).toBeLessThan(2e-3);
    dx.free();
    dout.free();
    lin.dispose();
  });
});
