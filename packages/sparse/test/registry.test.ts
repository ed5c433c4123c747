// sparse24 in the one registry: which implementation serves a layer and why the others do not,
// the CPU plan's results, the fallback, and the weight kind's hooks (concat, toDense).
import { CPU, explain, type LinearWeights, prepareLinear, Rng, runSeed, weightKindHooks } from "@marlin/core";
import { f16ToF32 } from "@marlin/format";
import { describe, expect, it } from "vitest";
import { packSparse24, SPARSE24_MATMUL_OP, sparse24ToDense, sparse24Weights } from "../src/index.js";
import { randomActivations, randomSparseLayer, reference } from "./helpers.js";

const seed = runSeed();
console.log(`sparse24 registry tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);
const sm = (capability: number) => ({ kind: "cuda" as const, capability, smCount: 132 });

function query(w: LinearWeights, m: number, device: Parameters<typeof explain>[0]["device"]) {
  return { op: SPARSE24_MATMUL_OP, device, shape: { m, n: w.n, k: w.k }, activation: "float16" as const, extra: { groupSize: 128, bits: 4 } };
}

describe("sparse24 registry entries", () => {
  const w = sparse24Weights(packSparse24(randomSparseLayer(rng, 256, 64, 128)));
  it("CPU: sparse24.cpu is picked; the CUDA kernel is refused for the device", () => {
    const rows = explain(query(w, 4, CPU));
    const pick = rows.find((r) => r.selected);
    expect(pick?.id).toBe("sparse24.cpu");
    expect(rows.find((r) => r.id === "sparse24.cuda")?.ok).toBe(false);
  });
  it("explains refusals: compute capability below 8.0, shape off the tile, no CUDA build", () => {
    const reason = (device: ReturnType<typeof sm>, n: number) => explain({ ...query(w, 1, device), shape: { m: 1, n, k: 256 } }).find((r) => r.id === "sparse24.cuda")!.reason;
    expect(reason(sm(75), 64)).toMatch(/8\.0|80/);
    expect(reason(sm(90), 80)).toMatch(/n = 80 is not a multiple of the kernel's 64-output tile/);
    expect(explain({ ...query(w, 1, sm(90)), shape: { m: 1, n: 64, k: 192 } }).find((r) => r.id === "sparse24.cuda")!.reason).toMatch(/k % 128/);
    expect(explain({ ...query(w, 1, sm(90)), extra: { groupSize: 64, bits: 4 } }).find((r) => r.id === "sparse24.cuda")!.reason).toMatch(/group size 64/);
  });

  it("prepareLinear on the CPU runs the layer; MARLIN_DISABLE falls back to the dense path", () => {
    const layer = randomSparseLayer(rng, 384, 128, -1);
    const bias = new Float32Array(128).map(() => rng.normal());
    const lw = sparse24Weights(packSparse24(layer), { bias, name: "t" });
    const m = 5;
    const xb = randomActivations(rng, m, 384);
    const x = f16ToF32(xb);
    const ref = reference(layer, xb, m, "float16");
    for (const disabled of [[], ["sparse24.cpu"]]) {
      const lin = prepareLinear<Float32Array>(lw, { device: CPU, maxRows: 64, disabled });
      expect(lin.implementationFor(m)).toBe(disabled.length ? "sparse24.dequant" : "sparse24.cpu");
      const out = new Float32Array(m * 128).fill(Number.NaN);
      lin.forward(x, out, m);
      let num = 0;
      let den = 0;
      for (let r = 0; r < m; r++)
        for (let j = 0; j < 128; j++) {
          const want = ref[r * 128 + j] + bias[j];
          num += (out[r * 128 + j] - want) ** 2;
          den += want ** 2;
        }
      expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
      lin.dispose();
    }
  });

  it("the weight kind fuses layers along n and gives their dense form", () => {
    const hooks = weightKindHooks("sparse24");
    expect(hooks?.concat && hooks.toDense).toBeTruthy();
    const parts = [randomSparseLayer(rng, 256, 64, 128), randomSparseLayer(rng, 256, 16, 128), randomSparseLayer(rng, 256, 32, 128)];
    const fused = hooks!.concat!(parts.map((l) => sparse24Weights(packSparse24(l))), "q+k+v");
    expect(fused.n).toBe(112);
    const dense = hooks!.toDense!(fused); // [n, k]
    let row = 0;
    for (const l of parts) {
      const d = sparse24ToDense(packSparse24(l));
      expect(Array.from(dense.subarray(row * 256, (row + l.n) * 256))).toEqual(Array.from(d));
      row += l.n;
    }
  });
});
