import { describe, expect, it } from "vitest";
import {
  CPU,
  FITS,
  formatPlan,
  type LinearImplementation,
  type LinearWeights,
  linearQuery,
  NoKernelError,
  PrepareError,
  Registry,
  Rng,
  refuse,
  runSeed,
} from "../src/index.js";

// Host implementations that record what they allocate, so tests can check nothing is left behind.
function fakeImpl(id: string, priority: number, fits: (m: number) => string | undefined, live: Set<string>, failPrepare = false): LinearImplementation<Float32Array> {
  return {
    id,
    op: "dense.matmul",
    priority,
    devices: { kind: "cpu" },
    canImplement: (q) => {
      const why = fits(q.shape!.m);
      return why ? refuse(why) : FITS;
    },
    prepare(w, ctx) {
      if (failPrepare) throw new Error("out of scratch");
      const key = `${id}:${ctx.mRange.join("-")}`;
      live.add(key);
      const shared = ctx.shared.get("copy", () => {
        live.add(`${id}:shared`);
        return { value: (w as { data: Float32Array }).data.slice(), dispose: () => live.delete(`${id}:shared`) };
      });
      return {
        n: w.n,
        k: w.k,
        weightBytes: shared.byteLength,
        apply(x, out, m) {
          for (let r = 0; r < m; r++)
            for (let j = 0; j < w.n; j++) {
              let s = 0;
              for (let i = 0; i < w.k; i++) s += x[r * w.k + i] * shared[j * w.k + i];
              out[r * w.n + j] = s;
            }
        },
        dispose: () => live.delete(key),
      };
    },
  };
}

describe("prepareLinear", () => {
  const seed = runSeed();
  const rng = new Rng(seed);
  console.log(`linear seed ${seed}`);
  const n = 24;
  const k = 40;
  const data = Float32Array.from({ length: n * k }, () => rng.normal());
  const w: LinearWeights = { kind: "dense", n, k, data, name: "test.linear" };

  it("plans one implementation per m range, runs the pick for each m, and explains the others", () => {
    const live = new Set<string>();
    const reg = new Registry();
    reg.register(fakeImpl("small", 100, (m) => (m > 16 ? "m > 16: the big tile is faster (measured)" : undefined), live));
    reg.register(fakeImpl("big", 50, () => undefined, live));
    const plan = reg.planLinear(w, { device: CPU, maxRows: 300 });
    expect(plan.map((r) => [r.from, r.to, r.id])).toEqual([
      [1, 16, "small"],
      [17, 300, "big"],
    ]);
    expect(plan[1].others.join("\n")).toContain("small: m > 16");
    expect(formatPlan(plan)).toContain("m 17..300: big");
    const lin = reg.prepareLinear<Float32Array>(w, { device: CPU, maxRows: 300 });
    expect(lin.implementationFor(16)).toBe("small");
    expect(lin.implementationFor(17)).toBe("big");
    expect(live.has("small:shared")).toBe(true); // one shared copy for both
    for (const m of [1, 7, 33]) {
      const x = Float32Array.from({ length: m * k }, () => rng.normal());
      const out = new Float32Array(m * n).fill(Number.NaN); // poisoned
      lin.forward(x, out, m);
      let num = 0;
      let den = 0;
      for (let r = 0; r < m; r++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let i = 0; i < k; i++) s += x[r * k + i] * data[j * k + i];
          num += (out[r * n + j] - s) ** 2;
          den += s * s;
        }
      expect(Math.sqrt(num / den)).toBeLessThan(1e-6);
    }
    expect(() => lin.forward(new Float32Array(k), new Float32Array(n), 301)).toThrow(/outside the prepared range/);
    expect(() => lin.forward(new Float32Array(k), new Float32Array(n), -1)).toThrow(/outside the prepared range/);
    expect(() => lin.forward(new Float32Array(k), new Float32Array(n), 1.5)).toThrow(/outside the prepared range/);
    lin.forward(new Float32Array(0), new Float32Array(0), 0); // an empty batch is nothing to do
    lin.dispose();
    expect([...live]).toEqual([]);
  });

  it("names the implementation that failed to prepare and leaves nothing allocated", () => {
    const live = new Set<string>();
    const reg = new Registry();
    reg.register(fakeImpl("small", 100, (m) => (m > 16 ? "too many rows" : undefined), live));
    reg.register(fakeImpl("broken", 50, () => undefined, live, true));
    let err: unknown;
    try {
      reg.prepareLinear(w, { device: CPU, maxRows: 64 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PrepareError);
    expect((err as PrepareError).implementation).toBe("broken");
    expect((err as Error).message).toMatch(/broken.*test\.linear.*out of scratch/);
    expect([...live]).toEqual([]);
  });

  it("refusals from every candidate are a NoKernelError listing each reason", () => {
    const reg = new Registry();
    reg.register(fakeImpl("small", 100, () => "never", new Set()));
    expect(() => reg.prepareLinear(w, { device: CPU, maxRows: 4 })).toThrow(NoKernelError);
    expect(() => reg.prepareLinear(w, { device: CPU, maxRows: 4 })).toThrow(/small: never/);
  });

  it("maps weight kinds to ops and carries their facts in the query", () => {
    const q = linearQuery({ kind: "sparse24", n: 64, k: 128, bits: 4, groupSize: 128 }, 8, CPU);
    expect(q.op).toBe("sparse24.matmul");
    expect(q.extra).toMatchObject({ bits: 4, groupSize: 128, bias: false });
    const d = linearQuery({ kind: "dense", n: 8, k: 8, placed: { format: "fp16-device", data: null } }, 1, CPU);
    expect(d.op).toBe("dense.matmul");
    expect(d.extra).toMatchObject({ placed: "fp16-device" });
  });
});
