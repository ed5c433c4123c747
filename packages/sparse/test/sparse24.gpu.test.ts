// The 2:4 CUDA kernel (native/src/sparse, mma.sp m16n8k32) through the TypeScript API, mirroring
// the dense kernel's GPU tests: fp16 / bf16, group 128 and per-channel, with and without bias, m in
// {1,2,7,16,17,33,64,128,255,1000} on small odd and real shapes against fp64 of the dequantized
// sparse weights, poisoned outputs, repeats bit-identical, the workspace all-zero after each call,
// streams, the registry's pick, and validation before launch. Skips (printing why) without a GPU.
import { InvalidArgumentError, Rng, registry, runSeed, ShapeError } from "@marlin/core";
import { DeviceBuffer, gpuTarget, hasGpu, MarlinWorkspace, noGpuReason, Stream } from "@marlin/kernel";
import { describe, expect, it } from "vitest";
import { type DeviceSparse24Weights, packSparse24, type Sparse24Layer, sparse24Matmul, sparse24Weights } from "../src/index.js";
import { type Act, fromBits, randomActivations, randomSparseLayer, reference, toBits } from "./helpers.js";

const gpu = hasGpu();
if (!gpu) console.log(`sparse24 GPU tests skipped: ${noGpuReason()}`);

const MS = [1, 2, 7, 16, 17, 33, 64, 128, 255, 1000];
const SMALL: [number, number][] = [
  [128, 64],
  [384, 128],
  [1024, 448],
];
// Real layer shapes (rows sampled against the JS fp64 reference).
const REAL: [number, number][] = [
  [4096, 4096],
  [11008, 4096],
];
const VARIANTS: { dtype: Act; group: number; bias: boolean }[] = [
  { dtype: "float16", group: 128, bias: false },
  { dtype: "float16", group: -1, bias: true },
  { dtype: "bfloat16", group: 128, bias: true },
  { dtype: "bfloat16", group: -1, bias: false },
];

function upload(p: Sparse24Layer, dtype: Act, bias?: Uint16Array): DeviceSparse24Weights {
  const scales = dtype === "bfloat16" ? Uint16Array.from(p.scales, (h) => toBits("bfloat16", fromBits("float16", h))) : p.scales;
  return {
    k: p.k,
    n: p.n,
    groupSize: p.groupSize,
    values: DeviceBuffer.from(p.values),
    meta: DeviceBuffer.from(p.meta),
    scales: DeviceBuffer.from(scales),
    bias: bias ? DeviceBuffer.from(bias) : undefined,
  };
}
function free(w: DeviceSparse24Weights): void {
  for (const b of [w.values, w.meta, w.scales, w.bias]) b?.free();
}

function run(w: DeviceSparse24Weights, x: Uint16Array, m: number, dtype: Act, ws: MarlinWorkspace, stream?: Stream): Uint16Array {
  const dx = DeviceBuffer.from(x);
  const out = DeviceBuffer.alloc(m * w.n * 2);
  try {
    out.fillBytes(0xff); // NaN poison in fp16 and bf16
    sparse24Matmul({ x: dx, out, m, weights: w, dtype, workspace: ws, stream });
    stream?.synchronize();
    return out.download(new Uint16Array(m * w.n));
  } finally {
    dx.free();
    out.free();
  }
}

function check(layer: ReturnType<typeof randomSparseLayer>, x: Uint16Array, out: Uint16Array, m: number, dtype: Act, bias: Uint16Array | undefined, what: string) {
  const { k, n } = layer;
  let nonFinite = 0;
  for (const h of out) if (!Number.isFinite(fromBits(dtype, h))) nonFinite++;
  expect(nonFinite, `${what}: unwritten or non-finite outputs`).toBe(0);
  const sample = m * k * n <= 64 * 1024 * 448 ? [[0, m]] : [[0, Math.min(m, 4)], [Math.max(0, m - 4), m]];
  let num = 0;
  let den = 0;
  for (const [r0, r1] of sample) {
    const ref = reference(layer, x.subarray(r0 * k, r1 * k), r1 - r0, dtype, bias);
    for (let i = 0; i < ref.length; i++) {
      num += (fromBits(dtype, out[r0 * n + i]) - ref[i]) ** 2;
      den += ref[i] ** 2;
    }
  }
  expect(Math.sqrt(num / den), what).toBeLessThan(dtype === "float16" ? 2e-3 : 1e-2);
}

const yieldToWorker = () => new Promise<void>((r) => setImmediate(r));

function workspaceZero(ws: MarlinWorkspace): boolean {
  const buf = ws.ensureBytes(0);
  const host = buf.download(new Uint8Array(buf.byteLength));
  return host.every((b) => b === 0);
}

describe.skipIf(!gpu)("sparse24 GPU kernel", () => {
  const seed = runSeed();
  console.log(`sparse24 GPU tests: MARLIN_SEED=${seed}`);
  const rng = new Rng(seed);

  for (const v of VARIANTS)
    it(`${v.dtype} group ${v.group}${v.bias ? " bias" : ""}: small odd and real shapes, every m, repeats bit-identical`, async () => {
      const ws = new MarlinWorkspace(0);
      for (const [k, n] of [...SMALL, ...REAL]) {
        const layer = randomSparseLayer(rng, k, n, v.group);
        const bias = v.bias ? randomActivations(rng, 1, n, v.dtype) : undefined;
        const w = upload(packSparse24(layer), v.dtype, bias);
        try {
          for (const m of REAL.some(([a, b]) => a === k && b === n) ? [1, 16, 64, 255] : MS) {
            const x = randomActivations(rng, m, k, v.dtype);
            const out = run(w, x, m, v.dtype, ws);
            const what = `${v.dtype} g${v.group} k=${k} n=${n} m=${m}`;
            check(layer, x, out, m, v.dtype, bias, what);
            expect(Array.from(run(w, x, m, v.dtype, ws)), `${what}: repeat`).toEqual(Array.from(out));
            expect(workspaceZero(ws), `${what}: workspace restored`).toBe(true);
            await yieldToWorker(); // long synchronous runs time out vitest's worker RPC
          }
        } finally {
          free(w);
        }
      }
      ws.dispose();
    });

  it("runs on a stream, and the registry picks sparse24.cuda (dense fallback off the tile)", () => {
    const layer = randomSparseLayer(rng, 512, 192, 128);
    const w = upload(packSparse24(layer), "float16");
    const stream = new Stream(0);
    const ws = new MarlinWorkspace(0);
    try {
      const x = randomActivations(rng, 33, 512);
      check(layer, x, run(w, x, 33, "float16", ws, stream), 33, "float16", undefined, "stream");
    } finally {
      free(w);
      ws.dispose();
    }
    const device = gpuTarget(0);
    const lw = sparse24Weights(packSparse24(layer));
    const lin = registry.prepareLinear(lw, { device, maxRows: 256 });
    expect(lin.implementationFor(1)).toBe("sparse24.cuda");
    lin.dispose();
    const odd = sparse24Weights(packSparse24(randomSparseLayer(rng, 256, 80, 128)));
    const lo = registry.prepareLinear(odd, { device, maxRows: 4 });
    expect(lo.implementationFor(1)).toBe("sparse24.dequant.cuda");
    lo.dispose();
  });

  it("refuses bad calls before launch (typed errors, output untouched)", () => {
    const p = packSparse24(randomSparseLayer(rng, 256, 64, 128));
    const w = upload(p, "float16");
    const dx = DeviceBuffer.from(randomActivations(rng, 4, 256));
    const out = DeviceBuffer.alloc(4 * 64 * 2);
    out.fillBytes(0xff);
    try {
      expect(() => sparse24Matmul({ x: dx, out, m: 5, weights: w })).toThrow(ShapeError);
      expect(() => sparse24Matmul({ x: dx, out, m: 4, weights: w, xByteOffset: 8 })).toThrow(InvalidArgumentError);
      expect(() => sparse24Matmul({ x: dx, out, m: 4, weights: { ...w, n: 80 } })).toThrow(ShapeError);
      expect(() => sparse24Matmul({ x: dx, out, m: 4, weights: { ...w, k: 192 } })).toThrow(/k % 128/);
      expect(() => sparse24Matmul({ x: dx, out, m: 4, weights: { ...w, groupSize: 64 } })).toThrow(/group size 64/);
      expect(() => sparse24Matmul({ x: dx, out, m: 4, weights: w, dtype: "float32" as any })).toThrow(/float32/);
      expect(out.download(new Uint16Array(4 * 64)).every((h) => h === 0xffff)).toBe(true);
    } finally {
      free(w);
      dx.free();
      out.free();
    }
  });
});
