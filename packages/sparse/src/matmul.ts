/**
 * sparse24Matmul: one call of the 2:4 kernels, on the GPU (DeviceBuffer operands, fp16/bf16, on a
 * stream) or the CPU (Uint16Array fp16 operands). Every argument is checked here before the
 * addon's own checks; a bad call throws a typed error and writes nothing.
 */
import { type ActivationDType, DTypeError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { DeviceBuffer, MarlinWorkspace, native, type Stream, typedError } from "@marlin/kernel";
import { type Sparse24Layer, sparse24Groups } from "./layout.js";
import { checkPacked, checkSparse24Shape } from "./validate.js";

/** Weights of a GPU call: the layout's arrays on one device (scales and bias in the activation dtype). */
export interface DeviceSparse24Weights {
  k: number;
  n: number;
  groupSize: number;
  values: DeviceBuffer;
  meta: DeviceBuffer;
  scales: DeviceBuffer;
  bias?: DeviceBuffer;
}

export interface Sparse24MatmulArgs {
  /** [m, k]: fp16 bits on the host, or a DeviceBuffer of the activation dtype. */
  x: Uint16Array | DeviceBuffer;
  xByteOffset?: number;
  /** [m, n], written (same kind as x). */
  out: Uint16Array | DeviceBuffer;
  outByteOffset?: number;
  m: number;
  /** Host layer (CPU call) or its device copy (GPU call). */
  weights: Sparse24Layer | DeviceSparse24Weights;
  /** CPU: fp16 bias bits [n]. (GPU calls take weights.bias.) */
  bias?: Uint16Array;
  /** GPU: "float16" (default) or "bfloat16". */
  dtype?: ActivationDType;
  /** GPU: all-zero scratch (default: the stream's shared workspace, grown as needed). */
  workspace?: MarlinWorkspace;
  stream?: Stream;
}

/** The smallest n multiple of the GPU kernel (4 warps x 16 outputs). */
export const SPARSE24_CUDA_N_MULTIPLE = 64;

/** Why the GPU kernel cannot take a shape, or undefined. */
export function sparse24CudaRefusal(p: { n: number; k: number; groupSize: number; bits?: number }): string | undefined {
  try {
    checkSparse24Shape(p.k, p.n, p.bits ?? 4, p.groupSize);
  } catch (e) {
    return (e as Error).message.replace(/^layer: /, "");
  }
  if (p.n % SPARSE24_CUDA_N_MULTIPLE !== 0) return `n = ${p.n} is not a multiple of the kernel's ${SPARSE24_CUDA_N_MULTIPLE}-output tile`;
  if (p.n > 1 << 20) return `n = ${p.n} exceeds ${1 << 20}`;
  return undefined;
}

function checkRows(m: number): void {
  if (!Number.isSafeInteger(m) || m < 1 || m > 2 ** 30) throw new InvalidArgumentError(`m = ${m} must be an integer in [1, 2^30]`);
}

function offset(v: number | undefined, name: string): number {
  const o = v ?? 0;
  if (!Number.isSafeInteger(o) || o < 0 || o % 16 !== 0) throw new InvalidArgumentError(`${name} = ${v} must be a non-negative multiple of 16`);
  return o;
}

function call<T>(fn: (a: Record<string, any>) => T): T {
  const a = native();
  try {
    return fn(a);
  } catch (e) {
    throw typedError(e);
  }
}

/** Bytes of all-zero workspace enough for every GPU call of at most m rows of this layer on `device`. */
export function sparse24WorkspaceBytes(m: number, n: number, k: number, device = 0): number {
  return call((a) => a.sparse24WorkspaceBytes(m, n, k, device)) as number;
}

/** out[m, n] = x[m, k] W^T (+ bias): the CUDA kernel for device operands, the CPU path for host ones. */
export function sparse24Matmul(args: Sparse24MatmulArgs): void {
  if (!args || typeof args !== "object") throw new InvalidArgumentError("sparse24Matmul takes an argument object");
  const { x, out, m, weights: w } = args;
  checkRows(m);
  if (x instanceof DeviceBuffer) {
    deviceCall(args, x, w as DeviceSparse24Weights);
    return;
  }
  if (!(x instanceof Uint16Array)) throw new DTypeError("x must be a Uint16Array (fp16 bits) or a DeviceBuffer");
  if (!(out instanceof Uint16Array)) throw new DTypeError("out must be a Uint16Array when x is");
  const p = w as Sparse24Layer;
  checkPacked(p, "weights");
  if (x.length < m * p.k) throw new ShapeError(`x has ${x.length} elements, needs ${m}x${p.k}`);
  if (out.length < m * p.n) throw new ShapeError(`out has ${out.length} elements, needs ${m}x${p.n}`);
  if (args.bias && (!(args.bias instanceof Uint16Array) || args.bias.length < p.n)) throw new ShapeError(`bias must be a Uint16Array of ${p.n} fp16 values`);
  call((a) => a.sparse24Cpu(x, p.values, p.meta, p.scales, args.bias ?? null, out, m, p.n, p.k, p.groupSize));
}

function deviceCall(args: Sparse24MatmulArgs, x: DeviceBuffer, w: DeviceSparse24Weights): void {
  const { out, m } = args;
  if (!(out instanceof DeviceBuffer)) throw new DTypeError("out must be a DeviceBuffer when x is");
  const dtype = args.dtype ?? "float16";
  if (dtype !== "float16" && dtype !== "bfloat16") throw new DTypeError(`activation ${dtype} is not supported (float16, bfloat16)`);
  if (!w || typeof w !== "object" || !(w.values instanceof DeviceBuffer) || !(w.meta instanceof DeviceBuffer) || !(w.scales instanceof DeviceBuffer))
    throw new DTypeError("a GPU call needs DeviceSparse24Weights (values, meta, scales as DeviceBuffers)");
  const why = sparse24CudaRefusal(w);
  if (why) throw new ShapeError(why);
  const xo = offset(args.xByteOffset, "xByteOffset");
  const oo = offset(args.outByteOffset, "outByteOffset");
  const need: [string, DeviceBuffer | undefined, number][] = [
    ["x", x, xo + m * w.k * 2],
    ["out", out, oo + m * w.n * 2],
    ["values", w.values, (w.k * w.n) / 4],
    ["meta", w.meta, (w.k * w.n) / 8],
    ["scales", w.scales, sparse24Groups(w.k, w.groupSize) * w.n * 2],
    ["bias", w.bias, w.n * 2],
  ];
  for (const [name, b, bytes] of need) {
    if (!b) continue;
    if (b.freed) throw new InvalidArgumentError(`${name} was freed`);
    if (b.byteLength < bytes) throw new ShapeError(`${name} holds ${b.byteLength} bytes, needs ${bytes}`);
  }
  const ws = args.workspace ?? MarlinWorkspace.forStream(x.device, args.stream);
  const buf = ws.ensureBytes(sparse24WorkspaceBytes(m, w.n, w.k, x.device), args.stream);
  call((a) =>
    a.sparse24Gemm(
      x.handle,
      xo,
      w.values.handle,
      w.meta.handle,
      w.scales.handle,
      w.bias?.handle ?? null,
      out.handle,
      oo,
      buf.handle,
      m,
      w.n,
      w.k,
      w.groupSize,
      dtype === "bfloat16" ? 1 : 0,
      args.stream?.handle,
    ),
  );
}
