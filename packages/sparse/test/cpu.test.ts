// The 2:4 CPU path (native/src/sparse/cpu_gemm.cpp) against fp64 of the dequantized sparse weights:
// a variant matrix over m, shapes and group kinds, poisoned outputs, batch invariance, and
// refusals of bad input (typed errors, nothing written).
import { DTypeError, InvalidArgumentError, Rng, runSeed, ShapeError } from "@marlin/core";
import { describe, expect, it } from "vitest";
import { packSparse24, sparse24Matmul } from "../src/index.js";
import { POISON, randomActivations, randomSparseLayer, reference, relError } from "./helpers.js";

const seed = runSeed();
console.log(`sparse24 CPU tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);

const MS = [1, 2, 7, 16, 17, 33, 64];
// Small odd shapes and real ones (tiny-llama's k/v, o/gate/up; a 7B-like slice).
const SHAPES: [number, number][] = [
  [128, 16],
  [128, 80],
  [384, 128],
  [384, 1024],
  [1024, 384],
  [4096, 64],
];

describe("sparse24 CPU path against fp64", () => {
  for (const g of [128, -1])
    for (const bias of [false, true])
      it(`group ${g}${bias ? ", bias" : ""}`, () => {
        for (const [k, n] of SHAPES) {
          const layer = randomSparseLayer(rng, k, n, g);
          const p = packSparse24(layer);
          const b = bias ? randomActivations(rng, 1, n) : undefined;
          for (const m of MS) {
            const x = randomActivations(rng, m, k);
            const out = new Uint16Array(m * n).fill(POISON);
            sparse24Matmul({ x, out, m, weights: p, bias: b });
            const { rel, nonFinite } = relError(out, reference(layer, x, m, "float16", b), "float16");
            expect(nonFinite, `k=${k} n=${n} m=${m}`).toBe(0);
            expect(rel, `k=${k} n=${n} m=${m}`).toBeLessThan(1e-3);
          }
        }
      });

  it("each row is the same alone or in a batch of 64, and runs repeat bit for bit", () => {
    const k = 512;
    const n = 96;
    const p = packSparse24(randomSparseLayer(rng, k, n, 128));
    const x = randomActivations(rng, 64, k);
    const run = (xs: Uint16Array, m: number) => {
      const out = new Uint16Array(m * n).fill(POISON);
      sparse24Matmul({ x: xs, out, m, weights: p });
      return out;
    };
    const batch = run(x, 64);
    expect(Array.from(run(x, 64))).toEqual(Array.from(batch));
    for (const r of [0, 17, 63]) expect(Array.from(run(x.subarray(r * k, (r + 1) * k), 1))).toEqual(Array.from(batch.subarray(r * n, (r + 1) * n)));
  });
});

describe("sparse24Matmul refusals (typed errors, nothing written)", () => {
  const k = 128;
  const n = 32;
  const p = packSparse24(randomSparseLayer(rng, k, n, 128));
  const x = randomActivations(rng, 4, k);
  const cases: [string, () => void, new (...a: any[]) => Error][] = [
    ["m = 0", () => sparse24Matmul({ x, out: new Uint16Array(4 * n).fill(POISON), m: 0, weights: p }), InvalidArgumentError],
    ["m fractional", () => sparse24Matmul({ x, out: new Uint16Array(4 * n).fill(POISON), m: 1.5, weights: p }), InvalidArgumentError],
    ["x too short", () => sparse24Matmul({ x: x.subarray(0, k), out: new Uint16Array(4 * n).fill(POISON), m: 4, weights: p }), ShapeError],
    ["out too short", () => sparse24Matmul({ x, out: new Uint16Array(n).fill(POISON), m: 4, weights: p }), ShapeError],
    ["x fp32", () => sparse24Matmul({ x: new Float32Array(4 * k) as any, out: new Uint16Array(4 * n).fill(POISON), m: 4, weights: p }), DTypeError],
    ["values short", () => sparse24Matmul({ x, out: new Uint16Array(4 * n).fill(POISON), m: 4, weights: { ...p, values: p.values.subarray(1) } }), ShapeError],
    ["group 64", () => sparse24Matmul({ x, out: new Uint16Array(4 * n).fill(POISON), m: 4, weights: { ...p, groupSize: 64 } }), InvalidArgumentError],
    ["bias short", () => sparse24Matmul({ x, out: new Uint16Array(4 * n).fill(POISON), m: 4, weights: p, bias: new Uint16Array(3) }), ShapeError],
  ];
  for (const [name, fn, type] of cases)
    it(name, () => {
      expect(fn).toThrow(type);
    });

  it("the addon's own checks refuse what the TypeScript layer would pass through", async () => {
    const { native } = await import("@marlin/kernel");
    const a = native();
    const out = new Uint16Array(4 * n).fill(POISON);
    expect(() => a.sparse24Cpu(x, p.values, p.meta, p.scales, null, out, 4, 24, k, 128)).toThrow(/multiple of 16/);
    expect(() => a.sparse24Cpu(x, p.values, p.meta, p.scales, null, out, 4, n, 192, 128)).toThrow(/k = 192 must be a multiple of 128/);
    expect(() => a.sparse24Cpu(x, p.values, p.meta, p.scales, null, out, 4, n, k, 32)).toThrow(/group size 32/);
    expect(() => a.sparse24Cpu(x, p.values.subarray(4), p.meta, p.scales, null, out, 4, n, k, 128)).toThrow();
    expect(out.every((v) => v === POISON)).toBe(true);
  });
});
