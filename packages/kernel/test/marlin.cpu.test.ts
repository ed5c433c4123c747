// The Marlin API on its CPU path: every variant against an fp64 reference, poisoned outputs,
// batch invariance, argument validation and registry reasons. Runs everywhere (CI included).
import {
  AlignmentError,
  CPU,
  DisposedError,
  DTypeError,
  explain,
  InvalidArgumentError,
  NoKernelError,
  Rng,
  runSeed,
  ShapeError,
  select,
} from "@marlin/core";
import { packMarlin } from "@marlin/format";
import { describe, expect, it } from "vitest";
import {
  DENSE_MATMUL_OP,
  DenseLayer,
  denseMatmul,
  MarlinLayer,
  marlinMatmul,
  QUANT_MATMUL_OP,
} from "../src/index.js";
import { fromBits, POISON, randomActivations, randomLayer, reference, relError, toBits, VARIANTS } from "./helpers.js";

const seed = runSeed();
console.log(`marlin CPU tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);

const SHAPES: [number, number][] = [
  [128, 64],
  [384, 192],
];
const MS = [1, 3, 16, 17, 65];

describe("marlin CPU path: every variant against fp64", () => {
  for (const v of VARIANTS) {
    it(v.name, () => {
      for (const [k, n] of SHAPES) {
        const layer = randomLayer(rng, k, n, v);
        const bias = v.bias ? randomActivations(rng, 1, n, v.dtype) : undefined;
        const lin = MarlinLayer.fromQuantized(layer, { device: "cpu", dtype: v.dtype, bias });
        for (const m of MS) {
          const x = randomActivations(rng, m, k, v.dtype);
          const out = new Uint16Array(m * n).fill(POISON);
          lin.forward(x, { out });
          const { rel, nonFinite } = relError(out, reference(layer, x, m, v.dtype, bias), v.dtype);
          expect(nonFinite, `${v.name} k=${k} n=${n} m=${m}`).toBe(0);
          expect(rel, `${v.name} k=${k} n=${n} m=${m}`).toBeLessThan(v.dtype === "float16" ? 2e-3 : 1e-2);
        }
      }
    });
  }
});

describe("marlin CPU path: determinism and batch invariance", () => {
  it("each row is the same computed alone or in a batch of 64, and runs repeat bit for bit", () => {
    const v = VARIANTS[0];
    const k = 256;
    const n = 128;
    const lin = MarlinLayer.fromQuantized(randomLayer(rng, k, n, v), { device: "cpu" });
    const x = randomActivations(rng, 64, k, v.dtype);
    const batch = lin.forward(x) as Uint16Array;
    expect(Array.from(lin.forward(x) as Uint16Array)).toEqual(Array.from(batch));
    for (const r of [0, 17, 63]) {
      const one = lin.forward(x.subarray(r * k, r * k + k)) as Uint16Array;
      expect(Array.from(one)).toEqual(Array.from(batch.subarray(r * n, r * n + n)));
    }
  });
});

describe("marlin argument validation (throws typed errors, writes nothing)", () => {
  const v = VARIANTS[0];
  const k = 128;
  const n = 64;
  const layer = randomLayer(rng, k, n, v);
  const lin = MarlinLayer.fromQuantized(layer, { device: "cpu" });
  const w = lin.weights;

  it("rejects unsupported shapes with a reason", () => {
    const bad = { ...layer, n: 32, q: layer.q.subarray(0, k * 32), scales: layer.scales.subarray(0, 32) };
    expect(() => MarlinLayer.fromQuantized(bad, { device: "cpu" })).toThrow();
    const packed = packMarlin(randomLayer(rng, 64, 64, { ...v, groupSize: -1 }));
    expect(() => MarlinLayer.fromPacked(packed, { device: "cpu" })).toThrow(ShapeError);
    expect(() => MarlinLayer.fromPacked(packed, { device: "cpu" })).toThrow(/multiple of 128/);
  });

  it("rejects wrong sizes, dtypes and mixed placement, leaving the output untouched", () => {
    const out = new Uint16Array(2 * n).fill(POISON);
    const x = randomActivations(rng, 2, k, "float16");
    expect(() => marlinMatmul({ x: x.subarray(0, k), out, m: 2, weights: w })).toThrow(ShapeError);
    expect(() => marlinMatmul({ x, out: out.subarray(0, n), m: 2, weights: w })).toThrow(ShapeError);
    expect(() => marlinMatmul({ x: new Float32Array(2 * k) as never, out, m: 2, weights: w })).toThrow(DTypeError);
    expect(() => marlinMatmul({ x, out, m: 2, weights: w, dtype: "float32" as never })).toThrow(DTypeError);
    expect(() => marlinMatmul({ x, out, m: 0, weights: w })).toThrow(InvalidArgumentError);
    expect(() => marlinMatmul({ x, out, m: 2, weights: { ...w, scales: new Uint16Array(3) } as never })).toThrow(ShapeError);
    expect(() => marlinMatmul({ x, out, m: 2, weights: { ...w, qweight: new Uint32Array(k * n) } as never })).toThrow(DTypeError);
    expect(() => marlinMatmul({ x, out, m: 2, weights: { ...w, groupSize: 48 } })).toThrow(ShapeError);
    expect(() => marlinMatmul({ x, out, m: 2, weights: { ...w, bits: 8, zeros: new Int32Array(n * 2) } as never })).toThrow(
      /zero points/,
    );
    expect(() => marlinMatmul({ x, out, m: 2, weights: { ...w, perm: new Int32Array(k).fill(k) } as never })).toThrow(
      InvalidArgumentError,
    );
    expect(() => marlinMatmul({ x, out, m: 2, weights: w, xByteOffset: 4 })).toThrow(InvalidArgumentError);
    expect(out.every((h) => h === POISON)).toBe(true);
  });

  it("rejects act-order layers whose groups are not all groupSize rows", () => {
    const l = randomLayer(rng, 256, 64, v);
    l.gIdx = new Int32Array(256).map((_, i) => (i < 120 ? 0 : 1)); // groups of 120 and 136 rows
    expect(() => MarlinLayer.fromQuantized(l, { device: "cpu" })).toThrow(/groupSize rows/);
  });

  it("throws DisposedError after dispose", () => {
    const l = MarlinLayer.fromQuantized(layer, { device: "cpu" });
    l.dispose();
    expect(() => l.forward(new Uint16Array(k))).toThrow(DisposedError);
  });
});

describe("dense CPU path", () => {
  it("matches fp64 with and without bias, batch invariant", () => {
    const k = 96;
    const n = 80;
    const m = 9;
    const wf = new Float64Array(k * n).map(() => rng.normal() * 0.1);
    const wb = new Uint16Array(k * n).map((_, i) => toBits("float16", wf[i]));
    const bias = randomActivations(rng, 1, n, "float16");
    const x = randomActivations(rng, m, k, "float16");
    const lin = new DenseLayer(wb, k, n, { device: "cpu", bias });
    const out = new Uint16Array(m * n).fill(POISON);
    lin.forward(x, { out });
    let num = 0;
    let den = 0;
    for (let r = 0; r < m; r++)
      for (let j = 0; j < n; j++) {
        let s = fromBits("float16", bias[j]);
        for (let i = 0; i < k; i++) s += fromBits("float16", x[r * k + i]) * fromBits("float16", wb[i * n + j]);
        num += (fromBits("float16", out[r * n + j]) - s) ** 2;
        den += s * s;
      }
    expect(Math.sqrt(num / den)).toBeLessThan(2e-3);
    const one = lin.forward(x.subarray(k * 4, k * 5)) as Uint16Array;
    expect(Array.from(one)).toEqual(Array.from(out.subarray(4 * n, 5 * n)));
    expect(() => denseMatmul({ x, w: wb, out, m, k: k + 1, n })).toThrow(ShapeError);
  });
});

describe("registry", () => {
  const q = {
    op: QUANT_MATMUL_OP,
    shape: { m: 16, n: 4096, k: 4096 },
    weight: { bits: 4 as const, zeroPoints: false },
    groupSize: 128,
    activation: "float16" as const,
  };
  it("selects marlin.cuda on sm_80+ and marlin.cpu on the CPU, with reasons", () => {
    expect(select({ ...q, device: CPU }).id).toBe("marlin.cpu");
    const rows = explain({ ...q, device: CPU });
    expect(rows.find((r) => r.id === "marlin.cuda")?.reason).toMatch(/CUDA device/);
    const old = explain({ ...q, device: { kind: "cuda", capability: 75, smCount: 40 } });
    expect(old.find((r) => r.id === "marlin.cuda")?.reason).toMatch(/compute capability 8/);
  });
  it("refuses bad shapes with a reason naming the rule", () => {
    const rows = explain({ ...q, shape: { m: 1, n: 4000, k: 4096 }, device: CPU });
    expect(rows.find((r) => r.id === "marlin.cpu")?.reason).toMatch(/multiple of 64/);
    // Nothing quantized takes group 48: the dequantized fallback serves it, and says why it was picked.
    const g48 = explain({ ...q, groupSize: 48, device: CPU });
    expect(g48.find((r) => r.id === "marlin.cpu")?.reason).toMatch(/group size 48/);
    expect(select({ ...q, groupSize: 48, device: CPU }).id).toBe("dequant.dense");
    expect(() => select({ ...q, groupSize: 48, device: CPU }, { disabled: ["dequant.dense"] })).toThrow(NoKernelError);
    const r8 = explain({ ...q, weight: { bits: 8, zeroPoints: true }, device: CPU });
    expect(r8.find((r) => r.id === "marlin.cpu")?.reason).toMatch(/8-bit/);
  });
  it("registers the dense op", () => {
    expect(select({ op: DENSE_MATMUL_OP, shape: { m: 1, n: 8, k: 8 }, device: CPU }).id).toBe("dense.cpu");
  });
});

// keep AlignmentError imported for the GPU suite's shared expectations
void AlignmentError;
