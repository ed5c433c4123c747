/** Shared argument checks for the matmul entry points: operands live on a device or on the host. */

import type { ActivationDType } from "@marlin/core";
import { AlignmentError, DisposedError, DTypeError, InvalidArgumentError, ShapeError } from "@marlin/core";
import { DeviceBuffer } from "./buffer.js";

/** An activation or output matrix: a device buffer (GPU path) or fp16/bf16 bits on the host (CPU path). */
export type Operand = DeviceBuffer | Uint16Array;

export function isDevice(x: Operand): x is DeviceBuffer {
  return x instanceof DeviceBuffer;
}

export function checkDType(dtype: unknown): asserts dtype is ActivationDType {
  if (dtype !== "float16" && dtype !== "bfloat16")
    throw new DTypeError(`activation dtype must be "float16" or "bfloat16", got ${String(dtype)}`);
}

export function checkDim(name: string, v: unknown, min = 1): asserts v is number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min)
    throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got ${String(v)}`);
}

/** Checks that `x` holds a [rows, cols] 16-bit matrix at `byteOffset` (16-byte aligned on the device). */
export function checkOperand(name: string, x: unknown, rows: number, cols: number, byteOffset = 0): void {
  const need = rows * cols * 2;
  if (x instanceof DeviceBuffer) {
    if (x.freed) throw new DisposedError(`${name} (DeviceBuffer)`);
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0) throw new InvalidArgumentError(`${name}: bad byte offset ${byteOffset}`);
    if (byteOffset % 16 !== 0) throw new AlignmentError(`${name}: byte offset ${byteOffset} is not a multiple of 16`);
    if (x.byteLength - byteOffset < need)
      throw new ShapeError(`${name}: needs ${need} bytes for [${rows}, ${cols}] at offset ${byteOffset}, buffer holds ${x.byteLength}`);
    return;
  }
  if (!(x instanceof Uint16Array))
    throw new DTypeError(`${name} must be a DeviceBuffer or a Uint16Array of fp16/bf16 bits, got ${describe(x)}`);
  if (byteOffset !== 0) throw new InvalidArgumentError(`${name}: host operands take no byte offset (use subarray)`);
  if (x.length < rows * cols) throw new ShapeError(`${name}: needs ${rows * cols} elements for [${rows}, ${cols}], has ${x.length}`);
}

export function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return (x as object).constructor?.name ?? "object";
}

/** Rows of a [m, cols] operand when m is not given. */
export function inferRows(name: string, x: Operand, cols: number, byteOffset = 0): number {
  const bytes = isDevice(x) ? x.byteLength - byteOffset : x.length * 2;
  if (bytes % (cols * 2) !== 0 || bytes === 0)
    throw new ShapeError(`${name}: ${bytes} bytes is not a whole number of rows of ${cols} elements; pass m`);
  return bytes / (cols * 2);
}

/**
 * Runs a layer's matmul into `out`, or into a fresh output beside `x` ([m, n] 16-bit, on the same
 * device or on the host) that is freed again if the call throws. Also checks that `x` lives where
 * the layer does.
 */
export function forwardInto(
  x: Operand,
  out: Operand | undefined,
  m: number,
  n: number,
  layerOnGpu: boolean,
  run: (out: Operand) => void,
): Operand {
  if (isDevice(x) !== layerOnGpu)
    throw new InvalidArgumentError(`x is on the ${isDevice(x) ? "GPU" : "host"}, the layer on the ${layerOnGpu ? "GPU" : "host"}`);
  if (out) {
    run(out);
    return out;
  }
  if (!isDevice(x)) {
    const host = new Uint16Array(m * n);
    run(host);
    return host;
  }
  const allocated = DeviceBuffer.alloc(m * n * 2, x.device);
  try {
    run(allocated);
  } catch (err) {
    allocated.free();
    throw err;
  }
  return allocated;
}
