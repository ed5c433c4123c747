import { FormatError, ShapeError } from "@marlin/core";
import { numberToF16 } from "../half.js";
import type { Tensor } from "../safetensors/reader.js";

/** A checkpoint tensor, or a bare typed array when the caller gives k and n. */
export type TensorLike = Tensor | Int32Array | Uint16Array | Float32Array | BigInt64Array;

function isTensor(t: TensorLike): t is Tensor {
  return !ArrayBuffer.isView(t);
}

export function shapeOf(t: TensorLike): number[] | undefined {
  return isTensor(t) ? t.shape : undefined;
}

/** An int32 view of a tensor (int64 g_idx is narrowed, checking range). */
export function asInt32(t: TensorLike, name: string, expectLength?: number): Int32Array {
  const data = isTensor(t) ? t.data : t;
  let out: Int32Array;
  if (data instanceof Int32Array) out = data;
  else if (data instanceof Uint32Array) out = new Int32Array(data.buffer, data.byteOffset, data.length);
  else if (data instanceof BigInt64Array) {
    out = new Int32Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v < -2147483648n || v > 2147483647n) throw new FormatError(`value ${v} does not fit int32`, { tensor: name });
      out[i] = Number(v);
    }
  } else {
    throw new FormatError(`expected an int32 tensor, got ${isTensor(t) ? t.dtype : data.constructor.name}`, {
      tensor: name,
    });
  }
  if (expectLength !== undefined && out.length !== expectLength) {
    throw new ShapeError(`${name} has ${out.length} elements, expected ${expectLength}`);
  }
  return out;
}

/** fp16 bits from an fp16, bf16 or fp32 tensor (a bare Uint16Array is taken as fp16). */
export function asF16(t: TensorLike, name: string, expectLength?: number): Uint16Array {
  let out: Uint16Array;
  if (!isTensor(t)) {
    if (t instanceof Uint16Array) out = t;
    else if (t instanceof Float32Array) out = Uint16Array.from(t, (v) => numberToF16(v));
    else throw new FormatError(`expected fp16 scales, got ${t.constructor.name}`, { tensor: name });
  } else if (t.dtype === "float16") {
    out = t.data as Uint16Array;
  } else if (t.dtype === "bfloat16") {
    const src = t.data as Uint16Array;
    const f = new Float32Array(src.length);
    const bits = new Uint32Array(f.buffer);
    for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
    out = Uint16Array.from(f, (v) => numberToF16(v));
  } else if (t.dtype === "float32") {
    out = Uint16Array.from(t.data as Float32Array, (v) => numberToF16(v));
  } else {
    throw new FormatError(`scales have dtype ${t.dtype}; expected float16, bfloat16 or float32`, { tensor: name });
  }
  if (expectLength !== undefined && out.length !== expectLength) {
    throw new ShapeError(`${name} has ${out.length} elements, expected ${expectLength}`);
  }
  const converted = !(isTensor(t) ? t.dtype === "float16" : t instanceof Uint16Array);
  const source = isTensor(t) ? t.data : t;
  for (let i = 0; i < out.length; i++) {
    const mag = out[i] & 0x7fff;
    // An Inf or NaN scale makes every weight of its group Inf or NaN: refuse it.
    if (mag >= 0x7c00) {
      const what = converted ? "overflows fp16" : mag === 0x7c00 ? "is infinite" : "is NaN";
      throw new FormatError(`scale ${i} ${what}`, { tensor: name });
    }
    // Converted from a wider type: a nonzero scale fp16 flushes to zero would silently drop its group.
    if (converted && mag === 0 && wideValue(source, i, isTensor(t) ? t.dtype : "float32") !== 0) {
      throw new FormatError(`scale ${i} = ${wideValue(source, i, isTensor(t) ? t.dtype : "float32")} underflows fp16`, { tensor: name });
    }
  }
  return out;
}

/** Element i of a bf16 (raw bits) or fp32 array, as a number. */
function wideValue(data: ArrayLike<number | bigint>, i: number, dtype: string): number {
  if (dtype !== "bfloat16") return Number(data[i]);
  const f = new Float32Array(1);
  new Uint32Array(f.buffer)[0] = Number(data[i]) << 16;
  return f[0];
}

/**
 * Checks a checkpoint tensor's shape (bare arrays carry none and are checked by length instead):
 * a scales tensor of [384, 3] or 1-D holds the right number of elements in the wrong layout.
 */
export function expectShape(t: TensorLike | undefined, name: string, shape: readonly number[]): void {
  if (t === undefined || !isTensor(t)) return;
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new ShapeError(`${name} has shape [${t.shape}], expected [${shape}]`);
  }
}

export function int32Tensor(data: Int32Array, shape: number[]): Tensor {
  return { dtype: "int32", shape, data };
}

export function f16Tensor(data: Uint16Array, shape: number[]): Tensor {
  return { dtype: "float16", shape, data };
}
