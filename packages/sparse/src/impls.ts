/**
 * The registry's implementations of "sparse24.matmul":
 *  - "sparse24.cuda": our mma.sp m16n8k32 kernel (sm_80+, fp16/bf16, n % 64, k % 128, group -1/128);
 *  - "sparse24.cpu": the addon's multi-threaded CPU path (fp16 inputs, fp32 accumulation);
 *  - "sparse24.dequant" / "sparse24.dequant.cuda" (lowest): the layer made dense once and served by
 *    the best "dense.matmul" implementation, for shapes the kernels refuse.
 * Host implementations take fp32 rows; CUDA ones device buffers (or [buffer, byteOffset]) on a stream.
 * Weights come as host values or `placed` as "sparse24-device" (DeviceSparse24Weights, caller-owned).
 */
import {
  FITS,
  type Fit,
  type KernelQuery,
  type LinearImplementation,
  type PrepareContext,
  type PreparedLinear,
  prepareAsDense,
  refuse,
  registry,
} from "@marlin/core";
import {
  biasBits,
  builtWithCuda,
  type DeviceArg,
  deviceIndex,
  f16BitsAs,
  fp16HostApply,
  MarlinWorkspace,
  matmulFit,
  placedFit,
  type Stream,
  uploadAll,
  view,
} from "@marlin/kernel";
import { sparse24WeightBytes } from "./layout.js";
import { type DeviceSparse24Weights, sparse24CudaRefusal, sparse24Matmul, sparse24WorkspaceBytes } from "./matmul.js";
import { sparse24ToDense } from "./reference.js";
import { asSparse24, hostLayer, SPARSE24_MATMUL_OP, type Sparse24LinearWeights } from "./weights.js";

export type { DeviceArg } from "@marlin/kernel";

export const SPARSE24_DEVICE_FORMAT = "sparse24-device";

/** The layer facts every implementation needs from a query: a shape, a 16-bit activation, m >= 1. */
function baseFit(q: KernelQuery): Fit {
  const f = matmulFit(q);
  if (!f.ok) return f;
  if (!Number.isSafeInteger(q.shape!.m) || q.shape!.m < 1) return refuse(`m = ${q.shape!.m} must be >= 1`);
  return FITS;
}

function groupOf(q: KernelQuery): number {
  const g = q.extra?.groupSize;
  return typeof g === "number" ? g : -1;
}

/** The layer on its device, once per layer and activation dtype (shared between m ranges). */
export function sparse24DeviceWeights(w: Sparse24LinearWeights, ctx: PrepareContext): DeviceSparse24Weights {
  if (w.placed?.format === SPARSE24_DEVICE_FORMAT) return w.placed.data as DeviceSparse24Weights;
  const dev = deviceIndex(ctx);
  return ctx.shared.get(`${SPARSE24_DEVICE_FORMAT}:${dev}:${ctx.activation}`, () => {
    const p = hostLayer(w);
    const b = uploadAll(
      { values: p.values, meta: p.meta, scales: f16BitsAs(p.scales, ctx.activation), bias: w.bias ? biasBits(w.bias, ctx.activation) : undefined },
      dev,
    );
    const value: DeviceSparse24Weights = { k: p.k, n: p.n, groupSize: p.groupSize, values: b.values, meta: b.meta, scales: b.scales, bias: b.bias };
    const dispose = () => {
      for (const x of Object.values(b)) x?.free();
    };
    return { value, dispose };
  });
}

export const sparse24Cuda: LinearImplementation<DeviceArg, Stream> = {
  id: "sparse24.cuda",
  op: SPARSE24_MATMUL_OP,
  priority: 100,
  devices: { kind: "cuda", minCapability: 80 },
  description: "2:4 sparse INT4 x FP16/BF16 kernel on mma.sp m16n8k32 (ordered split-k reduction, workspace restored)",
  canImplement(q) {
    for (const f of [baseFit(q), placedFit(q, [SPARSE24_DEVICE_FORMAT])]) if (!f.ok) return f;
    const bits = q.extra?.bits;
    const why = sparse24CudaRefusal({ n: q.shape!.n, k: q.shape!.k, groupSize: groupOf(q), bits: typeof bits === "number" ? bits : 4 });
    if (why) return refuse(why);
    return builtWithCuda() ? FITS : refuse("the addon was built without CUDA");
  },
  prepare(weights, ctx): PreparedLinear<DeviceArg, Stream> {
    const w = asSparse24(weights);
    const dw = sparse24DeviceWeights(w, ctx);
    const dev = deviceIndex(ctx);
    const dtype = ctx.activation;
    // Size the stream's workspace now for the largest call (growing inside a graph capture would allocate).
    MarlinWorkspace.forStream(dev, ctx.stream as Stream | undefined).ensureBytes(sparse24WorkspaceBytes(ctx.maxRows, dw.n, dw.k, dev));
    return {
      n: dw.n,
      k: dw.k,
      weightBytes: sparse24WeightBytes(dw),
      apply(x, out, m, stream) {
        const [xb, xo] = view(x);
        const [ob, oo] = view(out);
        sparse24Matmul({ x: xb, xByteOffset: xo, out: ob, outByteOffset: oo, m, weights: dw, dtype, stream });
      },
      dispose() {},
    };
  },
};

export const sparse24Cpu: LinearImplementation<Float32Array> = {
  id: "sparse24.cpu",
  op: SPARSE24_MATMUL_OP,
  priority: 10,
  devices: { kind: "cpu" },
  description: "multi-threaded C++ path over the 2:4 layout (fp16 inputs, fp32 accumulation, batch invariant)",
  canImplement(q) {
    for (const f of [baseFit(q), placedFit(q, [])]) if (!f.ok) return f;
    return FITS;
  },
  prepare(weights): PreparedLinear<Float32Array> {
    const w = asSparse24(weights);
    const p = hostLayer(w);
    return {
      n: p.n,
      k: p.k,
      weightBytes: sparse24WeightBytes(p),
      apply: fp16HostApply(p.n, p.k, w.bias, (x, y, m) => sparse24Matmul({ x, out: y, m, weights: p })),
      dispose() {},
    };
  },
};

/** Fallback: the layer dense once, then the best dense.matmul implementation for the device. */
export const sparse24Dequant: LinearImplementation = {
  id: "sparse24.dequant",
  op: SPARSE24_MATMUL_OP,
  priority: 1,
  devices: { kind: "cpu" },
  description: "fallback: the 2:4 layer made dense once, then served by the best dense.matmul implementation",
  canImplement(q) {
    for (const f of [baseFit(q), placedFit(q, [])]) if (!f.ok) return f;
    return FITS;
  },
  prepare(weights, ctx) {
    const w = asSparse24(weights);
    return prepareAsDense(registry, { kind: "dense", n: w.n, k: w.k, data: sparse24ToDense(hostLayer(w)), bias: w.bias, name: w.name }, ctx);
  },
};

export const sparse24DequantCuda: LinearImplementation = {
  ...sparse24Dequant,
  id: "sparse24.dequant.cuda",
  devices: { kind: "cuda", minCapability: 70 },
  canImplement(q) {
    if (!builtWithCuda()) return refuse("the addon was built without CUDA");
    return sparse24Dequant.canImplement(q);
  },
};
