// The wgmma kernel (hopperMatmul) and the dequantize-then-cuBLAS path (dequantMatmul) through the
// TypeScript API on a GPU: every variant against fp64 on small odd shapes at several m, outputs
// poisoned, repeats bit-identical, both paths reading the weights MarlinLayer uploaded. The full
// matrix on real layer shapes runs in the native harness (`harness hopper-test`, tools/gpu/kernel-hopper.sh).
import { NoDeviceError, Rng, runSeed, ShapeError } from "@marlin/core";
import { describe, expect, it } from "vitest";
import {
  cublasStatus,
  DeviceBuffer,
  type DeviceMarlinWeights,
  dequantMatmul,
  hasGpu,
  hopperMatmul,
  hopperStatus,
  MarlinLayer,
  noGpuReason,
} from "../src/index.js";
import { fromBits, randomActivations, randomLayer, reference, VARIANTS } from "./helpers.js";

const gpu = hasGpu();
const hopper = gpu ? hopperStatus(0) : undefined;
const blas = gpu ? cublasStatus() : undefined;
if (!gpu) console.log(`Hopper GPU tests skipped: ${noGpuReason()}`);
else if (!hopper?.available) console.log(`wgmma tests skipped: ${hopper?.reason}`);
if (gpu && !blas?.available) console.log(`dequantize-path tests skipped: ${blas?.reason}`);

const MS = [1, 7, 33, 64, 65, 128, 300];

type Run = (x: DeviceBuffer, out: DeviceBuffer, m: number, w: DeviceMarlinWeights, dtype: "float16" | "bfloat16") => void;

function check(run: Run, tagPath: string) {
  const seed = runSeed();
  console.log(`${tagPath} GPU tests: MARLIN_SEED=${seed}`);
  const rng = new Rng(seed);
  for (const v of VARIANTS) {
    it(`${v.name}: small odd shapes, several m`, () => {
      for (const [k, n] of [
        [256, 256],
        [640, 384],
      ] as [number, number][]) {
        const layer = randomLayer(rng, k, n, v);
        const bias = v.bias ? randomActivations(rng, 1, n, v.dtype) : undefined;
        const lin = MarlinLayer.fromQuantized(layer, { device: "cuda", dtype: v.dtype, bias });
        const w = lin.weights as DeviceMarlinWeights;
        for (const m of MS) {
          const x = randomActivations(rng, m, k, v.dtype);
          const dx = DeviceBuffer.from(x);
          const out = DeviceBuffer.alloc(m * n * 2);
          const runOnce = () => {
            out.fillBytes(0xff); // NaN poison
            run(dx, out, m, w, v.dtype);
            return out.download(new Uint16Array(m * n));
          };
          try {
            const y = runOnce();
            const again = runOnce();
            const rows = Math.min(m, 48); // fp64 reference in JS: the first rows
            const ref = reference(layer, x.subarray(0, rows * k), rows, v.dtype, bias);
            let num = 0;
            let den = 0;
            let nonFinite = 0;
            for (const h of y) if (!Number.isFinite(fromBits(v.dtype, h))) nonFinite++;
            for (let i = 0; i < ref.length; i++) {
              num += (fromBits(v.dtype, y[i]) - ref[i]) ** 2;
              den += ref[i] ** 2;
            }
            const rel = Math.sqrt(num / den);
            const tag = `${tagPath} ${v.name} k=${k} n=${n} m=${m} rel=${rel.toExponential(2)}`;
            console.log(tag);
            expect(nonFinite, tag).toBe(0);
            expect(rel, tag).toBeLessThan(v.dtype === "float16" ? 2e-3 : 1e-2);
            expect(Buffer.from(again.buffer).equals(Buffer.from(y.buffer)), `${tag}: repeat bit-identical`).toBe(true);
          } finally {
            dx.free();
            out.free();
          }
        }
        lin.dispose();
      }
    });
  }
}

describe.skipIf(!hopper?.available)("wgmma kernel (hopperMatmul)", () => {
  check((x, out, m, weights, dtype) => hopperMatmul({ x, out, m, weights, dtype }), "wgmma");

  it("refuses n % 128 != 0 with a ShapeError before launching", () => {
    const rng = new Rng(runSeed());
    const lin = MarlinLayer.fromQuantized(randomLayer(rng, 256, 192, VARIANTS[0]), { device: "cuda" });
    const x = DeviceBuffer.alloc(4 * 256 * 2);
    const out = DeviceBuffer.alloc(4 * 192 * 2);
    try {
      expect(() => hopperMatmul({ x, out, m: 4, weights: lin.weights as DeviceMarlinWeights })).toThrow(ShapeError);
    } finally {
      x.free();
      out.free();
      lin.dispose();
    }
  });
});

describe.skipIf(!gpu || !blas?.available)("dequantize + cuBLAS (dequantMatmul)", () => {
  check((x, out, m, weights, dtype) => dequantMatmul({ x, out, m, weights, dtype }), "dequant");
});

describe.skipIf(!gpu || hopper?.available !== false)("wgmma kernel on a GPU that cannot run it", () => {
  it("gives a NoDeviceError with the reason", () => {
    const rng = new Rng(runSeed());
    const lin = MarlinLayer.fromQuantized(randomLayer(rng, 256, 256, VARIANTS[0]), { device: "cuda" });
    const x = DeviceBuffer.alloc(4 * 256 * 2);
    const out = DeviceBuffer.alloc(4 * 256 * 2);
    try {
      expect(() => hopperMatmul({ x, out, m: 4, weights: lin.weights as DeviceMarlinWeights })).toThrow(NoDeviceError);
    } finally {
      x.free();
      out.free();
      lin.dispose();
    }
  });
});
