import { describe, expect, it } from "vitest";
import {
  CPU,
  type CudaDeviceTarget,
  DuplicateImplementationError,
  FITS,
  formatExplain,
  registry as globalRegistry,
  type Implementation,
  InvalidArgumentError,
  type KernelQuery,
  NoKernelError,
  Registry,
  refuse,
} from "../src/index.js";

const H100: CudaDeviceTarget = { kind: "cuda", capability: 90, smCount: 132, name: "H100" };
const A100: CudaDeviceTarget = { kind: "cuda", capability: 80, smCount: 108 };
const T4: CudaDeviceTarget = { kind: "cuda", capability: 75, smCount: 40 };

// Shape rules like a Marlin kernel's: n % 64, k % 128, k % group.
const marlinLike: Implementation = {
  id: "marlin.cuda",
  op: "w4a16.matmul",
  priority: 100,
  devices: { kind: "cuda", minCapability: 80 },
  canImplement(q) {
    const s = q.shape!;
    if (s.n % 64) return refuse(`n = ${s.n} is not a multiple of 64`);
    if (s.k % 128) return refuse(`k = ${s.k} is not a multiple of 128`);
    if (q.groupSize !== -1 && s.k % q.groupSize!) return refuse(`k = ${s.k} is not a multiple of group ${q.groupSize}`);
    return FITS;
  },
};
const hopperOnly: Implementation = {
  id: "hopper.cuda",
  op: "w4a16.matmul",
  priority: 200,
  devices: { kind: "cuda", minCapability: 90, maxCapability: 90 },
  canImplement: (q) => (q.weight!.bits === 4 ? FITS : refuse("only 4-bit weights")),
};
const cpuPath: Implementation = {
  id: "marlin.cpu",
  op: "w4a16.matmul",
  priority: 0,
  devices: { kind: "cpu" },
  canImplement: () => FITS,
};
const otherOp: Implementation = {
  id: "dense.cpu",
  op: "dense.matmul",
  priority: 0,
  devices: { kind: "cpu" },
  canImplement: () => FITS,
};

function query(device: KernelQuery["device"], m: number, n: number, k: number, bits: 4 | 8 = 4): KernelQuery {
  return {
    op: "w4a16.matmul",
    device,
    shape: { m, n, k },
    weight: { bits, zeroPoints: false },
    groupSize: 128,
    actOrder: false,
    activation: "float16",
  };
}

function fresh(): Registry {
  const r = new Registry();
  for (const impl of [cpuPath, marlinLike, hopperOnly, otherOp]) r.register(impl);
  return r;
}

const none = { disabled: [] as string[] };

describe("Registry", () => {
  it("orders by priority and picks the highest that fits", () => {
    const r = fresh();
    expect(r.list("w4a16.matmul").map((i) => i.id)).toEqual(["hopper.cuda", "marlin.cuda", "marlin.cpu"]);
    expect(r.select(query(H100, 16, 4096, 4096), none).id).toBe("hopper.cuda");
    const rows = r.explain(query(H100, 16, 4096, 4096), none);
    expect(rows.filter((x) => x.selected).map((x) => x.id)).toEqual(["hopper.cuda"]);
    expect(rows.find((x) => x.id === "marlin.cuda")!.reason).toBe("fits, lower priority");
  });

  it("gates by compute capability, with reasons", () => {
    const r = fresh();
    expect(r.select(query(A100, 1, 4096, 4096), none).id).toBe("marlin.cuda");
    const rows = r.explain(query(A100, 1, 4096, 4096), none);
    expect(rows.find((x) => x.id === "hopper.cuda")!.reason).toMatch(/needs compute capability 9.0 or newer, device has 8.0/);
    const t4 = r.explain(query(T4, 1, 4096, 4096), none);
    console.log(`refusals on sm_75:\n${formatExplain(t4)}`);
    expect(t4.find((x) => x.id === "marlin.cuda")!.reason).toMatch(/needs compute capability 8.0 or newer, device has 7.5/);
    expect(t4.find((x) => x.id === "marlin.cpu")!.reason).toBe("runs on the CPU only");
    expect(() => r.select(query(T4, 1, 4096, 4096), none)).toThrow(NoKernelError);
  });

  it("respects a maximum capability", () => {
    const r = fresh();
    const future: CudaDeviceTarget = { kind: "cuda", capability: 100, smCount: 148 };
    const rows = r.explain(query(future, 1, 4096, 4096), none);
    expect(rows.find((x) => x.id === "hopper.cuda")!.reason).toMatch(/up to 9.0, device has 10.0/);
    expect(r.select(query(future, 1, 4096, 4096), none).id).toBe("marlin.cuda");
  });

  it("records per-shape refusals and falls through to the next candidate", () => {
    const r = fresh();
    r.unregister("hopper.cuda");
    const q = query(H100, 7, 4000, 4096);
    const err = (() => {
      try {
        r.select(q, none);
      } catch (e) {
        return e as NoKernelError;
      }
    })();
    expect(err).toBeInstanceOf(NoKernelError);
    expect(err!.code).toBe("ERR_MARLIN_NO_KERNEL");
    console.log(`NoKernelError message:\n${err!.message}`);
    expect(err!.candidates).toEqual([
      { id: "marlin.cuda", reason: "n = 4000 is not a multiple of 64" },
      { id: "marlin.cpu", reason: "runs on the CPU only" },
    ]);
    expect(err!.message).toContain("m=7 n=4000 k=4096");
    const k = r.explain(query(H100, 7, 4096, 4000), none);
    expect(k[0].reason).toBe("k = 4000 is not a multiple of 128");
    expect(r.select(query(CPU, 7, 4000, 4000), none).id).toBe("marlin.cpu");
  });

  it("lets canImplement refuse by weight type", () => {
    const r = fresh();
    const rows = r.explain(query(H100, 1, 4096, 4096, 8), none);
    expect(rows[0]).toMatchObject({ id: "hopper.cuda", ok: false, reason: "only 4-bit weights" });
    expect(rows[1]).toMatchObject({ id: "marlin.cuda", selected: true });
  });

  it("disables implementations by id through MARLIN_DISABLE", () => {
    const r = fresh();
    const before = process.env.MARLIN_DISABLE;
    try {
      process.env.MARLIN_DISABLE = "hopper.cuda, marlin.cuda";
      const rows = r.explain(query(H100, 1, 4096, 4096));
      console.log(`with MARLIN_DISABLE=${process.env.MARLIN_DISABLE}:\n${formatExplain(rows)}`);
      expect(rows.slice(0, 2).map((x) => x.reason)).toEqual(["disabled by MARLIN_DISABLE", "disabled by MARLIN_DISABLE"]);
      expect(() => r.select(query(H100, 1, 4096, 4096))).toThrow(/disabled by MARLIN_DISABLE/);
      expect(r.select(query(CPU, 1, 4096, 4096)).id).toBe("marlin.cpu");
    } finally {
      if (before === undefined) delete process.env.MARLIN_DISABLE;
      else process.env.MARLIN_DISABLE = before;
    }
    expect(r.select(query(H100, 1, 4096, 4096)).id).toBe("hopper.cuda");
    expect(r.explain(query(H100, 1, 4096, 4096), { disabled: ["hopper.cuda"] })[0].reason).toMatch(/disabled/);
  });

  it("rejects duplicate ids and malformed implementations", () => {
    const r = fresh();
    expect(() => r.register({ ...cpuPath })).toThrow(DuplicateImplementationError);
    expect(() => r.register({ ...cpuPath, id: "" })).toThrow(InvalidArgumentError);
    expect(() => r.register({ ...cpuPath, id: "x", priority: Number.NaN })).toThrow(InvalidArgumentError);
    expect(() => r.register({ ...cpuPath, id: "y", canImplement: undefined as any })).toThrow(InvalidArgumentError);
  });

  it("turns a throwing canImplement into a refusal", () => {
    const r = new Registry();
    r.register({ ...cpuPath, id: "boom", canImplement: () => { throw new Error("bad state"); } });
    expect(r.explain(query(CPU, 1, 64, 128), none)[0].reason).toBe("canImplement threw: bad state");
  });

  it("reports an op with no implementations", () => {
    const r = fresh();
    expect(() => r.select({ op: "nope", device: CPU }, none)).toThrow(/no implementation is registered/);
    expect(formatExplain([])).toMatch(/no implementation/);
  });

  it("keeps one global registry per process", () => {
    const key = Symbol.for("@marlin/core/registry");
    expect((globalThis as any)[key]).toBe(globalRegistry);
  });
});
