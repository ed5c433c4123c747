/**
 * This package's linear-layer implementations for @marlin/core's registry, each able to prepare a
 * layer once and run it (see core's linear.ts for the interface):
 *  - "quant.matmul": "marlin.cuda" (our Marlin kernel, sm_80+), "marlin.cpu" (its multi-threaded CPU
 *    path over the same packed layout), and "dequant.dense" (lowest priority: the layer dequantized
 *    once and served by the best "dense.matmul" implementation, for shapes no quantized kernel takes);
 *  - "dense.matmul": "cublas.fp16" (cuBLAS, loaded at run time) and "dense.cpu" (fp32 panel GEMM).
 * Host implementations take and return fp32 Float32Array rows; CUDA ones device buffers (or
 * [buffer, byteOffset] views) of the activation dtype, on a stream.
 *
 * Weights may come as host values or `placed` in a layout: "marlin" (a @marlin/format MarlinLayer,
 * e.g. from a Marlin checkpoint), "marlin-device" (DeviceMarlinWeights already on the GPU), and
 * "fp16-device" (a dense W [n, k] fp16 DeviceBuffer). The caller keeps owning placed device data.
 */
import {
  type ActivationDType,
  type DenseLinearWeights,
  FITS,
  type Fit,
  InvalidArgumentError,
  type KernelQuery,
  type LinearImplementation,
  type LinearWeights,
  type PrepareContext,
  type PreparedLinear,
  placedFormat,
  prepareAsDense,
  type QuantizedLinearWeights,
  refuse,
  registry,
  ShapeError,
} from "@marlin/core";
import { dequantize, f16ToF32, f32ToBf16, f32ToF16, type MarlinLayer, packMarlin, type QuantizedLayer } from "@marlin/format";
import { DeviceBuffer } from "./buffer.js";
import { cublasStatus, denseMatmul } from "./dense.js";
import { type DeviceMarlinWeights, type HostMarlinWeights, marlinMatmul, marlinShapeRefusal } from "./marlin.js";
import { native } from "./native.js";
import type { Stream } from "./stream.js";
import { MarlinWorkspace } from "./workspace.js";

export const QUANT_MATMUL_OP = "quant.matmul";
export const DENSE_MATMUL_OP = "dense.matmul";

/** A device operand of a CUDA linear: a whole buffer, or rows starting at a byte offset. */
export type DeviceArg = DeviceBuffer | readonly [DeviceBuffer, number];
/** What CUDA implementations prepare: apply(x, out, m, stream). */
export type DeviceLinear = PreparedLinear<DeviceArg, Stream>;
/** What host implementations prepare: fp32 rows in and out. */
export type HostLinear = PreparedLinear<Float32Array, unknown>;

export const view = (a: DeviceArg): [DeviceBuffer, number] => (a instanceof DeviceBuffer ? [a, 0] : [a[0], a[1]]);

export function builtWithCuda(): boolean {
  try {
    return native().builtWithCuda === true;
  } catch {
    return false;
  }
}

/** What every matmul needs from a query: a shape and a 16-bit activation dtype. */
export function matmulFit(q: KernelQuery): Fit {
  if (!q.shape) return refuse("the query has no shape");
  if (q.activation && q.activation !== "float16" && q.activation !== "bfloat16")
    return refuse(`activation ${q.activation} is not supported (float16, bfloat16)`);
  return FITS;
}

/** CUDA implementations: the addon must have CUDA, and bf16 tensor-core math needs sm_80. */
export function cudaFit(q: KernelQuery): Fit {
  if (!builtWithCuda()) return refuse("the addon was built without CUDA");
  if (q.activation === "bfloat16" && q.device.kind === "cuda" && q.device.capability < 80) return refuse("bf16 needs sm_80");
  return FITS;
}

export function marlinFit(q: KernelQuery): Fit {
  const base = matmulFit(q);
  if (!base.ok) return base;
  if (!q.weight) return refuse("the query has no weight type");
  const shape = q.shape!;
  if (!Number.isSafeInteger(shape.m) || shape.m < 1) return refuse(`m = ${shape.m} must be >= 1`);
  const why = marlinShapeRefusal({ n: shape.n, k: shape.k, bits: q.weight.bits, groupSize: q.groupSize ?? -1, zeroPoints: q.weight.zeroPoints });
  if (why) return refuse(why);
  if (q.actOrder && (q.groupSize ?? -1) === -1) return refuse("act-order needs a group size");
  return FITS;
}

export function deviceIndex(ctx: PrepareContext): number {
  return ctx.device.kind === "cuda" ? (ctx.device.index ?? 0) : 0;
}

/** fp32 bias as bits of the activation dtype. */
export function biasBits(bias: Float32Array, dtype: ActivationDType): Uint16Array {
  return dtype === "bfloat16" ? f32ToBf16(bias) : f32ToF16(bias);
}

/** fp16 bits (e.g. scales) as bits of the activation dtype. */
export function f16BitsAs(h: Uint16Array, dtype: ActivationDType): Uint16Array {
  return dtype === "bfloat16" ? f32ToBf16(f16ToF32(h)) : h;
}

/**
 * A host implementation's apply over an fp16 kernel: fp32 rows in, fp16 through `run` (x [m, k],
 * y [m, n]), fp32 out with the bias added in fp32.
 */
export function fp16HostApply(n: number, k: number, bias: Float32Array | undefined, run: (x: Uint16Array, y: Uint16Array, m: number) => void): HostLinear["apply"] {
  return (x, out, m) => {
    if (x.length < m * k || out.length < m * n) throw new ShapeError(`x needs ${m}x${k} and out ${m}x${n} elements`);
    const y = new Uint16Array(m * n);
    run(f32ToF16(x.subarray(0, m * k)), y, m);
    out.set(f16ToF32(y));
    if (bias) for (let r = 0; r < m; r++) for (let j = 0; j < n; j++) out[r * n + j] += bias[j];
  };
}

export function quantized(w: LinearWeights): QuantizedLinearWeights {
  if (w.kind !== "quantized") throw new InvalidArgumentError(`expected quantized weights, got kind "${w.kind}"`);
  return w as QuantizedLinearWeights;
}

/** Refuses weights placed in a layout the implementation does not read. */
export function placedFit(q: KernelQuery, formats: readonly string[]): Fit {
  const f = placedFormat(q);
  return f === undefined || formats.includes(f) ? FITS : refuse(`reads host values${formats.length ? ` or the ${formats.join(" / ")} layout` : ""}, not "${f}"`);
}

/** The layer in the Marlin layout on the host: as placed, or packed from its values. */
function marlinHost(w: QuantizedLinearWeights): MarlinLayer {
  if (w.placed?.format === "marlin") return w.placed.data as MarlinLayer;
  if (!w.layer) throw new InvalidArgumentError(`${w.name ?? "layer"}: no values and no Marlin-layout weights`);
  return packMarlin(w.layer as QuantizedLayer);
}

function dense(w: LinearWeights): DenseLinearWeights {
  if (w.kind !== "dense") throw new InvalidArgumentError(`expected dense weights, got kind "${w.kind}"`);
  return w as DenseLinearWeights;
}

/** Uploads host arrays, freeing what was uploaded when one fails. */
export function uploadAll<T extends Record<string, ArrayBufferView | undefined>>(arrays: T, device: number): { [K in keyof T]: T[K] extends undefined ? undefined : DeviceBuffer } {
  const done: DeviceBuffer[] = [];
  const out: Record<string, DeviceBuffer | undefined> = {};
  try {
    for (const [key, a] of Object.entries(arrays)) {
      if (!a) continue;
      const b = DeviceBuffer.from(a, device);
      done.push(b);
      out[key] = b;
    }
  } catch (e) {
    for (const b of done) b.free();
    throw e;
  }
  return out as { [K in keyof T]: T[K] extends undefined ? undefined : DeviceBuffer };
}

export function marlinWeightBytes(w: { k: number; n: number; bits: number; groupSize: number; zeros?: unknown }): number {
  const groups = w.groupSize === -1 || w.groupSize >= w.k ? 1 : w.k / w.groupSize;
  return (w.k * w.n * w.bits) / 8 + groups * w.n * 2 + (w.zeros ? (groups * w.n * w.bits) / 8 : 0);
}

/** The layer packed in the Marlin layout and placed on its device, once per layer (shared by name). */
export function marlinDeviceWeights(w: QuantizedLinearWeights, ctx: PrepareContext): DeviceMarlinWeights {
  if (w.placed?.format === "marlin-device") return w.placed.data as DeviceMarlinWeights;
  const dev = deviceIndex(ctx);
  return ctx.shared.get(`marlin-device:${dev}:${ctx.activation}`, () => {
    const p = marlinHost(w);
    const scales = f16BitsAs(p.scales, ctx.activation);
    const b = uploadAll(
      { qweight: p.qweight, scales, zeros: p.zeros, perm: p.perm, bias: w.bias ? biasBits(w.bias, ctx.activation) : undefined },
      dev,
    );
    const value: DeviceMarlinWeights = {
      k: p.k,
      n: p.n,
      bits: p.bits,
      groupSize: p.groupSize === p.k ? -1 : p.groupSize,
      qweight: b.qweight,
      scales: b.scales,
      zeros: b.zeros,
      perm: b.perm,
      bias: b.bias,
    };
    const dispose = () => {
      for (const x of Object.values(b)) (x as DeviceBuffer | undefined)?.free();
    };
    return { value, dispose };
  });
}

export const marlinCuda: LinearImplementation<DeviceArg, Stream> = {
  id: "marlin.cuda",
  op: QUANT_MATMUL_OP,
  priority: 100,
  devices: { kind: "cuda", minCapability: 80 },
  description: "Marlin FP16/BF16 x INT4/INT8 tensor-core kernel (mma.sync, cp.async pipeline, striped split-k)",
  canImplement(q) {
    for (const f of [cudaFit(q), placedFit(q, ["marlin", "marlin-device"])]) if (!f.ok) return f;
    return marlinFit(q);
  },
  prepare(weights, ctx): DeviceLinear {
    const w = quantized(weights);
    const dw = marlinDeviceWeights(w, ctx);
    const dtype = ctx.activation;
    const dev = deviceIndex(ctx);
    // The workspace of the stream calls will use, sized now for the largest call (growing inside a
    // CUDA graph capture would allocate).
    MarlinWorkspace.forStream(dev, ctx.stream as Stream | undefined).ensure(ctx.maxRows, dw.n, dw.k, !!dw.perm);
    return {
      n: dw.n,
      k: dw.k,
      weightBytes: marlinWeightBytes(dw),
      apply(x, out, m, stream) {
        const [xb, xo] = view(x);
        const [ob, oo] = view(out);
        marlinMatmul({ x: xb, xByteOffset: xo, out: ob, outByteOffset: oo, m, weights: dw, dtype, workspace: MarlinWorkspace.forStream(dev, stream), stream });
      },
      dispose() {},
    };
  },
};

export const marlinCpu: LinearImplementation<Float32Array> = {
  id: "marlin.cpu",
  op: QUANT_MATMUL_OP,
  priority: 10,
  devices: { kind: "cpu" },
  description: "multi-threaded C++ path over the same packed layout (fp16 inputs, fp32 accumulation, batch invariant)",
  canImplement: (q) => {
    const f = placedFit(q, ["marlin"]);
    return f.ok ? marlinFit(q) : f;
  },
  prepare(weights): HostLinear {
    const w = quantized(weights);
    const p = marlinHost(w);
    const hw: HostMarlinWeights = { k: p.k, n: p.n, bits: p.bits, groupSize: p.groupSize === p.k ? -1 : p.groupSize, qweight: p.qweight, scales: p.scales, zeros: p.zeros, perm: p.perm };
    return {
      n: w.n,
      k: w.k,
      weightBytes: marlinWeightBytes(hw),
      apply: fp16HostApply(w.n, w.k, w.bias, (x, y, m) => marlinMatmul({ x, out: y, m, weights: hw })),
      dispose() {},
    };
  },
};

/** W [n, k] host values (fp32 or fp16 bits). */
function denseData(w: DenseLinearWeights): Float32Array | Uint16Array {
  if (!w.data) throw new InvalidArgumentError(`${w.name ?? "dense layer"}: no host values`);
  return w.data;
}

export const cublasFp16: LinearImplementation<DeviceArg, Stream> = {
  id: "cublas.fp16",
  op: DENSE_MATMUL_OP,
  priority: 100,
  devices: { kind: "cuda", minCapability: 70 },
  description: "cuBLAS GemmEx over fp16/bf16 W [n, k], fp32 accumulation",
  canImplement(q) {
    const cuda = cudaFit(q);
    if (!cuda.ok) return cuda;
    const s = cublasStatus();
    if (!s.available) return refuse(s.reason ?? "cuBLAS is not available");
    if (q.shape && (q.shape.n % 8 !== 0 || q.shape.k % 8 !== 0)) return refuse("n and k must be multiples of 8");
    const placed = placedFit(q, ["fp16-device"]);
    if (!placed.ok) return placed;
    if (placedFormat(q) && q.activation === "bfloat16") return refuse("fp16-device weights need fp16 activations");
    return matmulFit(q);
  },
  prepare(weights, ctx): DeviceLinear {
    const w = dense(weights);
    const { n, k } = w;
    const dtype = ctx.activation;
    let host: Uint16Array | undefined;
    if (w.placed?.format !== "fp16-device") {
      const d = denseData(w);
      host = dtype === "bfloat16" ? f32ToBf16(d instanceof Float32Array ? d : f16ToF32(d)) : d instanceof Uint16Array ? d : f32ToF16(d);
      if (host.length !== n * k) throw new ShapeError(`dense weight has ${host.length} elements, expected ${n}x${k}`);
    }
    const b = uploadAll({ w: host, bias: w.bias ? biasBits(w.bias, dtype) : undefined }, deviceIndex(ctx));
    const wd = host ? (b.w as DeviceBuffer) : (w.placed!.data as DeviceBuffer);
    if (wd.byteLength < n * k * 2) throw new ShapeError(`dense weight buffer holds ${wd.byteLength} bytes, needs ${n * k * 2}`);
    return {
      n,
      k,
      weightBytes: n * k * 2,
      apply(x, out, m, stream) {
        const [xb, xo] = view(x);
        const [ob, oo] = view(out);
        denseMatmul({ x: xb, xByteOffset: xo, w: wd, bias: b.bias, out: ob, outByteOffset: oo, m, k, n, dtype, stream, wLayout: "nk" });
      },
      dispose() {
        (b.w as DeviceBuffer | undefined)?.free();
        b.bias?.free();
      },
    };
  },
};

interface PanelOps {
  linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, out: Float32Array, m: number, n: number, k: number): void;
  packLinear(w: Float32Array, n: number, k: number, out: Float32Array): void;
  packedLinearSize(n: number, k: number): number;
}

/** The addon's fp32 panel GEMM (native/src/engine/cpu_linear.cpp, shared with the engine's ops). */
function panelOps(): PanelOps {
  const ops = native().engineCpu as PanelOps | undefined;
  if (!ops) throw new InvalidArgumentError("marlin.node has no CPU panel GEMM (rebuild @marlin/kernel)");
  return ops;
}

export const denseCpu: LinearImplementation<Float32Array> = {
  id: "dense.cpu",
  op: DENSE_MATMUL_OP,
  priority: 10,
  devices: { kind: "cpu" },
  description: "multi-threaded fp32 panel GEMM (AVX2 when present, batch invariant)",
  canImplement: (q) => {
    const f = placedFit(q, []);
    return f.ok ? matmulFit(q) : f;
  },
  prepare(weights): HostLinear {
    const w = dense(weights);
    const { n, k } = w;
    const d = denseData(w);
    const f32 = d instanceof Float32Array ? d : f16ToF32(d);
    if (f32.length !== n * k) throw new ShapeError(`dense weight has ${f32.length} elements, expected ${n}x${k}`);
    const ops = panelOps();
    const packed = new Float32Array(ops.packedLinearSize(n, k));
    ops.packLinear(f32, n, k, packed);
    const bias = w.bias ?? null;
    return {
      n,
      k,
      weightBytes: n * k * 4,
      apply(x, out, m) {
        ops.linear(x, packed, bias, out, m, n, k);
      },
      dispose() {},
    };
  },
};

/** W [n, k] fp32 of a quantized layer (stored [k, n]). */
export function dequantizedNk(w: QuantizedLinearWeights): Float32Array {
  if (!w.layer) throw new InvalidArgumentError(`${w.name ?? "layer"}: no unpacked values to dequantize`);
  const { k, n } = w.layer;
  const kn = dequantize(w.layer as QuantizedLayer);
  const out = new Float32Array(n * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) out[j * k + i] = kn[i * n + j];
  return out;
}

export const dequantDense: LinearImplementation = {
  id: "dequant.dense",
  op: QUANT_MATMUL_OP,
  priority: 1,
  devices: { kind: "cpu" },
  description: "fallback: the layer dequantized once, then served by the best dense.matmul implementation",
  canImplement: (q) => {
    const f = placedFit(q, []);
    return f.ok ? matmulFit(q) : f;
  },
  prepare(weights, ctx) {
    const w = quantized(weights);
    return prepareAsDense(registry, { kind: "dense", n: w.n, k: w.k, data: dequantizedNk(w), bias: w.bias, name: w.name }, ctx);
  },
};
/** The same fallback on CUDA devices (the device rule is per implementation). */
export const dequantDenseCuda: LinearImplementation = {
  ...dequantDense,
  id: "dequant.dense.cuda",
  devices: { kind: "cuda", minCapability: 70 },
  canImplement(q) {
    for (const f of [cudaFit(q), placedFit(q, [])]) if (!f.ok) return f;
    return matmulFit(q);
  },
};
