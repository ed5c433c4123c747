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
 * Where each path is picked, from the crossovers measured on the H200 in one call (bench/NOTES.md,
 * "Session 4: the Hopper paths"): the mma.sync kernel wins every block up to m = 64 (and the 7B /
 * 13B blocks at 128); the wgmma kernel wins m = 128..1023 on layers with n and k >= 8192 (the 70B
 * block, 16384 x 65536; m = 128 itself only from 2^30 weights since session 8, see below);
 * dequantize + cuBLAS wins from m = 1024 everywhere, and from m = 256 on smaller layers. MARLIN_HOPPER_MIN_M / MARLIN_DEQUANT_MIN_M / MARLIN_DEQUANT_SMALL_MIN_M override
 * the row counts (read at each query).
 */
export const HOPPER_MIN_M = 128;
export const HOPPER_MIN_NK = 8192;
/**
 * Up to m = 128 the mma.sync kernel has its own wgmma tile on sm_90 (session 8): in one call at m = 128
 * it beat this kernel on the 70B block (0.5614 against 0.5859 ms) and lost on 16384 x 65536 (0.6258
 * against 0.4878), so below 2^30 weights this kernel starts at m = 129.
 */
export const HOPPER_RING_MAX_M = 128;
export const HOPPER_RING_MAX_WEIGHTS = 2 ** 30;
export const DEQUANT_MIN_M = 1024;
export const DEQUANT_SMALL_MIN_M = 256;
const envInt = (name: string, dflt: number): number => {
  const v = Number(typeof process !== "undefined" ? process.env[name] : undefined);
  return Number.isFinite(v) && v >= 1 ? v : dflt;
};
const hopperMinM = () => envInt("MARLIN_HOPPER_MIN_M", HOPPER_MIN_M);
const dequantMinM = () => envInt("MARLIN_DEQUANT_MIN_M", DEQUANT_MIN_M);
const dequantSmallMinM = () => envInt("MARLIN_DEQUANT_SMALL_MIN_M", DEQUANT_SMALL_MIN_M);
/** Layers where the wgmma kernel beat the others at m = 128..1023 (n and k both this large). */
const wideLayer = (n: number, k: number) => n >= HOPPER_MIN_NK && k >= HOPPER_MIN_NK;

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
    if (!wideLayer(shape.n, shape.k)) return refuse(`n = ${shape.n}, k = ${shape.k}: below ${HOPPER_MIN_NK} the mma.sync kernel or dequantize + cuBLAS is faster`);
    // (an overridden MARLIN_HOPPER_MIN_M asks for this kernel from that m: the rule then stands aside)
    if (shape.m <= HOPPER_RING_MAX_M && shape.n * shape.k < HOPPER_RING_MAX_WEIGHTS && hopperMinM() === HOPPER_MIN_M)
      return refuse(`m = ${shape.m} on ${shape.k} x ${shape.n} (below 2^30 weights): the mma.sync kernel's wgmma tile is faster up to m = ${HOPPER_RING_MAX_M}`);
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
    const { m, n, k } = q.shape!;
    const from = wideLayer(n, k) ? dequantMinM() : Math.min(dequantSmallMinM(), dequantMinM());
    if (m < from) return refuse(`m = ${m} is below ${from}: a quantized kernel is faster there`);
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
