/**
 * The dequantize-then-cuBLAS path for large m (prefill): the Marlin-layout layer is decoded on the
 * device to fp16/bf16 W[k, n] (rows in their original order under act-order, so x needs no gather)
 * into one scratch buffer per device, then multiplied by cuBLAS GemmEx (fp32 accumulation). Where a
 * quantized kernel cannot beat cuBLAS, this costs the decode (read 0.5-1 byte, write 2 bytes per
 * weight) on top of cuBLAS. A scratch smaller than the layer is used a column slice at a time.
 */
import { DisposedError, InvalidArgumentError, NoDeviceError } from "@marlin/core";
import { DeviceBuffer } from "./buffer.js";
import { cublasStatus } from "./dense.js";
import { call } from "./native.js";
import { checkDim } from "./operand.js";
import { checkDeviceQuantCall, type DeviceQuantCall, nativeQuantArgs } from "./quant-call.js";

/** Scratch bytes that hold a whole [k, n] layer decoded (fp16/bf16). */
export function dequantScratchBytes(n: number, k: number): number {
  checkDim("n", n);
  checkDim("k", k);
  return n * k * 2;
}

export interface DequantScratchOptions {
  /** Cap on the scratch (default 2 GiB): larger layers are decoded a column slice at a time. */
  maxBytes?: number;
}

/**
 * One decode buffer per device, shared by every layer that runs this path (it is overwritten by
 * each call: calls on different streams must not share one). Grown to the largest layer seen, up to
 * `maxBytes`; never zeroed (the decode writes every byte it reads back).
 */
export class DequantScratch {
  readonly device: number;
  readonly maxBytes: number;
  private buf: DeviceBuffer | undefined;
  private disposed = false;

  constructor(device = 0, opts: DequantScratchOptions = {}) {
    checkDim("device", device, 0);
    const max = opts.maxBytes ?? 2 ** 31;
    checkDim("maxBytes", max);
    this.device = device;
    this.maxBytes = max;
  }

  /** The smallest scratch that works for k: one 64-column slice. */
  static minBytes(k: number): number {
    return k * 64 * 2;
  }

  /** The buffer, grown for an [k, n] layer when too small (waits for queued work before freeing the old one). */
  ensure(n: number, k: number): DeviceBuffer {
    if (this.disposed) throw new DisposedError("DequantScratch");
    const want = Math.max(Math.min(dequantScratchBytes(n, k), this.maxBytes), DequantScratch.minBytes(k));
    if (!this.buf || this.buf.freed || this.buf.byteLength < want) {
      if (this.buf && !this.buf.freed) {
        call((a) => a.synchronize(this.device));
        this.buf.free();
      }
      this.buf = DeviceBuffer.alloc(want, this.device);
    }
    return this.buf;
  }

  get byteLength(): number {
    return this.buf && !this.buf.freed ? this.buf.byteLength : 0;
  }

  dispose(): void {
    this.disposed = true;
    this.buf?.free();
    this.buf = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  private static shared = new Map<number, DequantScratch>();
  /** The process-wide scratch of a device. */
  static forDevice(device = 0): DequantScratch {
    let s = DequantScratch.shared.get(device);
    if (!s || s.disposed) {
      s = new DequantScratch(device);
      DequantScratch.shared.set(device, s);
    }
    return s;
  }
}

export interface DequantMatmulArgs extends DeviceQuantCall {
  scratch?: DequantScratch;
}

/** out = x * dequant(W) (+ bias) through cuBLAS; checked before anything is allocated or launched. */
export function dequantMatmul(args: DequantMatmulArgs): void {
  const dtype = checkDeviceQuantCall("dequantMatmul", args);
  const blas = cublasStatus();
  if (!blas.available) throw new NoDeviceError(`cuBLAS is not available: ${blas.reason ?? "unknown reason"}`);
  const { x, weights: w } = args;
  const scratch = args.scratch ?? DequantScratch.forDevice(x.device);
  if (scratch.device !== x.device) throw new InvalidArgumentError(`the scratch is on device ${scratch.device}, x on device ${x.device}`);
  const buf = scratch.ensure(w.n, w.k);
  call((a) => a.dequantGemm(...nativeQuantArgs(args, dtype, buf)));
}
