import { describe, expect, it } from "vitest";
import { CudaError, FormatError, MarlinError, Rng, runSeed, ShapeError } from "../src/index.js";

describe("errors", () => {
  it("carry stable codes and names", () => {
    const e = new CudaError("cudaErrorIllegalAddress", "boom");
    expect(e).toBeInstanceOf(MarlinError);
    expect(e.code).toBe("ERR_MARLIN_CUDA");
    expect(e.cudaError).toBe("cudaErrorIllegalAddress");
    expect(e.name).toBe("CudaError");
    expect(new ShapeError("x").code).toBe("ERR_MARLIN_SHAPE");
    const f = new FormatError("bad dtype", { file: "a.safetensors", tensor: "w" });
    expect(f.message).toBe("file a.safetensors, tensor w: bad dtype");
  });
});

describe("Rng", () => {
  it("replays from a seed and spreads values", () => {
    const seed = runSeed();
    console.log(`seed ${seed}`);
    const a = new Rng(seed);
    const b = new Rng(seed);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.4);
    expect(mean).toBeLessThan(0.6);
    const n = new Rng(seed).fillNormal(new Float64Array(20000));
    const m = n.reduce((s, x) => s + x, 0) / n.length;
    const v = n.reduce((s, x) => s + (x - m) ** 2, 0) / n.length;
    expect(Math.abs(m)).toBeLessThan(0.05);
    expect(Math.abs(v - 1)).toBeLessThan(0.05);
  });
});
