/**
 * Dense fp16/bf16 matmul for the engine: out[m, n] = x[m, k] * W[k, n] (+ bias[n]), W stored
 * row-major [k, n] (the transpose of a torch Linear weight), fp32 accumulation. GPU operands go
 * through cuBLAS (loaded at run time; a machine without it gets a NoDeviceError), host operands
 * through the multi-threaded CPU path, whose rows do not depend on m (batch invariant). cuBLAS
 * picks its algorithm by shape, so on the GPU a row's result may differ in the last bits with m.
 */
import { type ActivationDType, DisposedError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { DeviceBuffer } from "./buffer.js";
import { hasGpu } from "./device.js";
import { call } from "./native.js";
import { checkDim, checkDType, checkOperand, forwardInto, inferRows, isDevice, type Operand } from "./operand.js";
import type { Stream } from "./stream.js";

export interface DenseMatmulArgs {
  x: Operand;
  xByteOffset?: number;
  /** [k, n] row-major. */
  w: Operand;
  bias?: Operand;
  out: Operand;
  outByteOffset?: number;
  m: number;
  k: number;
  n: number;
  dtype?: ActivationDType;
  stream?: Stream;
  /** GPU only: W stored [n, k] (torch Linear layout) instead of [k, n]. */
  wLayout?: "kn" | "nk";
}

export interface CublasStatus {
  available: boolean;
  reason?: string;
}

/** Whether cuBLAS could be loaded (never throws for its absence). */
export function cublasStatus(): CublasStatus {
  return call((a) => a.cublasStatus());
}

export function denseMatmul(args: DenseMatmulArgs): void {
  if (!args || typeof args !== "object") throw new InvalidArgumentError("denseMatmul takes an argument object");
  const dtype = args.dtype ?? "float16";
  checkDType(dtype);
  checkDim("m", args.m);
  checkDim("k", args.k);
  checkDim("n", args.n);
  const onDevice = isDevice(args.x);
  for (const [name, v] of [
    ["w", args.w],
    ["out", args.out],
    ["bias", args.bias],
  ] as const) {
    if (v !== undefined && (v instanceof DeviceBuffer || v instanceof Uint16Array) && isDevice(v) !== onDevice)
      throw new InvalidArgumentError(`${name} must live where x lives (${onDevice ? "GPU" : "host"})`);
  }
  checkOperand("x", args.x, args.m, args.k, args.xByteOffset ?? 0);
  checkOperand("w", args.w, args.k, args.n);
  if (args.bias !== undefined) checkOperand("bias", args.bias, 1, args.n);
  checkOperand("out", args.out, args.m, args.n, args.outByteOffset ?? 0);
  const act = dtype === "float16" ? 0 : 1;
  if (onDevice) {
    if (args.n % 8 !== 0 || args.k % 8 !== 0) throw new ShapeError("dense GPU matmul needs n and k to be multiples of 8");
    call((a) =>
      a.denseGemm(
        (args.x as DeviceBuffer).handle,
        args.xByteOffset ?? 0,
        (args.w as DeviceBuffer).handle,
        (args.bias as DeviceBuffer | undefined)?.handle ?? null,
        (args.out as DeviceBuffer).handle,
        args.outByteOffset ?? 0,
        args.m,
        args.n,
        args.k,
        act,
        args.stream?.handle,
        args.wLayout === "nk",
      ),
    );
  } else {
    if (args.wLayout === "nk") throw new InvalidArgumentError("the CPU path takes W as [k, n]");
    call((a) => a.denseCpu(args.x, args.w, args.bias ?? null, args.out, args.m, args.n, args.k, act));
  }
}

export interface DenseLayerOptions {
  device?: "cuda" | "cpu" | number;
  dtype?: ActivationDType;
  bias?: Uint16Array;
}

/** A dense linear layer owning W [k, n] (fp16/bf16 bits) on the GPU or the host. */
export class DenseLayer {
  readonly k: number;
  readonly n: number;
  readonly dtype: ActivationDType;
  readonly placement: "cuda" | "cpu";
  readonly device: number;
  private w?: Operand;
  private bias?: Operand;
  private disposed = false;

  /** `w` is row-major [k, n]. */
  constructor(w: Uint16Array, k: number, n: number, opts: DenseLayerOptions = {}) {
    checkDim("k", k);
    checkDim("n", n);
    this.dtype = opts.dtype ?? "float16";
    checkDType(this.dtype);
    checkOperand("w", w, k, n);
    if (w.length !== k * n) throw new ShapeError(`w has ${w.length} elements, expected k*n = ${k * n}`);
    if (opts.bias) checkOperand("bias", opts.bias, 1, n);
    const d = opts.device ?? (hasGpu() ? "cuda" : "cpu");
    this.placement = d === "cpu" ? "cpu" : "cuda";
    this.device = typeof d === "number" ? d : 0;
    this.k = k;
    this.n = n;
    if (this.placement === "cpu") {
      this.w = w;
      this.bias = opts.bias;
    } else {
      this.w = DeviceBuffer.from(w, this.device);
      try {
        this.bias = opts.bias ? DeviceBuffer.from(opts.bias, this.device) : undefined;
      } catch (err) {
        (this.w as DeviceBuffer).free();
        throw err;
      }
    }
  }

  forward(x: Operand, opts: { m?: number; out?: Operand; stream?: Stream } = {}): Operand {
    if (this.disposed) throw new DisposedError("DenseLayer");
    const m = opts.m ?? inferRows("x", x, this.k);
    return forwardInto(x, opts.out, m, this.n, this.placement === "cuda", (out) =>
      denseMatmul({ x, w: this.w!, bias: this.bias, out, m, k: this.k, n: this.n, dtype: this.dtype, stream: opts.stream }),
    );
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.w instanceof DeviceBuffer) this.w.free();
    if (this.bias instanceof DeviceBuffer) this.bias.free();
    this.w = undefined;
    this.bias = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
