import type { DType } from "@marlin/core";

/**
 * Element types a safetensors file may hold. Those of @marlin/core's `DType` keep its names;
 * the few the core does not know (8-bit floats, sub-byte floats, complex) get torch-like names
 * and are read as raw bytes.
 */
export type TensorDType =
  | DType
  | "float8_e4m3fn"
  | "float8_e5m2"
  | "float8_e8m0fnu"
  | "float4_e2m1fn"
  | "float6_e2m3fn"
  | "float6_e3m2fn"
  | "complex64";

interface DTypeInfo {
  st: string;
  /** Bits per element. */
  bits: number;
}

const INFO: Record<TensorDType, DTypeInfo> = {
  bool: { st: "BOOL", bits: 8 },
  uint8: { st: "U8", bits: 8 },
  int8: { st: "I8", bits: 8 },
  float8_e5m2: { st: "F8_E5M2", bits: 8 },
  float8_e4m3fn: { st: "F8_E4M3", bits: 8 },
  float8_e8m0fnu: { st: "F8_E8M0", bits: 8 },
  float4_e2m1fn: { st: "F4", bits: 4 },
  float6_e2m3fn: { st: "F6_E2M3", bits: 6 },
  float6_e3m2fn: { st: "F6_E3M2", bits: 6 },
  int16: { st: "I16", bits: 16 },
  uint16: { st: "U16", bits: 16 },
  float16: { st: "F16", bits: 16 },
  bfloat16: { st: "BF16", bits: 16 },
  int32: { st: "I32", bits: 32 },
  uint32: { st: "U32", bits: 32 },
  float32: { st: "F32", bits: 32 },
  complex64: { st: "C64", bits: 64 },
  float64: { st: "F64", bits: 64 },
  int64: { st: "I64", bits: 64 },
  uint64: { st: "U64", bits: 64 },
};

const FROM_ST: ReadonlyMap<string, TensorDType> = new Map(
  (Object.keys(INFO) as TensorDType[]).map((d) => [INFO[d].st, d]),
);

/** All dtypes, in the order of the table above. */
export const TENSOR_DTYPES: readonly TensorDType[] = Object.keys(INFO) as TensorDType[];

export function isTensorDType(x: unknown): x is TensorDType {
  return typeof x === "string" && Object.hasOwn(INFO, x);
}

/** "float16" -> "F16". */
export function toSafetensorsDType(d: TensorDType): string {
  return INFO[d].st;
}

/** "F16" -> "float16"; undefined for names the spec does not define. */
export function fromSafetensorsDType(st: string): TensorDType | undefined {
  return FROM_ST.get(st);
}

export function dtypeBits(d: TensorDType): number {
  return INFO[d].bits;
}

/**
 * Byte size of `numel` elements, or -1 when it is not a whole number of bytes or not a safe
 * integer (sub-byte dtypes must fill whole bytes, as the spec requires).
 */
export function byteSize(d: TensorDType, numel: number): number {
  const bits = INFO[d].bits * numel;
  if (!Number.isSafeInteger(bits) || bits % 8 !== 0) return -1;
  return bits / 8;
}

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/**
 * A view of `bytes` as the natural typed array of `d` (fp16/bf16 as Uint16Array, bool and
 * 8-bit/sub-byte floats as Uint8Array, complex64 as interleaved Float32Array). The bytes must
 * be aligned to the element size; callers allocate fresh buffers so they are.
 */
export function viewAs(d: TensorDType, buf: ArrayBufferLike, byteOffset: number, byteLength: number): TypedArray {
  switch (d) {
    case "float32":
    case "complex64":
      return new Float32Array(buf, byteOffset, byteLength / 4);
    case "float64":
      return new Float64Array(buf, byteOffset, byteLength / 8);
    case "int8":
      return new Int8Array(buf, byteOffset, byteLength);
    case "int16":
      return new Int16Array(buf, byteOffset, byteLength / 2);
    case "uint16":
    case "float16":
    case "bfloat16":
      return new Uint16Array(buf, byteOffset, byteLength / 2);
    case "int32":
      return new Int32Array(buf, byteOffset, byteLength / 4);
    case "uint32":
      return new Uint32Array(buf, byteOffset, byteLength / 4);
    case "int64":
      return new BigInt64Array(buf, byteOffset, byteLength / 8);
    case "uint64":
      return new BigUint64Array(buf, byteOffset, byteLength / 8);
    default:
      return new Uint8Array(buf, byteOffset, byteLength);
  }
}
