/**
 * Linear implementations of the Hopper paths for @marlin/core's registry, not registered here
 * (register.ts decides; add them to its list):
 *  - "marlin.hopper": the sm_90a wgmma kernel, for m >= HOPPER_MIN_M on compute capability 9.0;
 *  - "dequant.cublas": dequantize to fp16/bf16 once per call into one scratch per device, then
 *    cuBLAS, for m >= DEQUANT_MIN_M (where no quantized kernel beats cuBLAS).
 * Both read the layer's Marlin-layout device weights that "marlin.cuda" uploads (the shared
 * "marlin-device" resource), so a layer planned over several m ranges keeps one copy of its weights.
 */
import { FITS, type Fit, type KernelQuery, type LinearImplementation, refuse } from "@marlin/core";
import type { DeviceBuffer } from "./buffer.js";
import { cublasStatus } from "./dense.js";
import { DequantScratch, dequantMatmul } from "./dequant.js";
import { hopperMatmul, hopperShapeRefusal, hopperStatus, hopperWorkspaceBytes } from "./hopper.js";
import {
  cudaFit,
  type DeviceArg,
  type DeviceLinear,
  deviceIndex,
  marlinDeviceWeights,
  marlinFit,
  marlinWeightBytes,
  QUANT_MATMUL_OP,
  quantized,
  view,
} from "./linear-impls.js";
import type { DeviceMarlinWeights } from "./marlin.js";
import type { Stream } from "./stream.js";
import { MarlinWorkspace } from "./workspace.js";

/**
 * Row counts from which each path is picked (MARLIN_HOPPER_MIN_M / MARLIN_DEQUANT_MIN_M override
 * them, read at each query). The measured crossovers and where they come from: bench/NOTES.md.
 */
export const HOPPER_MIN_M = 33;
export const DEQUANT_MIN_M = 1024;
const envInt = (name: string, dflt: number): number => {
  const v = Number(typeof process !== "undefined" ? process.env[name] : undefined);
  return Number.isFinite(v) && v >= 1 ? v : dflt;
};
const hopperMinM = () => envInt("MARLIN_HOPPER_MIN_M", HOPPER_MIN_M);
const dequantMinM = () => envInt("MARLIN_DEQUANT_MIN_M", DEQUANT_MIN_M);

function deviceOf(q: KernelQuery): number {
  return q.device.kind === "cuda" ? (q.device.index ?? 0) : 0;
}

interface DeviceIo {
  x: DeviceBuffer;
  xByteOffset: number;
  out: DeviceBuffer;
  outByteOffset: number;
}

/** A prepared layer over the shared Marlin device weights whose apply runs `run` (nothing of its own to free). */
function preparedOn(dw: DeviceMarlinWeights, run: (io: DeviceIo, m: number, stream?: Stream) => void): DeviceLinear {
  return {
    n: dw.n,
    k: dw.k,
    weightBytes: marlinWeightBytes(dw),
    apply(x, out, m, stream) {
      const [xb, xo] = view(x);
      const [ob, oo] = view(out);
      run({ x: xb, xByteOffset: xo, out: ob, outByteOffset: oo }, m, stream);
    },
    dispose() {},
  };
}

function quantCudaFit(q: KernelQuery): Fit {
  const cuda = cudaFit(q);
  return cuda.ok ? marlinFit(q) : cuda;
}

export const marlinHopper: LinearImplementation<DeviceArg, Stream> = {
  id: "marlin.hopper",
  op: QUANT_MATMUL_OP,
  priority: 110,
  devices: { kind: "cuda", minCapability: 90 },
  description: "Hopper wgmma kernel (sm_90a: TMA, warp-specialized, weights decoded into wgmma register fragments, stream-K)",
  canImplement(q) {
    const base = quantCudaFit(q);
    if (!base.ok) return base;
    if (q.device.kind !== "cuda" || q.device.capability !== 90) return refuse("sm_90a code runs on compute capability 9.0 only");
    const shape = q.shape!;
    const why = hopperShapeRefusal({ n: shape.n, k: shape.k, bits: q.weight!.bits, groupSize: q.groupSize ?? -1, zeroPoints: q.weight!.zeroPoints });
    if (why) return refuse(why);
    if (shape.m < hopperMinM()) return refuse(`m = ${shape.m} is below ${hopperMinM()}: the mma.sync kernel is faster there`);
    if (shape.m >= dequantMinM()) return refuse(`m = ${shape.m}: dequantize + cuBLAS is faster from m = ${dequantMinM()}`);
    // Last: whether this build and this GPU can run it (the static reasons above say more).
    const status = hopperStatus(deviceOf(q));
    return status.available ? FITS : refuse(status.reason ?? "the wgmma kernel is not available");
  },
  prepare(weights, ctx): DeviceLinear {
    const dw = marlinDeviceWeights(quantized(weights), ctx);
    const dtype = ctx.activation;
    const dev = deviceIndex(ctx);
    // The device's Marlin workspace, grown here for the largest call (growing inside a CUDA graph would allocate).
    const ws = MarlinWorkspace.forDevice(dev);
    ws.ensureBytes(hopperWorkspaceBytes(ctx.maxRows, dw.n, dw.k, !!dw.perm, dev));
    return preparedOn(dw, (io, m, stream) => hopperMatmul({ ...io, m, weights: dw, dtype, workspace: ws, stream }));
  },
};

export const dequantCublas: LinearImplementation<DeviceArg, Stream> = {
  id: "dequant.cublas",
  op: QUANT_MATMUL_OP,
  priority: 120,
  devices: { kind: "cuda", minCapability: 80 },
  description: "dequantize to fp16/bf16 into one scratch per device, then cuBLAS GemmEx (large m)",
  canImplement(q) {
    const base = quantCudaFit(q);
    if (!base.ok) return base;
    const s = cublasStatus();
    if (!s.available) return refuse(s.reason ?? "cuBLAS is not available");
    if (q.shape!.m < dequantMinM()) return refuse(`m = ${q.shape!.m} is below ${dequantMinM()}: a quantized kernel is faster there`);
    return FITS;
  },
  prepare(weights, ctx): DeviceLinear {
    const dw = marlinDeviceWeights(quantized(weights), ctx);
    const dtype = ctx.activation;
    const scratch = DequantScratch.forDevice(deviceIndex(ctx));
    scratch.ensure(dw.n, dw.k);
    return preparedOn(dw, (io, m, stream) => dequantMatmul({ ...io, m, weights: dw, dtype, scratch, stream }));
  },
};
