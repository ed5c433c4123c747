// The Hopper wgmma kernel and the dequantize-then-cuBLAS path without a GPU: shape rules (the same
// in TypeScript and in the addon), the capability check, typed errors for bad calls before anything
// is allocated or launched, and the registry entries' reasons. Runs everywhere (CI included).
import { CPU, type DeviceTarget, DTypeError, InvalidArgumentError, Rng, runSeed } from "@marlin/core";
import { describe, expect, it } from "vitest";
import {
  DequantScratch,
  dequantCublas,
  dequantMatmul,
  dequantScratchBytes,
  hasHopperBindings,
  hopperMatmul,
  hopperShapeRefusal,
  hopperStatus,
  marlinHopper,
  native,
  QUANT_MATMUL_OP,
} from "../src/index.js";

const seed = runSeed();
console.log(`hopper CPU tests: MARLIN_SEED=${seed}`);
const rng = new Rng(seed);

describe("wgmma kernel shape rules", () => {
  it("takes n % 128 == 0, k % 128 == 0, group -1/32/64/128, and refuses the rest with a reason", () => {
    const ok = { n: 256, k: 512, bits: 4, groupSize: 128, zeroPoints: false };
    expect(hopperShapeRefusal(ok)).toBeUndefined();
    expect(hopperShapeRefusal({ ...ok, n: 384, groupSize: -1 })).toBeUndefined();
    expect(hopperShapeRefusal({ ...ok, bits: 8, groupSize: 32 })).toBeUndefined();
    expect(hopperShapeRefusal({ ...ok, zeroPoints: true, groupSize: 64 })).toBeUndefined();
    expect(hopperShapeRefusal({ ...ok, n: 192 })).toMatch(/multiple of 128/);
    expect(hopperShapeRefusal({ ...ok, k: 320 })).toMatch(/multiple of 128/);
    expect(hopperShapeRefusal({ ...ok, groupSize: 96 })).toMatch(/group size 96/);
    expect(hopperShapeRefusal({ ...ok, bits: 8, zeroPoints: true })).toMatch(/8-bit/);
    expect(hopperShapeRefusal({ ...ok, bits: 3 })).toMatch(/3-bit/);
  });

  it("the addon's rule agrees with the TypeScript one on random shapes", () => {
    if (!hasHopperBindings()) {
      console.log("addon has no Hopper entry points (not built from this tree): agreement not checked");
      return;
    }
    for (let i = 0; i < 200; i++) {
      const n = 64 * rng.int(1, 40);
      const k = 64 * rng.int(2, 40);
      const groupSize = [-1, 32, 64, 128, 96][rng.int(0, 5)];
      const weight = rng.int(0, 3);
      const ts = hopperShapeRefusal({ n, k, bits: weight === 2 ? 8 : 4, groupSize, zeroPoints: weight === 1 });
      const cpp = native().hopperShapeRefusal(n, k, groupSize, weight) as string;
      const tag = `n=${n} k=${k} group=${groupSize} weight=${weight}: ts=${ts} cpp=${cpp}`;
      expect(ts === undefined, tag).toBe(cpp === "");
    }
  });
});

describe("capability check", () => {
  it("hopperStatus never throws and says why the kernel is unavailable", () => {
    const s = hopperStatus(0);
    expect(typeof s.built).toBe("boolean");
    expect(typeof s.available).toBe("boolean");
    if (!s.available) expect(s.reason).toBeTruthy();
    console.log(`hopperStatus(0): ${JSON.stringify(s)}`);
  });
});

describe("argument checks before any launch", () => {
  const weights = {
    k: 256,
    n: 256,
    bits: 4 as const,
    groupSize: 128,
    qweight: new Int32Array(256 * 256 / 8),
    scales: new Uint16Array(2 * 256),
  };
  const x = new Uint16Array(4 * 256);
  const out = new Uint16Array(4 * 256);

  it("host operands are refused with a DTypeError (both paths run on the GPU only)", () => {
    expect(() => hopperMatmul({ x, out, m: 4, weights } as never)).toThrow(DTypeError);
    expect(() => dequantMatmul({ x, out, m: 4, weights } as never)).toThrow(DTypeError);
  });

  it("bad m, dtype and argument objects are typed errors", () => {
    expect(() => hopperMatmul({ x, out, m: 0, weights } as never)).toThrow(InvalidArgumentError);
    expect(() => hopperMatmul({ x, out, m: 4, weights, dtype: "float32" } as never)).toThrow(DTypeError);
    expect(() => hopperMatmul(undefined as never)).toThrow(InvalidArgumentError);
    expect(() => dequantMatmul({ x, out, m: 1.5, weights } as never)).toThrow(InvalidArgumentError);
    expect(() => dequantMatmul(null as never)).toThrow(InvalidArgumentError);
  });

  it("scratch sizes: the whole layer, at least one 64-column slice", () => {
    expect(dequantScratchBytes(4096, 11008)).toBe(4096 * 11008 * 2);
    expect(DequantScratch.minBytes(8192)).toBe(8192 * 128);
    expect(() => dequantScratchBytes(0, 128)).toThrow(InvalidArgumentError);
    expect(() => new DequantScratch(0, { maxBytes: 0 })).toThrow(InvalidArgumentError);
    expect(() => new DequantScratch(-1)).toThrow(InvalidArgumentError);
  });
});

describe("registry entries: the measured crossovers", () => {
  const query = (m: number, device: DeviceTarget = CPU) => ({
    op: QUANT_MATMUL_OP,
    device,
    shape: { m, n: 4096, k: 4096 },
    weight: { bits: 4 as const, zeroPoints: false },
    groupSize: 128,
    activation: "float16" as const,
  });
  const h100 = { kind: "cuda" as const, capability: 90, smCount: 132, index: 0 };
  const a100 = { kind: "cuda" as const, capability: 80, smCount: 108, index: 0 };

  it("marlin.hopper refuses non-Hopper devices, CPU-only builds and small m, each with a reason", () => {
    for (const q of [query(64, a100), query(64), query(8, h100), query(64, h100)]) {
      const fit = marlinHopper.canImplement(q);
      if (!fit.ok) expect(fit.reason.length).toBeGreaterThan(0);
    }
    expect(marlinHopper.canImplement(query(64, a100)).ok).toBe(false);
    expect(marlinHopper.canImplement(query(8, h100)).ok).toBe(false);
  });

  it("marlin.hopper takes m = 128..1023 on layers with n and k >= 8192 only; dequant.cublas from m = 256 (smaller layers) or 1024", () => {
    const wide = (m: number) => ({ ...query(m, h100), shape: { m, n: 8192, k: 8192 } });
    // Each refusal names its rule (the static ones come before whether this build has the kernel).
    for (const q of [query(64, h100), query(512, h100), wide(64), wide(1024)]) {
      const fit = marlinHopper.canImplement(q);
      expect(fit.ok).toBe(false);
      if (!fit.ok) expect(fit.reason).toMatch(/mma\.sync|dequantize|m = |n = |CUDA|sm_90a/);
    }
    for (const [q, ok] of [
      [query(128, h100), false],
      [query(256, h100), true],
      [wide(256), false],
      [wide(1024), true],
    ] as const) {
      const fit = dequantCublas.canImplement(q);
      if (fit.ok || /below/.test(fit.reason)) expect(fit.ok).toBe(ok); // a CPU-only build refuses for its own reason first
    }
  });

  it("at m = 128 marlin.hopper leaves layers below 2^30 weights to the mma.sync kernel's wgmma tile", () => {
    const at = (m: number, n: number, k: number) => ({ ...query(m, h100), shape: { m, n, k } });
    const fit = marlinHopper.canImplement(at(128, 8192, 8192));
    expect(fit.ok).toBe(false);
    if (!fit.ok) expect(fit.reason).toMatch(/2\^30|wgmma tile/);
    // 16384 x 65536 at 128 and any wide layer from 129 pass this rule (then only the build's reasons may refuse).
    for (const q of [at(128, 65536, 16384), at(129, 8192, 8192)]) {
      const r = marlinHopper.canImplement(q);
      if (!r.ok) expect(r.reason).not.toMatch(/2\^30|wgmma tile/);
    }
  });

  it("refusals for a bad shape name the rule", () => {
    const fit = marlinHopper.canImplement({ ...query(64, h100), shape: { m: 64, n: 192, k: 4096 } });
    expect(fit.ok).toBe(false);
    if (!fit.ok) expect(fit.reason).toMatch(/multiple of|CUDA|sm_90a|wgmma/);
  });
});
