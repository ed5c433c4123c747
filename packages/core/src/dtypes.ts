/** Element types, named as in numpy / torch. */
export type DType =
  | "float16"
  | "bfloat16"
  | "float32"
  | "float64"
  | "int8"
  | "uint8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "int64"
  | "uint64"
  | "bool";

/** Activation dtypes the mixed-precision kernels take. */
export type ActivationDType = "float16" | "bfloat16";

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float16: 2,
  bfloat16: 2,
  float32: 4,
  float64: 8,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  int64: 8,
  uint64: 8,
  bool: 1,
};

export function dtypeBytes(dtype: DType): number {
  return DTYPE_BYTES[dtype];
}

export function isDType(x: unknown): x is DType {
  return typeof x === "string" && Object.hasOwn(DTYPE_BYTES, x);
}

/** Problem shape of C[m, n] = A[m, k] * B[k, n]. */
export interface MatmulShape {
  m: number;
  n: number;
  k: number;
}

/** Quantized weight type: bits per element and whether zero points are stored (asymmetric). */
export interface WeightType {
  bits: 4 | 8;
  zeroPoints: boolean;
}
